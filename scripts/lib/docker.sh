# shellcheck shell=bash
#
# scripts/lib/docker.sh: make sure a Docker engine and Slipway's local base
# image are available. Source it; it only defines functions and leaves the
# caller's shell options alone.
#
#   ensure_docker          install docker.io if needed, start dockerd if needed
#   ensure_busybox_image   build slipway/busybox:latest locally if it is missing
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
