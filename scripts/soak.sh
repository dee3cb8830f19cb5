#!/usr/bin/env bash
# Issue 11's soak: wrk at saturation on 127.0.0.1 against the axum example's
# GET /protected (HS256) and the login service's GET /auth/me (release
# build, SQLite in a temporary directory), each for SECONDS after a warm-up.
#
#   scripts/soak.sh [SECONDS]
#
# SECONDS defaults to 60; WARMUP (120 s), WRK_THREADS (1) and
# WRK_CONNECTIONS (64) tune the run. The warm-up is long because at
# saturation glibc's per-thread malloc arenas keep growing for minutes
# (the axum example: 6.9 MiB after 30 s, 7.9 after 60, 8.4 after 120, 8.6
# after 180), while with MALLOC_ARENA_MAX=1 (passed on to the servers)
# the same run is level within 2 % after 60 s: allocator retention, not
# live memory (BENCHMARKS.md, "Soak"). Goals per target: no failed request
# (non-2xx answers plus wrk's socket errors) and resident memory at the end
# within 10 % of its value after the warm-up (VmRSS from /proc). Exits 1
# when a goal is missed.
source "$(dirname "$0")/common.sh"

case "${1:-}" in -h | --help) sed -n '2,/^source/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
seconds="${1:-60}"
check_seconds "$seconds" 1
warmup="${WARMUP:-120}"
check_seconds "$warmup" 1
threads="${WRK_THREADS:-1}"
connections="${WRK_CONNECTIONS:-64}"

build -p tower-jwt-auth --example axum --features axum
build -p login-service --bin login-service

missed=0
summary=()

# soak NAME PID URL TOKEN
soak() {
  local name="$1" pid="$2" url="$3" auth="Authorization: Bearer $4"
  echo "== $name: ${warmup}s warm-up, then ${seconds}s at saturation (wrk -t$threads -c$connections)"
  local warm
  warm="$(run_wrk '' -t"$threads" -c"$connections" -d"${warmup}s" -H "$auth" "$url")"
  local rss_warm
  rss_warm="$(rss_kb "$pid")"
  # Resident memory once a second during the soak, for its trend.
  local samples
  samples="$(mktemp "$work/rss.XXXXXX")"
  (while kill -0 "$pid" 2>/dev/null; do rss_kb "$pid" >>"$samples" 2>/dev/null || true; sleep 1; done) &
  local sampler=$!
  local run
  run="$(run_wrk '' -t"$threads" -c"$connections" -d"${seconds}s" -H "$auth" "$url")"
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  local rss_end hwm
  rss_end="$(rss_kb "$pid")"
  hwm="$(hwm_kb "$pid")"
  local min max
  min="$(sort -n "$samples" | head -n1)"
  max="$(sort -n "$samples" | tail -n1)"
  local errs=$(( $(errors "$warm") + $(errors "$run") ))
  local change
  change="$(awk -v a="$rss_end" -v b="$rss_warm" 'BEGIN { printf "%+.1f", (a - b) * 100 / b }')"
  local verdict=ok
  if ((errs != 0)); then verdict="MISSED (errors)"; missed=1; fi
  if awk -v c="$change" 'BEGIN { exit !(c > 10 || c < -10) }'; then
    verdict="MISSED (memory)"
    missed=1
  fi
  printf '  %s requests, %.0f req/s, p50 %d us, p99 %d us, errors %d (non-2xx %d, socket %d)\n' \
    "$(field "$run" requests)" "$(field "$run" rps)" "$(field "$run" p50_us)" "$(field "$run" p99_us)" \
    "$errs" "$(( $(field "$warm" non2xx) + $(field "$run" non2xx) ))" \
    "$(( errs - $(field "$warm" non2xx) - $(field "$run" non2xx) ))"
  printf '  RSS after warm-up %d KiB, at the end %d KiB (%s %%); during the soak %d..%d KiB; peak (VmHWM) %d KiB\n' \
    "$rss_warm" "$rss_end" "$change" "$min" "$max" "$hwm"
  summary+=("$(printf '%-26s %8.0f req/s  errors %d  RSS %d -> %d KiB (%s %%)  %s' \
    "$name" "$(field "$run" rps)" "$errs" "$rss_warm" "$rss_end" "$change" "$verdict")")
}

# The axum example, HS256.
issuer=https://auth.load-test
audience=soak
secret="$(openssl rand -hex 32)"
start_server axum-example 'listening on http://([0-9.]+:[0-9]+)' \
  env -u JWT_PUBLIC_KEY_FILE RUST_LOG=warn JWT_SECRET="$secret" JWT_ISSUER="$issuer" \
  JWT_AUDIENCE="$audience" LISTEN=127.0.0.1:0 "$target_dir/release/examples/axum"
pid="$server_pid"
soak "axum example /protected" "$pid" "http://$server_addr/protected" \
  "$(hs256_token "$secret" "$issuer" "$audience")"
stop_server "$pid"

# The login service's protected route. The token outlives the run.
start_login_service --access-token-ttl-secs $((warmup + seconds + 3600))
ls_register soak@example.com 'correct horse battery staple'
soak "login-service /auth/me" "$ls_pid" "$ls_url/auth/me" \
  "$(ls_token soak@example.com 'correct horse battery staple')"
stop_server "$ls_pid"

echo
echo "soak, ${seconds}s each (goals: 0 errors, RSS at the end within 10 % of after warm-up):"
printf '  %s\n' "${summary[@]}"
exit "$missed"
