#!/usr/bin/env bash
# The cluster fault test (README.md, "Cluster"): brings up docker-compose.cluster.yml
# (three NATS nodes, JetStream R3, two workers of each kind), runs
# testkit/tests/cluster_faults.rs against it (creates at a fixed rate while nodes
# are killed, a node is cut off and workers are killed; then checks that nothing
# was lost, doubled or overbooked, and prints the figures), and tears it all down,
# failed or not.
#
# Uses whatever images the environment or ./.env selects (NATS_IMAGE, SHIPPY_DOCKERFILE),
# as a user's compose does and .ci/compose-e2e.sh too: under .ci/run, the offline
# ones, which it writes into ./.env alone (scripts/offline-images.sh --env), with
# none in the environment. SHIPPY_FAULT_RATE and SHIPPY_FAULT_SECS set the load.
set -euo pipefail
cd "$(dirname "$0")/.."

# CLUSTER_PROJECT: a compose project of its own; ports of its own (node N: 2422N-1
# for clients, 2822N-1 for monitoring), so that a stack already up is no obstacle.
project="${CLUSTER_PROJECT:-shippy-cluster}"
port="${CLUSTER_PORT_BASE:-24222}" monitor="${CLUSTER_MONITOR_PORT_BASE:-28222}"
export NATS_1_PORT="$port" NATS_2_PORT="$((port + 1))" NATS_3_PORT="$((port + 2))"
export NATS_1_MONITOR_PORT="$monitor" NATS_2_MONITOR_PORT="$((monitor + 1))" NATS_3_MONITOR_PORT="$((monitor + 2))"
export SHIPPY_CLUSTER_PROJECT="$project"
export SHIPPY_CLUSTER_URL="nats://127.0.0.1:$NATS_1_PORT,nats://127.0.0.1:$NATS_2_PORT,nats://127.0.0.1:$NATS_3_PORT"
export SHIPPY_CLUSTER_MONITORS="127.0.0.1:$NATS_1_MONITOR_PORT,127.0.0.1:$NATS_2_MONITOR_PORT,127.0.0.1:$NATS_3_MONITOR_PORT"

# shellcheck source=compose-lib.sh
. .ci/compose-lib.sh
compose_test cluster "$project" -f docker-compose.cluster.yml

step "build the fault test"
cargo test --locked -p testkit --test cluster_faults --no-run

step "build images"
compose build
step "docker compose up: three nodes, two workers of each kind"
compose up -d
compose ps
# The test reads the streams on each node: it logs in as the admin.
copy_key admin
export NATS_NKEY="$keys/admin"

step "creates under node loss, a partition and worker crashes"
test_log="$(mktemp)"
scratch "$test_log"
cargo test --locked -p testkit --test cluster_faults -- --ignored --nocapture 2>&1 | tee "$test_log"

step "passed"
