#!/usr/bin/env bash
# CI smoke run of the fuzz targets: each for FUZZ_SMOKE_SECONDS (default 5)
# from the checked-in seeds. Needs a nightly toolchain (`cargo +nightly`);
# without one it says so and exits 0. Installs cargo-fuzz when it is
# missing (CI machines start fresh). A crash fails the run (exit 1).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz smoke: skipped: no nightly toolchain (cargo +nightly); install one with: rustup toolchain install nightly"
  exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz smoke: cargo-fuzz missing; installing it (cargo install cargo-fuzz --locked)"
  if ! cargo install cargo-fuzz --locked; then
    echo "fuzz smoke: failed: nightly is there but cargo-fuzz could not be installed"
    exit 1
  fi
fi
echo "fuzz smoke: $(cargo +nightly --version), $(cargo +nightly fuzz --version)"
exec "$here/run.sh" "${FUZZ_SMOKE_SECONDS:-5}"
