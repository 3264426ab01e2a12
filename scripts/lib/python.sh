# shellcheck shell=bash
#
# scripts/lib/python.sh: Python tools the tests compare against, in a venv
# of their own. Source it; it only defines functions.
#
#   ensure_diff_cover   diff-cover, pytest and coverage.py from PyPI; exports
#                       SLIPWAY_DIFF_COVER and SLIPWAY_TEST_PYTHON
#   ensure_oras         oras-py (PyPI `oras`), a third OCI client, in the same
#                       venv; exports SLIPWAY_TEST_PYTHON
#   ensure_setuptools_scm  setuptools and setuptools-scm in the same venv (a
#                       checkout's fixture package reads its version from a
#                       tag); exports SLIPWAY_TEST_PYTHON

SLIPWAY_TEST_VENV=${SLIPWAY_TEST_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/slipway/test-venv}

ensure_diff_cover() {
    local bin=$SLIPWAY_TEST_VENV/bin/diff-cover
    if [[ ! -x $bin || ! -x $SLIPWAY_TEST_VENV/bin/pytest ]]; then
        printf 'slipway: installing diff-cover into %s\n' "$SLIPWAY_TEST_VENV" >&2
        if ! python3 -m venv "$SLIPWAY_TEST_VENV" 2>/dev/null; then
            _slipway_apt_install python3-venv || return 1
            python3 -m venv "$SLIPWAY_TEST_VENV" || return 1
        fi
        "$SLIPWAY_TEST_VENV/bin/pip" install -q diff-cover pytest coverage || return 1
    fi
    export SLIPWAY_DIFF_COVER=$bin
    export SLIPWAY_TEST_PYTHON=$SLIPWAY_TEST_VENV/bin/python
}

# oras-py fetches one bearer token per repository at the first challenge: the
# registry-auth tests push and pull with it in its default (token) mode.
ensure_oras() {
    ensure_diff_cover || return 1
    if ! "$SLIPWAY_TEST_PYTHON" -c 'import oras.client' 2>/dev/null; then
        printf 'slipway: installing oras-py into %s\n' "$SLIPWAY_TEST_VENV" >&2
        "$SLIPWAY_TEST_VENV/bin/pip" install -q oras || return 1
    fi
}

# Jobs build a fixture package with `pip install --no-build-isolation
# --no-index`: its build backend must already be in the interpreter.
ensure_setuptools_scm() {
    ensure_diff_cover || return 1
    if ! "$SLIPWAY_TEST_PYTHON" -c 'import setuptools, setuptools_scm' 2>/dev/null; then
        printf 'slipway: installing setuptools-scm into %s\n' "$SLIPWAY_TEST_VENV" >&2
        "$SLIPWAY_TEST_VENV/bin/pip" install -q setuptools setuptools-scm wheel || return 1
    fi
}
