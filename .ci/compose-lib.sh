# Shared by the compose tests (.ci/compose-e2e.sh, .ci/compose-observability.sh,
# .ci/cluster-faults.sh); sourced.
#
#   compose_stack PREFIX PROJECT NATS_PORT NATS_MONITOR_PORT GATEWAY_PORT
#
# first, for a test of the plain stack (docker-compose.yml alone, whatever
# COMPOSE_FILE a .env sets): a compose project of its own, PREFIX_PROJECT (default
# PROJECT), on host ports of its own, PREFIX_NATS_PORT, PREFIX_NATS_MONITOR_PORT and
# PREFIX_GATEWAY_PORT (defaults as given), so that tests side by side, or a NATS
# already running on 4222, are no obstacle. It sets `project` and exports the ports
# and NATS_URL, the host's way in.
#
#   compose_test LABEL PROJECT [COMPOSE OPTION...]
#
# then: `compose ...` runs docker compose (or docker-compose 1.x) on that project
# with those options; `step TEXT` announces a step; `copy_key ROLE` copies a role's
# nkey seed out of the stack's nats-auth container into "$keys/ROLE"; `scratch FILE`
# names a file the test made to be removed at the end; on exit, the service logs are
# shown if the test failed, and the stack (volumes too), the copied keys and the
# scratch files are removed, failed or not. A test that sets `test_log` to a file
# holding its output has that output's end printed last when it fails.
#
#   plain_client [PIP PACKAGE...]
#
# installs the plain NATS client (.ci/nats_probe.py: nats-py, standing in for the
# `nats` CLI) and the packages named into .offline/venv; then `probe ...` runs it
# logged in as a client, with the key `copy_key client` copied.

compose_stack() {
    local prefix="$1" setting
    export COMPOSE_FILE=docker-compose.yml
    setting="${prefix}_PROJECT" && project="${!setting:-$2}"
    setting="${prefix}_NATS_PORT" && export NATS_PORT="${!setting:-$3}"
    setting="${prefix}_NATS_MONITOR_PORT" && export NATS_MONITOR_PORT="${!setting:-$4}"
    setting="${prefix}_GATEWAY_PORT" && export GATEWAY_PORT="${!setting:-$5}"
    export NATS_URL="nats://127.0.0.1:${NATS_PORT}"
}

compose_test() {
    label="$1" project="$2"
    shift 2
    compose_options=("$@")
    if docker compose version >/dev/null 2>&1; then compose_tool=(docker compose); else compose_tool=(docker-compose); fi
    keys="$(mktemp -d)"
    scratch_files=()
    trap teardown EXIT
}

compose() { "${compose_tool[@]}" -p "$project" "${compose_options[@]}" "$@"; }

step() { printf '\n--- %s: %s\n' "$label" "$*"; }

scratch() { scratch_files+=("$@"); }

plain_client() {
    venv=".offline/venv"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "nats-py==2.16.0" "nkeys==0.2.1" "$@"
}

probe() { NATS_NKEY="$keys/client" NATS_INBOX_PREFIX=_INBOX_client "$venv/bin/python" .ci/nats_probe.py "$@"; }

copy_key() {
    # sed reads all of it: with head, `compose ps` could die of SIGPIPE under pipefail.
    docker cp "$(compose ps -aq nats-auth | sed -n 1p):/auth/$1/nkey" "$keys/$1"
}

teardown() {
    local status=$?
    if [ "$status" -ne 0 ]; then
        step "FAILED ($status); service logs follow"
        compose logs --no-color --tail 50 || true
        # A container its restart policy restarted: what it said before it ended.
        for id in $(compose ps -q); do
            if [ "$(docker inspect -f '{{.RestartCount}}' "$id")" != 0 ]; then
                step "FAILED: warnings and errors of $(docker inspect -f '{{.Name}}' "$id"), which restarted"
                docker logs "$id" 2>&1 | grep -E ' (WARN|ERROR) |panicked|Error:' | tail -30 || true
            fi
        done
        # Last, where a truncated CI log still shows it: why the test failed.
        if [ -n "${test_log:-}" ] && [ -s "$test_log" ]; then
            step "FAILED: the test's own report and failure"
            grep -v '^[[:space:]]*$' "$test_log" | tail -60
        fi
    fi
    compose down --volumes --remove-orphans >/dev/null 2>&1 || true
    rm -rf "$keys" "${scratch_files[@]}"
    exit "$status"
}
