#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, then every test (unit, end-to-end
# against the sandbox org with the real keyring and loopback redirect, hostile servers), then the
# interop runs against implementations someone else wrote.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The packaged tray is built without the embedded sandbox org (feature `sandbox`): it must build and
# say so when asked for `--sandbox`. Its unit tests use the session bus (single instance,
# notifications), as the workspace's below.
cargo clippy -p ema-tray --no-default-features --all-targets --locked -- -D warnings
cargo test -p ema-tray --no-default-features --locked --no-run
scripts/with-desktop-session.sh cargo test -p ema-tray --no-default-features --locked
# Build first, so the desktop session below only runs tests.
cargo test --workspace --locked --no-run
scripts/with-desktop-session.sh cargo test --workspace --locked
tests/interop/run-all.sh
tests/tray/smoke.sh
tests/tray/e2e.sh
tests/tray/onboarding.sh
