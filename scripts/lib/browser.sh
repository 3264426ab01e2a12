# shellcheck shell=bash
# Debian's Chromium and ChromeDriver, for the browser tests of the web UI.
# Sourced by scripts/test; needs scripts/lib/docker.sh for _slipway_apt_install.

ensure_chromium() {
    if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
        return 0
    fi
    _slipway_info "chromium or chromedriver not found; installing chromium and chromium-driver with apt-get"
    _slipway_apt_install chromium chromium-driver || {
        _slipway_error "could not install chromium and chromium-driver"
        return 1
    }
}
