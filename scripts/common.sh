# Shared by the load scripts (sourced, not run): building, starting servers
# on 127.0.0.1 with a port of their choosing, minting tokens with openssl,
# running wrk with a machine-readable report, and reading resident memory
# from /proc. Everything started here is stopped when the script exits.

set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
work="$(mktemp -d "${TMPDIR:-/tmp}/tower-jwt-auth-load.XXXXXX")"
started=()

die() { echo "error: $*" >&2; exit 2; }

cleanup() {
  local pid
  for pid in "${started[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is not installed ($2)"
}
need wrk "apt-get install wrk"
need openssl "apt-get install openssl"
need curl "apt-get install curl"
need cargo "https://rustup.rs"
[[ -r /proc/self/status ]] || die "/proc is needed to read resident memory (Linux)"

# A whole number of seconds, at least $2.
check_seconds() {
  [[ "$1" =~ ^[0-9]+$ ]] && (( $1 >= $2 )) || die "expected whole seconds >= $2, got '$1'"
}

# build ARGS...: cargo build --release, quietly unless it fails.
build() {
  echo "== cargo build --release $*" >&2
  (cd "$root" && cargo build --release --quiet "$@") >&2
}

# start_server NAME PATTERN CMD...: runs CMD in the background (its output
# in $work/NAME.log), waits up to 120 s for PATTERN (an extended regex whose
# first group is host:port) in that output, and sets $server_pid and
# $server_addr.
start_server() {
  local name="$1" pattern="$2"
  shift 2
  local log="$work/$name.log"
  "$@" >"$log" 2>&1 &
  server_pid=$!
  started+=("$server_pid")
  local i
  for ((i = 0; i < 1200; i++)); do
    if [[ "$(sed -nE "s#.*${pattern}.*#\\1#p" "$log" | head -n1)" =~ ^[0-9.]+:[0-9]+$ ]]; then
      server_addr="$(sed -nE "s#.*${pattern}.*#\\1#p" "$log" | head -n1)"
      return 0
    fi
    kill -0 "$server_pid" 2>/dev/null || { cat "$log" >&2; die "$name exited before listening"; }
    sleep 0.1
  done
  cat "$log" >&2
  die "$name did not start listening within 120 s"
}

# stop_server PID: SIGTERM (graceful), then wait.
stop_server() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  forget "$1"
}

# forget PID: a process that has been waited for is no longer ours to stop.
forget() {
  local pid rest=()
  for pid in "${started[@]}"; do
    [[ "$pid" == "$1" ]] || rest+=("$pid")
  done
  started=("${rest[@]}")
}

# rss_kb PID / hwm_kb PID: resident memory now / at its peak, in KiB.
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }

# cpu_seconds PID: user + system CPU time the process has used.
cpu_seconds() {
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13) / hz }' "/proc/$1/stat"
}

# thread_cpu_seconds PID NAME: user + system CPU time used by the
# process's threads called NAME.
thread_cpu_seconds() {
  local hz
  hz="$(getconf CLK_TCK)"
  cat /proc/"$1"/task/*/stat 2>/dev/null |
    awk -v name="($2)" -v hz="$hz" '$2 == name { sub(/^.*\) /, ""); t += $12 + $13 } END { print t / hz }'
}

# all_jiffies: the whole machine's CPU time from /proc/stat, busy or
# idle, every CPU, in clock ticks.
all_jiffies() { awk '/^cpu / { print $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9; exit }' /proc/stat; }

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

# The claims every minted token carries: valid for a day.
claims_json() {
  local now
  now="$(date +%s)"
  printf '{"iss":"%s","aud":"%s","sub":"load-test","scope":"read","iat":%d,"exp":%d}' \
    "$1" "$2" "$now" "$((now + 86400))"
}

# hs256_token SECRET ISSUER AUDIENCE
hs256_token() {
  local input
  input="$(printf '{"alg":"HS256","typ":"JWT"}' | b64url).$(claims_json "$2" "$3" | b64url)"
  printf '%s.%s' "$input" "$(printf '%s' "$input" | openssl dgst -sha256 -hmac "$1" -binary | b64url)"
}

# rs256_token PRIVATE_KEY_PEM ISSUER AUDIENCE
rs256_token() {
  local input
  input="$(printf '{"alg":"RS256","typ":"JWT"}' | b64url).$(claims_json "$2" "$3" | b64url)"
  printf '%s.%s' "$input" "$(printf '%s' "$input" | openssl dgst -sha256 -sign "$1" -binary | b64url)"
}

# The report every wrk run ends with: one line of key=value pairs.
report_lua='
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d seconds=%.3f rps=%.1f non2xx=%d connect=%d read=%d write=%d timeout=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
'

# run_wrk LUA_PREFIX WRK_ARGS...: runs wrk with LUA_PREFIX (request/delay
# functions, may be empty) plus the report; prints the RESULT line.
run_wrk() {
  local prefix="$1"
  shift
  local script
  script="$(mktemp "$work/wrk.XXXXXX.lua")"
  printf '%s\n%s\n' "$prefix" "$report_lua" >"$script"
  local out
  out="$(wrk -s "$script" "$@" 2>&1)" || { echo "$out" >&2; die "wrk failed: wrk $*"; }
  grep '^RESULT ' <<<"$out" || { echo "$out" >&2; die "wrk printed no report"; }
}

# field RESULT_LINE NAME: one value of a RESULT line.
field() { sed -nE "s/.* $2=([^ ]+).*/\\1/p" <<<" ${1#RESULT }"; }

# errors RESULT_LINE: non-2xx answers plus socket errors.
errors() {
  local r="$1"
  echo $(( $(field "$r" non2xx) + $(field "$r" connect) + $(field "$r" read) + $(field "$r" write) + $(field "$r" timeout) ))
}

# ratio A B [DIGITS]: A / B.
ratio() { awk -v a="$1" -v b="$2" -v d="${3:-2}" 'BEGIN { printf "%.*f", d, (b == 0 ? 0 : a / b) }'; }

# The login service, release build, on a SQLite file in $work:
# start_login_service [FLAGS...] sets $ls_pid and $ls_url. Request logs are
# off (RUST_LOG=warn): at saturation they would cost more than the routes.
start_login_service() {
  start_server login-service 'login-service listening address=([0-9.]+:[0-9]+)' \
    env RUST_LOG="${LOGIN_SERVICE_LOG:-warn,login_service=info}" \
    "$target_dir/release/login-service" \
    --database-url "sqlite://$work/login-service.db" \
    --listen 127.0.0.1:0 --issuer http://login.load-test --no-docs "$@"
  ls_pid="$server_pid"
  ls_url="http://$server_addr"
}

# ls_post PATH JSON: POST to the login service; prints the body, fails on
# an unexpected status.
ls_post() {
  curl -sS --fail-with-body --noproxy '*' -X POST "$ls_url$1" \
    -H 'content-type: application/json' -d "$2" || die "POST $1 failed"
}

ls_register() {
  ls_post /auth/register "{\"email\":\"$1\",\"password\":\"$2\"}" >/dev/null
}

# ls_token EMAIL PASSWORD: logs in, prints the access token.
ls_token() {
  local body
  body="$(ls_post /auth/login "{\"email\":\"$1\",\"password\":\"$2\"}")"
  sed -nE 's/.*"access_token":"([^"]+)".*/\1/p' <<<"$body"
}
