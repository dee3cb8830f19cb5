#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each, one after the
# other, and prints executions and coverage per target from libFuzzer's
# final stats. New inputs go to target/corpus/<target> (gitignored); the
# checked-in seeds in corpus/<target> are only read. A crash leaves its
# input in artifacts/<target>/ and makes the script exit 1.
#
#   fuzz/run.sh SECONDS [TARGET...]
#
# FUZZ_SANITIZER=none builds without AddressSanitizer (cargo-fuzz's `-s`;
# debug assertions and overflow checks stay on): several times more
# executions per second, for the long runs. The default is cargo-fuzz's
# (address), which is what the smoke run uses. FUZZ_RUNS=N also stops each
# target after N executions (libFuzzer's -runs), SECONDS staying the cap.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
seconds="${1:?usage: fuzz/run.sh SECONDS [TARGET...]}"
shift
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(token_extraction verify_path differential jwks_parsing claims_decoder remote_documents)
fi
# Fuzz builds stay in fuzz/target whatever the caller's environment says;
# two build jobs by default (shared machines).
unset CARGO_TARGET_DIR
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
tdir="$here/target"
mkdir -p "$tdir"
sanitizer=()
if [ -n "${FUZZ_SANITIZER:-}" ]; then
  sanitizer=(-s "$FUZZ_SANITIZER")
fi

echo "== building the fuzz targets (log: fuzz/target/build.log)"
if ! cargo +nightly fuzz build "${sanitizer[@]}" --target-dir "$tdir" >"$tdir/build.log" 2>&1; then
  tail -n 40 "$tdir/build.log"
  echo "fuzz build failed"
  exit 1
fi

logs="$here/target/logs"
mkdir -p "$logs"
status=0
summary=()
for t in "${targets[@]}"; do
  mkdir -p "target/corpus/$t" "artifacts/$t"
  echo "== $t: ${seconds}s"
  cargo +nightly fuzz run "${sanitizer[@]}" --target-dir "$tdir" "$t" "target/corpus/$t" "corpus/$t" -- \
    -max_total_time="$seconds" ${FUZZ_RUNS:+-runs="$FUZZ_RUNS"} -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
    >"$logs/$t.log" 2>&1
  rc=$?
  execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$logs/$t.log" | tail -n1 | grep -o '[0-9]*$')"
  last="$(grep -E '^#[0-9]+' "$logs/$t.log" | grep -o 'cov: [0-9]* ft: [0-9]*' | tail -n1)"
  corpus="$(grep -E '^#[0-9]+' "$logs/$t.log" | grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' | tail -n1)"
  if [ "$rc" -ne 0 ]; then
    status=1
    result="FINDING (exit $rc, see $logs/$t.log and artifacts/$t/)"
    grep -E 'panicked at|ERROR: libFuzzer|SUMMARY' "$logs/$t.log" | head -n 5
  else
    result="ok"
  fi
  line="$(printf '%-17s execs %-10s %-22s %-16s %s' "$t" "${execs:-?}" "${last:-cov: ?}" "${corpus:-}" "$result")"
  echo "$line"
  summary+=("$line")
done
echo "== summary (${seconds}s per target, sanitizer ${FUZZ_SANITIZER:-address})"
printf '%s\n' "${summary[@]}"
exit "$status"
