#!/usr/bin/env bash
# Property-based API test: schemathesis (PyPI) generates requests from the
# service's own /openapi.json and checks every response against it (no 5xx,
# documented status codes, headers, content types and schemas).
#
# Bounded: MAX_EXAMPLES per operation (default 30) and MAX_TIME seconds per
# run (default 120; there are two runs). Runs on a throwaway SQLite database and port.
#   examples/login-service/scripts/schemathesis.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
port="${PORT:-3901}"
base="http://127.0.0.1:$port"
max_examples="${MAX_EXAMPLES:-30}"
max_time="${MAX_TIME:-120}"
venv="${SCHEMATHESIS_VENV:-$root/target/schemathesis-venv}"
work="$(mktemp -d)"
db="sqlite://$work/schemathesis.db"

if [ ! -x "$venv/bin/schemathesis" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet schemathesis
fi

cargo build --quiet -p login-service --manifest-path "$root/Cargo.toml"
bin="$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/login-service"

# All fuzzing comes from one address: lift that limit so login's logic is
# exercised instead of its 429 (which the integration tests cover).
"$bin" --listen "127.0.0.1:$port" --database-url "$db" --login-failures-per-address 1000000 \
    >"$work/server.log" 2>&1 &
server=$!
cleanup() {
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

for _ in $(seq 1 100); do
    curl -fs "$base/openapi.json" >/dev/null 2>&1 && break
    sleep 0.2
done

# An admin token, so the protected operations are exercised past the layer.
printf '%s\n' 'schemathesis admin password' \
    | "$bin" --database-url "$db" users add --email admin@example.com --role admin >/dev/null
token="$(curl -fs -X POST "$base/auth/login" -H 'content-type: application/json' \
    -d '{"email":"admin@example.com","password":"schemathesis admin password"}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"

run() {
    "$venv/bin/schemathesis" run "$base/openapi.json" \
        --checks all \
        --max-examples "$max_examples" \
        --max-time "$max_time" \
        --workers 2 \
        --header "Authorization: Bearer $token" \
        --no-color \
        "$@"
}

status=0
# Logout last and alone: it revokes the token the other operations use.
run --exclude-path /auth/logout || status=$?
run --include-path /auth/logout || status=$?
if grep -Eq 'status=5[0-9][0-9]|panicked' "$work/server.log"; then
    echo "server log shows errors:" >&2
    grep -E 'status=5[0-9][0-9]|panicked' "$work/server.log" >&2
    status=1
fi
exit "$status"
