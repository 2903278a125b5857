#!/usr/bin/env bash
# End-to-end test of the whole system under docker compose, as a user runs it:
# build the images, bring the stack up (with its NATS logins made on first start),
# create consignments through the CLI container (the host's ./consignment.json, a
# file written on the host, and stdin) and through a plain NATS client on
# the host logged in as a client, list the services as the monitor, scale the vessel
# worker to three and show all three answering, stop one and show creates still
# succeed, restart a worker and NATS, then switch TLS on with its one setting; last,
# start the HTTP gateway on localhost:8080 and create through it with the API token
# compose made, read the create back from its Location and await its event on the
# SSE feed. Everything is torn down at the end, failed or not.
#
# Uses whatever images the environment or ./.env selects (NATS_IMAGE, SHIPPY_DOCKERFILE),
# as a user's compose does: .ci/run selects the offline ones in .env only
# (scripts/offline-images.sh --env). Needs python3 for the plain NATS client, curl
# and jq for the gateway.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=compose-lib.sh
. .ci/compose-lib.sh
# The plain stack first (TLS is switched on below). E2E_PROJECT, E2E_NATS_PORT,
# E2E_NATS_MONITOR_PORT and E2E_GATEWAY_PORT move it; the gateway is on compose's
# own port by default, as a user finds it.
compose_stack E2E shippy-e2e 14222 18222 8080
compose_test e2e "$project" --profile cli

# Shows a reply and checks it holds PATTERN (an extended regex).
expect() {
    local reply
    reply="$(cat)"
    printf '%s\n' "$reply"
    grep -Eq "$1" <<<"$reply" || { echo "expected /$1/ in the reply" >&2; return 1; }
}
# The seed consignment fits three times on vessel001 and ten on vessel002; the test
# adds vessel003 with room for the rest.
booked='"vessel_id": ?"vessel00[123]"'

step "plain NATS client (nats-py) for the host"
plain_client
# As a client (`nats req`: probe), as the monitor (`nats micro ls`), and with no login at all.
monitor() { NATS_NKEY="$keys/monitor" NATS_INBOX_PREFIX=_INBOX_monitor "$venv/bin/python" .ci/nats_probe.py "$@"; }
anonymous() { "$venv/bin/python" .ci/nats_probe.py refused; }

step "build images"
compose build

step "docker compose up: keys made on first start, no anonymous login"
compose up -d nats vessel-worker consignment-worker
compose logs --no-color nats-auth

step "the images the stack runs, and their sizes"
# Read from the containers: whatever the environment or .env selected.
for container in $(compose ps -aq nats-auth nats vessel-worker consignment-worker); do
    image="$(docker inspect -f '{{.Config.Image}}' "$container")"
    size="$(docker image inspect -f '{{.Size}}' "$(docker inspect -f '{{.Image}}' "$container")")"
    printf '  %-40s %6.1f MB\n' "$image" "$(awk "BEGIN { print $size / 1000000 }")"
    case "$image" in
        shippy/*-worker:*) [ "$size" -le 20000000 ] || { echo "$image is $size bytes, over the 20 MB target" >&2; exit 1; } ;;
    esac
done
# The host's keys, copied out of the nats-auth container once it has made them.
copy_key client
copy_key monitor
anonymous
monitor instances vessel 1
monitor instances consignment 1

step "add a vessel with room for every create of this test"
probe req vessel.create '{"id":"vessel003","name":"Ever Given","capacity":20000,"max_weight":200000000}' | expect '"created":true'

step "create with the CLI container: ./consignment.json, a file on the host, stdin"
compose run --rm cli create | expect "$booked"
# The project directory is the container's working directory: a file written on the
# host now is booked as written. Readable by the container's user (65532), as a file
# made with the usual umask is.
host_file="$(mktemp e2e-consignment-XXXXXX.json)"
scratch "$host_file"
chmod 644 "$host_file"
sed "s/This is a test consignment/Written on the host as $host_file/" consignment.json >"$host_file"
compose run --rm cli create "$host_file" | expect "\"description\": ?\"Written on the host as $host_file\"" | expect "$booked"
# A file anywhere else: through stdin.
sed "s/This is a test consignment/Piped from the host/" consignment.json \
    | compose run --rm -T cli create - | expect '"description": ?"Piped from the host"' | expect "$booked"

step "plain requests from the host, as 'nats req' sends them"
# The three creates above filled vessel001: the next fit is vessel002.
probe req vessel.find_available '{"capacity":3,"max_weight":55000}' | expect '"id":"vessel002"'
probe req consignment.create "$(cat consignment.json)" | expect "$booked"
probe req consignment.list '{}' | grep -Eo "$booked" | wc -l | expect '^4$'

step "poison requests: each gets a JSON error reply, no worker restarts"
probe poison
probe req vessel.find_available '{"capacity":3,"max_weight":55000}' | expect '"id":"vessel002"'
for container in $(compose ps -q nats vessel-worker consignment-worker); do
    state="$(docker inspect -f '{{.Name}} restarts={{.RestartCount}} running={{.State.Running}}' "$container")"
    echo "$state"
    grep -q 'restarts=0 running=true' <<<"$state" || { echo "a container restarted or stopped" >&2; exit 1; }
done

step "scale vessel-worker to 3: all three answer"
compose up -d --no-recreate --scale vessel-worker=3 vessel-worker
monitor instances vessel 3
probe req vessel.find_available '{"capacity":1,"max_weight":1}' --repeat 90 >/dev/null
monitor served vessel vessel.find_available 3

step "stop one vessel-worker: it exits cleanly and creates still succeed"
# sed reads all of it: with head, `compose ps` could die of SIGPIPE under pipefail.
victim="$(compose ps -q vessel-worker | sed -n 1p)"
docker stop "$victim" >/dev/null
exit_code="$(docker inspect -f '{{.State.ExitCode}}' "$victim")"
echo "stopped $victim, exit code $exit_code"
[ "$exit_code" -eq 0 ]
probe req consignment.create "$(cat consignment.json)" --repeat 20 | expect "$booked"
compose run --rm cli create | expect "$booked"
probe req consignment.list '{}' | grep -Eo "$booked" | wc -l | expect '^25$'

# Retries a plain request until it succeeds, for at most 60 s: the services come
# back on their own after a restart.
req_when_back() {
    local deadline=$((SECONDS + 60))
    until probe req "$@" 2>/dev/null; do
        [ "$SECONDS" -lt "$deadline" ] || { echo "no answer to $1 within 60 s" >&2; return 1; }
        sleep 0.5
    done
}

step "restart the consignment-worker: every consignment is still listed"
compose restart consignment-worker
req_when_back consignment.list '{}' | grep -Eo "$booked" | wc -l | expect '^25$'

step "restart NATS: consignments, bookings and the added vessel are still there"
compose restart nats
req_when_back consignment.list '{}' | grep -Eo "$booked" | wc -l | expect '^25$'
req_when_back vessel.list '' | expect '"id":"vessel003"'
req_when_back vessel.list '' | expect '"id":"vessel001","capacity":500,"max_weight":200000,"name":"Boaty McBoatface","available":true,"owner_id":"","booked":\{"containers":9,"weight":165000\}'
probe req consignment.create "$(cat consignment.json)" | expect "$booked"

step "TLS on, with its one setting: the same stack and data, plain connections refused"
scripts/tls-certs.sh tls
export COMPOSE_FILE=docker-compose.yml:docker-compose.tls.yml
compose up -d nats vessel-worker consignment-worker
export NATS_URL="tls://127.0.0.1:${NATS_PORT}" NATS_CA=tls/ca.pem
monitor instances vessel 1
monitor instances consignment 1
compose run --rm cli create | expect "$booked"
req_when_back consignment.create "$(cat consignment.json)" | expect "$booked"
probe req consignment.list '{}' | grep -Eo "$booked" | wc -l | expect '^28$'
probe tls-required
NATS_CA= probe refused      # a client that cannot verify the server
anonymous

step "the HTTP gateway on localhost:$GATEWAY_PORT: a create with compose's API token, its Location, its event"
# `up` returns once both workers are healthy and the gateway has started.
compose up -d gateway
gateway="http://localhost:$GATEWAY_PORT"
# Ready once its NATS connection is up: curl retries the 503s (and a refused connection).
curl -fsS --retry 30 --retry-delay 1 --retry-connrefused "$gateway/readyz" && echo
# The token as a user takes it (README, "HTTP gateway"), handed to curl in a file:
# never on a command line.
printf 'Authorization: Bearer %s\n' "$(compose run --rm -T cli auth token /auth)" >"$keys/api-header"
api() { curl -sS -H @"$keys/api-header" "$@"; }
api -o /dev/null -w '%{http_code}\n' "$gateway/v1/vessels" | expect '^200$'
curl -sS -o /dev/null -w '%{http_code}\n' "$gateway/v1/vessels" | expect '^401$'
description="Through the gateway, e2e $$"
# Prints the first event of the feed whose data holds NEEDLE, reading the feed from
# its first event on for at most 20 s; fails if none came. The feed's curl is
# stopped once the event is read (it would wait for its next write otherwise).
# (`read`, not awk: mawk would wait to fill its input buffer.)
first_event_with() {
    local fifo="$keys/events.fifo" feed line status=1
    mkfifo "$fifo"
    curl -sS -N --max-time 20 -H @"$keys/api-header" -H 'Last-Event-ID: 0' "$gateway/v1/events" >"$fifo" &
    feed=$!
    while IFS= read -r line; do
        case "$line" in data:*"$1"*) printf '%s\n' "$line" && status=0 && break ;; esac
    done <"$fifo"
    kill "$feed" 2>/dev/null || true
    wait "$feed" 2>/dev/null || true
    rm -f "$fifo"
    return "$status"
}
# The feed, opened before the create and resuming from the first event (so it sees
# the create however the two race), read until the create's event.
events="$(mktemp)"
scratch "$events"
first_event_with "$description" >"$events" &
reader=$!
headers="$(mktemp)"
scratch "$headers"
created="$(sed "s/This is a test consignment/$description/" consignment.json \
    | api -D "$headers" -H 'Content-Type: application/json' -H "Idempotency-Key: e2e-$$" \
        --data-binary @- "$gateway/v1/consignments")"
tr -d '\r' <"$headers" | expect '^HTTP/[0-9.]+ 201'
printf '%s\n' "$created" | expect "$booked"
id="$(jq -r .id <<<"$created")"
location="$(tr -d '\r' <"$headers" | awk 'tolower($1) == "location:" { print $2 }')"
[ "$location" = "/v1/consignments/$id" ] || { echo "Location: $location, expected /v1/consignments/$id" >&2; exit 1; }
api -f "$gateway$location" | expect "\"id\": ?\"$id\""
wait "$reader" || { echo "no event of the create on /v1/events within 20 s" >&2; exit 1; }
expect "\"id\": ?\"$id\"" <"$events"

step "passed"
