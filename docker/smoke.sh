#!/usr/bin/env bash
# Smoke-builds one tool's image with podman on a machine with no Docker engine and no reachable
# image registry (../shared/CONTAINERS.md): a Debian base made once with debootstrap and imported
# into podman, then `podman build --isolation chroot` with that base as the BASE build argument.
# The Dockerfile's `RUN vt-<tool> --help` proves the console script starts inside the image.
#
#   make docker-smoke                      # the judge image
#   bash docker/smoke.sh analyze           # another light image
#
# Settings (environment): SMOKE_CACHE (/var/tmp/videotune-base: the base's root filesystem,
# kept between runs and clones), SMOKE_BASE (localhost/debian-py:bookworm), DEBIAN_MIRROR
# (read from the apt sources, else http://deb.debian.org/debian), HOST_CA (the CA bundle
# mounted over the image's so that pip trusts this machine's TLS setup; unset it with
# HOST_CA= where none is needed). Needs root, or sudo, for apt-get, debootstrap and podman.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOL="${1:-judge}"
SUITE=bookworm
CACHE="${SMOKE_CACHE:-/var/tmp/videotune-base}"
BASE_IMAGE="${SMOKE_BASE:-localhost/debian-py:${SUITE}}"
HOST_CA="${HOST_CA-/etc/ssl/certs/ca-certificates.crt}"
TAG="videotune/${TOOL}:smoke"
DOCKERFILE="docker/${TOOL}.Dockerfile"

[ -f "$DOCKERFILE" ] || { echo "smoke: no $DOCKERFILE" >&2; exit 2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# 1. podman and debootstrap from Debian's packages, when missing.
t0=$(now)
missing=()
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "smoke: installing ${missing[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q "${missing[@]}"
    echo "smoke: install took $(took "$t0") s"
fi

# 2. The base image: debootstrap once into $CACHE, import into podman when podman lacks it.
if ! $SUDO podman image exists "$BASE_IMAGE"; then
    rootfs="$CACHE/rootfs-$SUITE"
    if [ ! -f "$rootfs/.videotune-complete" ]; then
        mirror="${DEBIAN_MIRROR:-}"
        if [ -z "$mirror" ]; then
            # The machine's Debian mirror: the first deb822 URIs or one-line `deb` entry for the suite.
            mirror=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list \
                | grep -vE 'security|updates|backports' | grep -E 'debian/?( |$)' \
                | sed -E 's/^URIs:[[:space:]]*//; s/^deb (\[[^]]*\] )?//' | awk '{print $1}' | head -n1 || true)
        fi
        mirror="${mirror:-http://deb.debian.org/debian}"
        echo "smoke: debootstrap $SUITE from $mirror into $rootfs"
        t1=$(now)
        $SUDO rm -rf "$rootfs.tmp"
        $SUDO mkdir -p "$CACHE"
        $SUDO debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
            "$SUITE" "$rootfs.tmp" "$mirror"
        $SUDO rm -rf "$rootfs.tmp/var/cache/apt/archives/"*.deb "$rootfs.tmp/var/lib/apt/lists/"*
        $SUDO touch "$rootfs.tmp/.videotune-complete"
        $SUDO rm -rf "$rootfs"
        $SUDO mv "$rootfs.tmp" "$rootfs"
        echo "smoke: debootstrap took $(took "$t1") s"
    fi
    t2=$(now)
    $SUDO tar -C "$rootfs" --exclude=./.videotune-complete -c . | $SUDO podman import - "$BASE_IMAGE"
    echo "smoke: import of $BASE_IMAGE took $(took "$t2") s"
fi

# 3. The build: the Dockerfile's own smoke step runs `vt-$TOOL --help` as uid 10001.
mounts=()
if [ -n "$HOST_CA" ] && [ -f "$HOST_CA" ]; then
    mounts=(-v "$HOST_CA:/etc/ssl/certs/ca-certificates.crt:ro")
fi
ignore=()
if [ -f "$DOCKERFILE.dockerignore" ] && $SUDO podman build --help 2>/dev/null | grep -q -- '--ignorefile'; then
    ignore=(--ignorefile "$DOCKERFILE.dockerignore")
fi
echo "smoke: podman build $TAG on $BASE_IMAGE"
t3=$(now)
$SUDO podman build --isolation chroot --build-arg "BASE=$BASE_IMAGE" "${mounts[@]}" "${ignore[@]}" \
    -f "$DOCKERFILE" -t "$TAG" .
echo "smoke: build took $(took "$t3") s"

# 4. What the image is: its user and entrypoint, read back from the image (running it is not possible here).
$SUDO podman image inspect "$TAG" --format 'smoke: {{.Config.User}} {{.Config.Entrypoint}} {{.Size}} bytes'
echo "smoke: ok ($TAG built; vt-$TOOL --help ran inside the build; total $(took "$t0") s)"
