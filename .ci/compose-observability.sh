#!/usr/bin/env bash
# Observability end-to-end under docker compose (README, "Observability"), with a real
# scraper and a real trace receiver on the host:
#
# * compose starts the gateway only once both workers are healthy (their `health`
#   subcommand asking /readyz: `depends_on: condition: service_healthy`);
# * after a known number of requests and errors, both workers' /metrics, scraped
#   by Debian's Prometheus, count exactly those;
# * the workers' spans reach an OTLP/HTTP receiver (.ci/otlp_receiver.py, decoding
#   with PyPI's opentelemetry-proto) as one trace per create across both workers;
# * /readyz turns 503 while NATS is stopped, and 200 again once it is back.
#
# Jaeger and Prometheus of `--profile observability` are official images this
# machine cannot pull: they are not started here. Torn down at the end, failed or not.
# Needs python3, curl, jq and prometheus (.ci/run installs the ones missing).
set -euo pipefail
cd "$(dirname "$0")/.."

otlp_port="${OBS_OTLP_PORT:-14318}"
prometheus_addr="127.0.0.1:${OBS_PROMETHEUS_PORT:-19099}"

# shellcheck source=compose-lib.sh
. .ci/compose-lib.sh
# OBS_PROJECT, OBS_NATS_PORT, OBS_NATS_MONITOR_PORT, OBS_GATEWAY_PORT move them.
compose_stack OBS shippy-obs 16222 18224 18090
compose_test observability "$project"
pids=()
# The receiver and the scraper stop with the stack, whatever the outcome.
trap 'status=$?; for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; set +e; (exit $status); teardown' EXIT

plain_client "opentelemetry-proto==1.45.2"

# Runs CHECK (a command) until it succeeds, for at most SECONDS: each run awaits
# one event (a scrape, a span export, a health change), bounded.
until_true() {
    local seconds="$1" what="$2" deadline
    shift 2
    deadline=$((SECONDS + seconds))
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || { echo "not within ${seconds}s: $what" >&2; return 1; }
        sleep 0.5
    done
}
healthy() {
    local id
    for id in $(compose ps -q vessel-worker consignment-worker); do
        [ "$(docker inspect -f '{{.State.Health.Status}}' "$id")" = healthy ] || return 1
    done
}
readyz() { curl -s -o /dev/null -w '%{http_code}' "http://$1/readyz" || true; }
both_ready() { [ "$(readyz "$vessel_port")" = 200 ] && [ "$(readyz "$consignment_port")" = 200 ]; }
neither_ready() { [ "$(readyz "$vessel_port")" = 503 ] && [ "$(readyz "$consignment_port")" = 503 ]; }

step "build images"
compose build

step "NATS, then an OTLP/HTTP receiver on the host, on the stack network's gateway"
compose up -d nats
network="$(docker inspect -f '{{range $name, $_ := .NetworkSettings.Networks}}{{$name}}{{end}}' "$(compose ps -q nats)")"
host_ip="$(docker network inspect -f '{{(index .IPAM.Config 0).Gateway}}' "$network")"
spans="$(mktemp)"
scratch "$spans"
"$venv/bin/python" .ci/otlp_receiver.py "$host_ip" "$otlp_port" "$spans" &
pids+=($!)
until_true 10 "the receiver listens" curl -s -o /dev/null "http://$host_ip:$otlp_port/"

step "the gateway waits for both workers to be healthy (service_healthy)"
OTEL_EXPORTER_OTLP_ENDPOINT="http://$host_ip:$otlp_port" compose up -d gateway
# `up` returned once the gateway was started, so after both workers were healthy.
healthy || { compose ps; echo "the gateway was started before the workers were healthy" >&2; exit 1; }
compose ps
vessel_port="$(compose port vessel-worker 9464)"
consignment_port="$(compose port consignment-worker 9464)"
echo "health ports: vessel-worker $vessel_port, consignment-worker $consignment_port"
curl -fsS "http://$vessel_port/healthz" && echo
both_ready
copy_key client

step "known requests: 5 creates, 3 refused (400), 2 finds"
probe req consignment.create "$(cat consignment.json)" --repeat 5 >/dev/null
probe fail consignment.create '{"description":"bad","weight":-1,"containers":[]}' 3 400
probe req vessel.find_available '{"capacity":1,"max_weight":1}' --repeat 2 >/dev/null

step "each worker's /metrics counts them"
metrics() { curl -fsS "http://$1/metrics"; }
# Shows the line of METRIC (with its labels, as rendered) and checks its value.
expect_metric() {
    local port="$1" series="$2" value="$3" line
    line="$(metrics "$port" | awk -v series="$series" '$1 == series' || true)"
    echo "  $line"
    [ "$line" = "$series $value" ] || { echo "expected $series $value" >&2; return 1; }
}
expect_metric "$consignment_port" 'shippy_requests_total{service="consignment",endpoint="create"}' 8
expect_metric "$consignment_port" 'shippy_request_errors_total{service="consignment",endpoint="create",error_type="400"}' 3
expect_metric "$consignment_port" 'messaging_process_duration_seconds_count{service="consignment",endpoint="create"}' 8
expect_metric "$consignment_port" 'messaging_client_operation_duration_seconds_count{messaging_destination_name="vessel.find_available"}' 5
expect_metric "$consignment_port" 'shippy_jetstream_operation_duration_seconds_count{operation="publish"}' 5
expect_metric "$consignment_port" 'shippy_requests_in_flight{service="consignment"}' 0
expect_metric "$vessel_port" 'shippy_requests_total{service="vessel",endpoint="find_available"}' 7
metrics "$vessel_port" | grep -q '^shippy_request_errors_total' && { echo "the vessel-worker counted errors" >&2; exit 1; }
metrics "$consignment_port" | grep -E '^shippy_request_wait_seconds_count|^shippy_client_|^shippy_nats_' || true

step "Prometheus (Debian's) scrapes both and sums the same counts"
prometheus_dir="$(mktemp -d)"
scratch "$prometheus_dir"
cat >"$prometheus_dir/prometheus.yml" <<EOF
global: {scrape_interval: 1s}
scrape_configs:
  - job_name: shippy
    static_configs: [{targets: ["$vessel_port", "$consignment_port"]}]
EOF
prometheus --config.file="$prometheus_dir/prometheus.yml" --storage.tsdb.path="$prometheus_dir/data" \
    --web.listen-address="$prometheus_addr" >"$prometheus_dir/log" 2>&1 &
pids+=($!)
promql() {
    curl -fsS --get "http://$prometheus_addr/api/v1/query" --data-urlencode "query=$1" 2>/dev/null \
        | jq -r '.data.result[0].value[1] // empty'
}
scraped() { [ "$(promql "$1")" = "$2" ]; }
until_true 60 "Prometheus counts 8 creates" scraped 'sum(shippy_requests_total{endpoint="create"})' 8
until_true 10 "Prometheus counts 3 errors" scraped 'sum(shippy_request_errors_total{error_type="400"})' 3
until_true 10 "Prometheus counts 7 finds" scraped 'sum(shippy_requests_total{endpoint="find_available"})' 7
echo "  Prometheus: 8 creates, 3 of them 400, 7 finds; both targets up: $(promql 'sum(up{job="shippy"})')"
scraped 'sum(up{job="shippy"})' 2

step "the spans reached the OTLP receiver: one trace per create, across both workers"
one_trace() {
    python3 - "$spans" <<'PY'
import collections, json, sys
spans = [json.loads(line) for line in open(sys.argv[1])]
by_trace = collections.defaultdict(list)
for span in spans:
    by_trace[span["trace_id"]].append(span)
whole = 0
for trace in by_trace.values():
    named = {(s["service"], s["name"]): s for s in trace}
    served = named.get(("consignment-worker", "process consignment.create"))
    sent = named.get(("consignment-worker", "send vessel.find_available"))
    found = named.get(("vessel-worker", "process vessel.find_available"))
    append = named.get(("consignment-worker", "publish shippy-events"))
    if served and sent and found and append and found["parent"] == sent["span_id"] and served["parent"] == "":
        whole += 1
print(f"  {len(spans)} spans received, {whole} whole create traces")
sys.exit(0 if whole >= 5 else 1)
PY
}
until_true 30 "five whole create traces" one_trace

step "/readyz: 503 while NATS is stopped, 200 once it is back"
compose stop nats
until_true 30 "both workers not ready" neither_ready
echo "  NATS stopped: vessel-worker $(readyz "$vessel_port"), consignment-worker $(readyz "$consignment_port")"
compose start nats
until_true 60 "both workers ready again" both_ready
echo "  NATS back: vessel-worker $(readyz "$vessel_port"), consignment-worker $(readyz "$consignment_port")"
until_true 60 "both healthy again" healthy
expect_metric "$consignment_port" 'shippy_nats_reconnects_total' 1

step "passed"
