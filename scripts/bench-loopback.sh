#!/usr/bin/env bash
# Runs `shippy bench` against a throwaway stack on loopback: a nats-server with
# JetStream in a temporary directory, one vessel-worker and one consignment-worker
# (release builds), no logins. The figures in README "Performance" come from it.
#
#   scripts/bench-loopback.sh always  all --clients 64 --duration 5s   # sync_interval: always (nats.conf's)
#   scripts/bench-loopback.sh default all --clients 1                  # JetStream's default fsync (2 min)
#
# The first argument is the fsync setting; the rest go to `shippy bench`. Needs
# nats-server on PATH, or NATS_SERVER naming it (scripts/offline-images.sh nats
# leaves one in .offline/nats/). Everything it starts is stopped when it ends.
#
# The workers inherit the environment: METRICS_ADDR=127.0.0.1:0 (an ephemeral port
# each) turns metrics on, OTEL_EXPORTER_OTLP_ENDPOINT traces (README, "Observability").
# BENCH_WORKER_ENV holds more VAR=value settings for the workers only, not the
# bench client (such as OTEL_EXPORTER_OTLP_ENDPOINT=..., to trace the services alone).
# BENCH_WORKERS names another directory to take the worker binaries from (such as
# another commit's target/release), to compare builds in the same way.
set -euo pipefail
cd "$(dirname "$0")/.."

sync="${1:?usage: $0 always|default [shippy bench arguments]}"
shift
case "$sync" in
    always) sync_line="sync_interval: always" ;;
    default) sync_line="" ;;
    *) echo "usage: $0 always|default [shippy bench arguments]" >&2; exit 2 ;;
esac
server="${NATS_SERVER:-$(command -v nats-server || echo .offline/nats/nats-server)}"
port="${BENCH_NATS_PORT:-27333}"

cargo build --release --locked --quiet --bin vessel-worker --bin consignment-worker --bin shippy
dir="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

cat >"$dir/nats.conf" <<CONF
listen: 127.0.0.1:$port
max_payload: 1MB
jetstream { store_dir: "$dir/js", max_file_store: 20GB, $sync_line }
CONF
"$server" -c "$dir/nats.conf" >"$dir/nats.log" 2>&1 &
pids+=($!)
export NATS_URL="nats://127.0.0.1:$port"
for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done

# Starts a worker and waits (at most 60 s) until it says it is ready.
start() {
    # shellcheck disable=SC2086 # BENCH_WORKER_ENV: words, each VAR=value
    env ${BENCH_WORKER_ENV:-} RUST_LOG=info "${BENCH_WORKERS:-target/release}/$1" >"$dir/$1.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    for _ in $(seq 1200); do
        grep -q "service ready" "$dir/$1.log" && return 0
        kill -0 "$pid" 2>/dev/null || { cat "$dir/$1.log" >&2; exit 1; }
        sleep 0.05
    done
    echo "$1 was not ready within 60 s" >&2
    exit 1
}
start vessel-worker
start consignment-worker
target/release/shippy bench "$@"
