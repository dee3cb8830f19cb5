#!/usr/bin/env bash
# Issue 10's loopback targets: the same axum route, open and behind the
# layer, under wrk on 127.0.0.1, in the same run; HS256 and RS256 (2048)
# with one token repeated; then the login service's /auth/me against its
# open /.well-known/openid-configuration (both JSON from memory; /auth/me
# also checks the revocation denylist).
#
#   scripts/loopback.sh [--cache] [SECONDS]
#
# SECONDS per wrk measurement (default 10). Each pair is measured ROUNDS
# times (default 2), alternating which route goes first; the ratio
# protected / open is printed per round, each from measurements seconds
# apart on the same server. --cache (or JWT_CACHE=1) turns the
# verified-token cache on in examples/bench_server.rs (feature cache).
# FASTAPI_BASELINE=1 also serves the same /auth/me from the seed's stack,
# FastAPI + PyJWT on one uvicorn worker (scripts/fastapi-baseline, installed
# into a virtualenv under $TMPDIR from its pinned requirements), against the
# same login service's keys, and prints /auth/me's req/s over it.
# WRK_THREADS (1) and WRK_CONNECTIONS (32) tune the client; FEATURES picks
# the library's signature backend (e.g. FEATURES=aws_lc_rs). Exits 1 when a
# request failed (a broken set-up, not a slow one): the targets are
# reported, not enforced.
source "$(dirname "$0")/common.sh"

cache="${JWT_CACHE:-}"
seconds=10
for arg in "$@"; do
  case "$arg" in
    --cache) cache=1 ;;
    -h | --help) sed -n '2,/^source/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) seconds="$arg" ;;
  esac
done
check_seconds "$seconds" 1
rounds="${ROUNDS:-2}"
check_seconds "$rounds" 1
threads="${WRK_THREADS:-1}"
connections="${WRK_CONNECTIONS:-32}"

features="${FEATURES:-}"
if [[ -n "$cache" ]]; then features="${features:+$features,}cache"; fi
build -p tower-jwt-auth --example bench_server ${features:+--features "$features"}
build -p login-service --bin login-service

failures=0
summary=()

# measure NAME OPEN_URL PROTECTED_URL TOKEN: warm-up, then ROUNDS pairs.
measure() {
  local name="$1" open="$2" protected="$3" token="$4"
  local auth="Authorization: Bearer $token"
  run_wrk '' -t1 -c8 -d2s "$open" >/dev/null
  run_wrk '' -t1 -c8 -d2s -H "$auth" "$protected" >/dev/null
  local round o p ratios=()
  for ((round = 1; round <= rounds; round++)); do
    if ((round % 2)); then
      o="$(run_wrk '' -t"$threads" -c"$connections" -d"${seconds}s" "$open")"
      p="$(run_wrk '' -t"$threads" -c"$connections" -d"${seconds}s" -H "$auth" "$protected")"
    else
      p="$(run_wrk '' -t"$threads" -c"$connections" -d"${seconds}s" -H "$auth" "$protected")"
      o="$(run_wrk '' -t"$threads" -c"$connections" -d"${seconds}s" "$open")"
    fi
    local bad=$(( $(errors "$o") + $(errors "$p") ))
    failures=$((failures + bad))
    ratios+=("$(ratio "$(field "$p" rps)" "$(field "$o" rps)")")
    printf '%-22s round %d: open %9.0f req/s (p99 %6d us)  protected %9.0f req/s (p99 %6d us)  ratio %s  errors %d\n' \
      "$name" "$round" "$(field "$o" rps)" "$(field "$o" p99_us)" \
      "$(field "$p" rps)" "$(field "$p" p99_us)" "${ratios[-1]}" "$bad"
  done
  summary+=("$(printf '%-22s %s' "$name" "${ratios[*]}")")
}

issuer=https://auth.load-test
audience=bench
label="uncached"
cache_env=(-u JWT_CACHE)
if [[ -n "$cache" ]]; then
  label="cached"
  cache_env=(JWT_CACHE=1)
fi

# HS256
secret="$(openssl rand -hex 32)"
start_server bench-hs256 'listening on http://([0-9.]+:[0-9]+)' \
  env -u JWT_PUBLIC_KEY_FILE "${cache_env[@]}" JWT_SECRET="$secret" JWT_ISSUER="$issuer" \
  JWT_AUDIENCE="$audience" LISTEN=127.0.0.1:0 "$target_dir/release/examples/bench_server"
pid="$server_pid"
measure "HS256 $label" "http://$server_addr/open" "http://$server_addr/protected" \
  "$(hs256_token "$secret" "$issuer" "$audience")"
stop_server "$pid"

# RS256, 2048-bit key
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/rsa.pem" 2>/dev/null
openssl pkey -in "$work/rsa.pem" -pubout -out "$work/rsa.pub.pem"
start_server bench-rs256 'listening on http://([0-9.]+:[0-9]+)' \
  env -u JWT_SECRET "${cache_env[@]}" JWT_PUBLIC_KEY_FILE="$work/rsa.pub.pem" JWT_ISSUER="$issuer" \
  JWT_AUDIENCE="$audience" LISTEN=127.0.0.1:0 "$target_dir/release/examples/bench_server"
pid="$server_pid"
measure "RS256 $label" "http://$server_addr/open" "http://$server_addr/protected" \
  "$(rs256_token "$work/rsa.pem" "$issuer" "$audience")"
stop_server "$pid"

# The login service: /auth/me (EdDSA, typ at+jwt, denylist) vs an open route.
start_login_service --access-token-ttl-secs 86400
ls_register loopback@example.com 'correct horse battery staple'
me_token="$(ls_token loopback@example.com 'correct horse battery staple')"
measure "login-service /auth/me" "$ls_url/.well-known/openid-configuration" "$ls_url/auth/me" "$me_token"

# The seed's stack on the same token and keys, measured right after.
if [[ -n "${FASTAPI_BASELINE:-}" ]]; then
  venv="${TMPDIR:-/tmp}/tower-jwt-auth-fastapi-venv"
  if [[ ! -x "$venv/bin/uvicorn" ]]; then
    echo "== installing FastAPI + PyJWT into $venv" >&2
    python3 -m venv "$venv" && "$venv/bin/pip" install -q -r "$root/scripts/fastapi-baseline/requirements.txt" >&2 \
      || die "could not install the FastAPI baseline"
  fi
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  start_server fastapi 'Uvicorn running on http://([0-9.]+:[0-9]+)' \
    env JWKS_URL="$ls_url/.well-known/jwks.json" ISSUER=http://login.load-test \
    AUDIENCE=login-service \
    DENYLIST_DB="$work/fastapi-denylist.db" \
    "$venv/bin/uvicorn" --app-dir "$root/scripts/fastapi-baseline" app:app \
    --host 127.0.0.1 --port "$port" --workers 1 --log-level info --no-access-log
  fastapi_pid="$server_pid"
  fastapi_url="http://$server_addr"
  run_wrk '' -t1 -c8 -d2s -H "Authorization: Bearer $me_token" "$fastapi_url/auth/me" >/dev/null
  for ((round = 1; round <= rounds; round++)); do
    f="$(run_wrk '' -t"$threads" -c"$connections" -d"${seconds}s" -H "Authorization: Bearer $me_token" "$fastapi_url/auth/me")"
    m="$(run_wrk '' -t"$threads" -c"$connections" -d"${seconds}s" -H "Authorization: Bearer $me_token" "$ls_url/auth/me")"
    bad=$(( $(errors "$f") + $(errors "$m") ))
    failures=$((failures + bad))
    fastapi_ratios+=("$(ratio "$(field "$m" rps)" "$(field "$f" rps)")")
    printf '%-22s round %d: FastAPI+PyJWT %7.0f req/s (p99 %6d us)  login service %9.0f req/s (p99 %6d us)  ratio %s  errors %d\n' \
      "/auth/me vs seed" "$round" "$(field "$f" rps)" "$(field "$f" p99_us)" \
      "$(field "$m" rps)" "$(field "$m" p99_us)" "${fastapi_ratios[-1]}" "$bad"
  done
  summary+=("$(printf '%-22s %s  (login service / FastAPI + PyJWT; target >= 50)' "/auth/me vs seed" "${fastapi_ratios[*]}")")
  stop_server "$fastapi_pid"
fi
stop_server "$ls_pid"

echo
echo "protected / open, per round (wrk -t$threads -c$connections -d${seconds}s; issue 10 targets: HS256 >= 0.65 uncached, RS256 >= 0.85 cached):"
printf '  %s\n' "${summary[@]}"
if ((failures)); then
  echo "FAILED: $failures requests failed (non-2xx or socket errors)" >&2
  exit 1
fi
