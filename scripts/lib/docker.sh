# shellcheck shell=bash
#
# scripts/lib/docker.sh: make sure a Docker engine and Slipway's local base
# image are available. Source it; it only defines functions and leaves the
# caller's shell options alone.
#
#   ensure_docker          install docker.io if needed, start dockerd if needed
#   ensure_busybox_image   build slipway/busybox:latest locally if it is missing
#   ensure_postgres_image  build slipway/postgres:latest (a service image for
#                          jobs' `services:`) from the host's PostgreSQL
#
# Nothing here pulls an image: the base image is made from the host's static
# busybox, so it works on machines that can only reach package registries.
# Installing packages and starting dockerd need root.

SLIPWAY_BUSYBOX_IMAGE=slipway/busybox:latest
SLIPWAY_DOCKERD_LOG=${SLIPWAY_DOCKERD_LOG:-/var/log/dockerd.log}

_slipway_info() { printf 'slipway: %s\n' "$*" >&2; }
_slipway_error() { printf 'slipway: error: %s\n' "$*" >&2; }

# Install Debian packages non-interactively (refreshing the index first, since
# a fresh machine may have none).
_slipway_apt_install() {
    if [[ $EUID -ne 0 ]]; then
        _slipway_error "installing $* needs root; run as root or install it yourself"
        return 1
    fi
    apt-get update -q &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
}

# True if the docker CLI can reach a running engine.
_slipway_docker_up() {
    [[ -S /var/run/docker.sock ]] && docker info >/dev/null 2>&1
}

# True if $1 is an executable that needs no dynamic loader (it can then be
# copied into an empty image on its own).
_slipway_is_static() {
    local out
    [[ -x $1 ]] || return 1
    out=$(LC_ALL=C ldd "$1" 2>&1) # fails (status 1) for static executables
    [[ $out == *'not a dynamic executable'* || $out == *'statically linked'* ]]
}

ensure_docker() {
    if ! command -v dockerd >/dev/null 2>&1; then
        _slipway_info "dockerd not found; installing docker.io with apt-get"
        if ! _slipway_apt_install docker.io; then
            _slipway_error "could not install docker.io with apt-get"
            return 1
        fi
    fi

    _slipway_docker_up && return 0

    if [[ $EUID -ne 0 ]]; then
        _slipway_error "the Docker engine is not running and starting dockerd needs root"
        return 1
    fi

    # setsid + nohup: dockerd gets its own session, so it outlives this script
    # and is not killed along with the caller's process group.
    _slipway_info "starting dockerd (log: $SLIPWAY_DOCKERD_LOG)"
    setsid nohup dockerd >"$SLIPWAY_DOCKERD_LOG" 2>&1 </dev/null &
    local pid=$! rc deadline=$((SECONDS + 60))

    # Readiness check: poll until the engine answers, for at most 60 s.
    until _slipway_docker_up; do
        # Fail fast if dockerd died. (A zero status only means setsid forked,
        # which it does when started from an interactive shell; keep polling.)
        if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
            rc=0
            wait "$pid" || rc=$?
            if [[ $rc -ne 0 ]]; then
                _slipway_error "dockerd exited with status $rc; see $SLIPWAY_DOCKERD_LOG:"
                tail -n 20 "$SLIPWAY_DOCKERD_LOG" >&2
                return 1
            fi
            pid=
        fi
        if ((SECONDS >= deadline)); then
            _slipway_error "dockerd did not become ready within 60 s ('docker info' still fails); see $SLIPWAY_DOCKERD_LOG"
            return 1
        fi
        sleep 0.2
    done
}

# The body runs in a subshell so that its EXIT trap (removing the temporary
# rootfs) and pipefail stay local to it.
ensure_busybox_image() (
    set -o pipefail
    umask 022
    local image=$SLIPWAY_BUSYBOX_IMAGE busybox=/bin/busybox applet tmp rootfs

    docker image inspect "$image" >/dev/null 2>&1 && exit 0

    if ! _slipway_is_static "$busybox"; then
        _slipway_info "no static $busybox; installing busybox-static with apt-get"
        if ! _slipway_apt_install busybox-static || ! _slipway_is_static "$busybox"; then
            _slipway_error "could not get a static $busybox (package busybox-static)"
            exit 1
        fi
    fi

    _slipway_info "building the local base image $image from $busybox"
    tmp=$(mktemp -d) || exit 1
    trap 'rm -rf "$tmp"' EXIT
    rootfs=$tmp/rootfs

    # A minimal root filesystem: busybox and a symlink per applet, a sticky
    # world-writable /tmp, and just enough of /etc for tools that look up users.
    mkdir -p "$rootfs"/{bin,etc,root,tmp} &&
        chmod 1777 "$rootfs/tmp" &&
        cp "$busybox" "$rootfs/bin/busybox" || exit 1
    for applet in $("$busybox" --list); do
        [[ $applet == busybox ]] || ln -s busybox "$rootfs/bin/$applet" || exit 1
    done
    printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' \
        'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$rootfs/etc/passwd" &&
        printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' >"$rootfs/etc/group" || exit 1

    # Files in the image belong to root whoever runs this.
    if ! tar -C "$rootfs" --owner=0 --group=0 --numeric-owner -c . |
        docker import \
            --change 'CMD ["/bin/sh"]' \
            --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
            - "$image" >/dev/null; then
        _slipway_error "could not import $image with 'docker import'"
        exit 1
    fi
)

SLIPWAY_POSTGRES_IMAGE=${SLIPWAY_POSTGRES_IMAGE:-slipway/postgres:latest}
# The label that records which PostgreSQL (`postgres -V`) an image was built from.
SLIPWAY_POSTGRES_VERSION_LABEL=slipway.postgres-version

# The entrypoint of slipway/postgres: a new cluster on first start, made the
# way the usual PostgreSQL images make it (POSTGRES_USER, POSTGRES_PASSWORD,
# POSTGRES_DB), then the server on 0.0.0.0:5432 in the foreground.
_slipway_postgres_entrypoint() {
    cat <<'SCRIPT'
#!/bin/sh
set -eu
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "${POSTGRES_PASSWORD:-}" ]; then
        echo "slipway/postgres: set POSTGRES_PASSWORD (the password of $POSTGRES_USER)" >&2
        exit 1
    fi
    mkdir -p "$PGDATA" && chmod 700 "$PGDATA"
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" -E UTF8 --locale=C \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    if [ "$POSTGRES_DB" != postgres ]; then
        echo "CREATE DATABASE \"$POSTGRES_DB\"" | postgres --single -D "$PGDATA" postgres >/dev/null
    fi
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
SCRIPT
}

# slipway/postgres:latest from the host's own PostgreSQL (the one
# ensure_postgres installs): its programs, the libraries ldd names for them,
# its share directory, static busybox for a shell, and a non-root user. Built
# with `docker import`, so nothing is pulled. Fast when the image exists and
# was built from the PostgreSQL installed now; rebuilt after an upgrade (its
# label records the version it was built from).
ensure_postgres_image() (
    set -o pipefail
    umask 022
    local image=$SLIPWAY_POSTGRES_IMAGE busybox=/bin/busybox pg bin lib tmp rootfs applet version built
    pg=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    pg=${pg%/bin}
    if [[ -z $pg ]] || [[ ! -x $pg/bin/postgres ]]; then
        _slipway_error "no PostgreSQL under /usr/lib/postgresql; run ensure_postgres (scripts/lib/postgres.sh) first"
        exit 1
    fi
    # `postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)` → `15.18_Debian_15.18-0+deb12u1`
    version=$("$pg/bin/postgres" -V | sed 's/^[^)]*) //; s/[^A-Za-z0-9.+~-]\+/_/g; s/_$//') || exit 1
    if built=$(docker image inspect --format "{{index .Config.Labels \"$SLIPWAY_POSTGRES_VERSION_LABEL\"}}" "$image" 2>/dev/null); then
        [[ $built == "$version" ]] && exit 0
        _slipway_info "$image was built from PostgreSQL ${built:-of an unknown version}; rebuilding it from $version"
    fi
    _slipway_is_static "$busybox" || {
        _slipway_error "no static $busybox; run ensure_busybox_image first"
        exit 1
    }
    _slipway_info "building the service image $image from $pg"
    tmp=$(mktemp -d) || exit 1
    trap 'rm -rf "$tmp"' EXIT
    rootfs=$tmp/rootfs
    mkdir -p "$rootfs"/{bin,etc,tmp,usr/local/bin,var/lib/postgresql,var/run/postgresql} &&
        chmod 1777 "$rootfs"/{tmp,var/lib/postgresql,var/run/postgresql} &&
        cp "$busybox" "$rootfs/bin/busybox" || exit 1
    for applet in $("$busybox" --list); do
        [[ $applet == busybox ]] || ln -s busybox "$rootfs/bin/$applet" || exit 1
    done
    # The server loads its own modules (plpgsql, snowball) from the package's lib.
    # Not the JIT (LLVM alone is larger than the rest), which is off by default.
    mkdir -p "$rootfs$pg/bin" && cp -a "$pg/lib" "$rootfs$pg/" &&
        rm -rf "$rootfs$pg/lib/bitcode" "$rootfs$pg"/lib/llvmjit* || exit 1
    for bin in postgres initdb pg_ctl psql pg_isready; do
        cp "$pg/bin/$bin" "$rootfs$pg/bin/" && ln -s "$pg/bin/$bin" "$rootfs/usr/local/bin/$bin" || exit 1
    done
    # ldd prints `name => /path (addr)` for libraries and `/path (addr)` for the loader.
    for lib in $(ldd "$rootfs$pg"/bin/* "$rootfs$pg"/lib/*.so 2>/dev/null |
        awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// && $2 ~ /^\(/ {print $1}' | sort -u); do
        cp -L --parents "$lib" "$rootfs/" || {
            _slipway_error "cannot copy $lib, which PostgreSQL needs"
            exit 1
        }
    done
    local share=${pg/\/lib\//\/share\/}
    mkdir -p "$rootfs/usr/share/zoneinfo" "$rootfs${share%/*}" && cp -a "$share" "$rootfs${share%/*}/" &&
        cp -a /usr/share/zoneinfo/{UTC,Etc} "$rootfs/usr/share/zoneinfo/" || exit 1
    printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'postgres:x:70:70:PostgreSQL:/var/lib/postgresql:/bin/sh' \
        'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$rootfs/etc/passwd" &&
        printf '%s\n' 'root:x:0:' 'postgres:x:70:' 'nogroup:x:65534:' >"$rootfs/etc/group" &&
        _slipway_postgres_entrypoint >"$rootfs/usr/local/bin/slipway-postgres" &&
        chmod 755 "$rootfs/usr/local/bin/slipway-postgres" || exit 1
    if ! tar -C "$rootfs" --owner=0 --group=0 --numeric-owner -c . |
        docker import \
            --change 'ENTRYPOINT ["/usr/local/bin/slipway-postgres"]' \
            --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin TZ=UTC' \
            --change 'USER postgres' \
            --change 'EXPOSE 5432' \
            --change "LABEL $SLIPWAY_POSTGRES_VERSION_LABEL=$version" \
            - "$image" >/dev/null; then
        _slipway_error "could not import $image with 'docker import'"
        exit 1
    fi
)

# The swarm deploy target needs the engine in swarm mode. One node is enough;
# advertise on loopback so it works on a machine without a routable address.
ensure_swarm() {
    local state
    state=$(docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null) || return 1
    [[ $state == active ]] && return 0
    _slipway_info "initialising a one-node Docker swarm (advertised on 127.0.0.1)"
    docker swarm init --advertise-addr 127.0.0.1 >/dev/null || {
        _slipway_error "docker swarm init failed"
        return 1
    }
}
