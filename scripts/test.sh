#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, then every test (unit, end-to-end
# against the sandbox org with the real keyring and loopback redirect, hostile servers), then the
# interop runs against implementations someone else wrote.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo fmt --all -- --check
# `--all-targets` leaves out the tests with `test = false` (the interop runs start them by name):
# named here, so a change that breaks them fails now, not in the interop stage. In the same run: on
# their own they resolve features differently and check a third of the tree again (3 min cold).
cargo clippy --workspace --all-targets --test interop_authlib --test interop_oidc_provider --test interop_mcp_python --locked -- -D warnings
# The packaged tray is built without the embedded sandbox org (feature `sandbox`): clippy proves it
# builds, lint-clean, tests included. Its tests are not run here: a third build of tauri's tree (8
# minutes cold) for the one test that differs, whose answer is tested in every build
# (services.rs) and whose build runs in bench/tray-footprint.sh. `cargo test -p ema-tray
# --no-default-features` inside scripts/with-desktop-session.sh runs them.
cargo clippy -p ema-tray --no-default-features --all-targets --locked -- -D warnings
# Build first, so the desktop session below only runs tests.
cargo test --workspace --locked --no-run
# The fuzz targets build in the background, niced, while the tests below (which mostly wait on
# servers, browsers and timers) run; each target then runs a short while, replaying the
# regressions and its corpus, so a regression shows (docs/fuzzing.md; long runs: scripts/fuzz.sh).
FUZZ_DEV=1 nice -n 19 scripts/fuzz.sh --build-only >target/fuzz-build.log 2>&1 &
fuzz_build=$!
trap 'kill "$fuzz_build" 2>/dev/null || true' EXIT
scripts/with-desktop-session.sh cargo test --workspace --locked
# The status window's script against the window protocol's types (written from the Rust enum by
# the unit test above): a renamed command or field fails here, not in a user's window.
tests/ui-types/run.sh
tests/interop/run-all.sh
tests/tray/smoke.sh
tests/tray/e2e.sh
tests/tray/onboarding.sh
# The fleet simulation (docs/fleet.md), short: 100 trays instead of 10,000, so a change that
# breaks the engine's scheduler on a virtual clock shows here; the figures come from the full run.
cargo run -q -p ema-fleet-bench --locked -- --employees 100
if ! wait "$fuzz_build"; then
  tail -n 60 target/fuzz-build.log >&2
  echo "the fuzz targets did not build (log: target/fuzz-build.log)" >&2
  exit 1
fi
FUZZ_DEV=1 FUZZ_NEW_CRASHES_FATAL=0 scripts/fuzz.sh "${EMA_CI_FUZZ_SECONDS:-15}"
