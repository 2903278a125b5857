#!/usr/bin/env bash
# Runs `shippy bench` against a throwaway stack on loopback: a nats-server with
# JetStream in a temporary directory, one vessel-worker and one consignment-worker
# (release builds), no logins. The figures in README "Performance" come from it.
#
#   scripts/bench-loopback.sh always  all --clients 64 --duration 5s   # sync_interval: always (nats.conf's)
#   scripts/bench-loopback.sh default all --clients 1                  # JetStream's default fsync (2 min)
#   scripts/bench-loopback.sh always  all http-create --clients 1      # and the create through the gateway
#
# With the `http-create` scenario among the arguments it also starts the HTTP
# gateway (release build) on 127.0.0.1 (BENCH_GATEWAY_PORT, default 27334), with an
# API token made by `shippy auth init` and its per-token rate limit raised far above
# any bench's rate; the bench gets the token in SHIPPY_GATEWAY_TOKEN. Without it no
# gateway runs (its consumer of the event stream would add to the server's work).
#
# The first argument is the fsync setting; the rest go to `shippy bench`. Needs
# nats-server on PATH, or NATS_SERVER naming it (scripts/offline-images.sh nats
# leaves one in .offline/nats/). Everything it starts is stopped when it ends.
#
# The workers inherit the environment: METRICS_ADDR=127.0.0.1:0 (an ephemeral port
# each) turns metrics on, OTEL_EXPORTER_OTLP_ENDPOINT traces (README, "Observability").
# BENCH_WORKER_ENV holds more VAR=value settings for the workers only, not the
# bench client (such as OTEL_EXPORTER_OTLP_ENDPOINT=..., to trace the services alone);
# the gateway, a service too, gets them as well. BENCH_WORKERS names another
# directory to take the worker binaries (and the gateway's) from (such as another
# commit's target/release), to compare builds in the same way.
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
gateway_port="${BENCH_GATEWAY_PORT:-27334}"
case " $* " in *" http-create "*) http=true ;; *) http=false ;; esac
services="${BENCH_WORKERS:-target/release}"
shippy=target/release/shippy

cargo build --release --locked --quiet --bin vessel-worker --bin consignment-worker --bin gateway --bin shippy
dir="$(mktemp -d)"
pids=()
cleanup() {
    # The services first, each drained before the next, nats-server last.
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill "${pids[i]}" 2>/dev/null || true
        wait "${pids[i]}" 2>/dev/null || true
    done
    # The services' warnings and errors, once they have stopped (such as spans
    # dropped by the tracing exporter, counted at shutdown).
    grep -sHw -E "WARN|ERROR" "$dir"/*-worker.log "$dir"/gateway.log >&2 || true
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

# Starts a service (with VAR=value settings before its name) and waits (at most
# 60 s) until its log says READY.
start() {
    local ready="$1" settings=()
    shift
    while [ "$1" != "${1#*=}" ]; do settings+=("$1"); shift; done
    # shellcheck disable=SC2086 # BENCH_WORKER_ENV: words, each VAR=value
    env ${BENCH_WORKER_ENV:-} RUST_LOG=info "${settings[@]}" "$services/$1" >"$dir/$1.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    for _ in $(seq 1200); do
        grep -q "$ready" "$dir/$1.log" && return 0
        kill -0 "$pid" 2>/dev/null || { cat "$dir/$1.log" >&2; exit 1; }
        sleep 0.05
    done
    echo "$1 was not ready within 60 s" >&2
    exit 1
}
start "service ready" vessel-worker
start "service ready" consignment-worker
if $http; then
    # The token as `shippy auth init` makes it for compose: the gateway reads its hash.
    "$shippy" auth init "$dir/auth" >/dev/null
    # Ready once it follows the event stream (for /v1/events): connected to NATS.
    start "following the events" GATEWAY_ADDR="127.0.0.1:$gateway_port" \
        GATEWAY_TOKENS_FILE="$dir/auth/gateway/api-tokens" \
        GATEWAY_RATE_PER_SECOND=1000000000 GATEWAY_RATE_BURST=1000000000 gateway
    SHIPPY_GATEWAY_TOKEN="$("$shippy" auth token "$dir/auth")"
    export SHIPPY_GATEWAY_TOKEN SHIPPY_GATEWAY_URL="http://127.0.0.1:$gateway_port"
fi
"$shippy" bench "$@"
# The CPU time (user + system) each process of the stack used, start-up and warm-up
# included: what a configuration costs, beside the throughput it reaches.
for pid in "${pids[@]}"; do
    read -r -a stat <"/proc/$pid/stat"
    echo "cpu $(basename "$(readlink "/proc/$pid/exe")"): $(((stat[13] + stat[14]) * 1000 / $(getconf CLK_TCK))) ms"
done
