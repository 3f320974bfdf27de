#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, then every test (unit, end-to-end
# against the sandbox org with the real keyring and loopback redirect, hostile servers).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
scripts/with-desktop-session.sh cargo test --workspace --locked
tests/interop/run-all.sh
