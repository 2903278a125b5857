# Shared by the compose tests (.ci/compose-e2e.sh, .ci/cluster-faults.sh); sourced.
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
