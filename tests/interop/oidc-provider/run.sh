#!/usr/bin/env bash
# What this proves: EMA's engine signs in at an independent, certified OpenID Provider
# (oidc-provider by panva, pinned in package-lock.json) through a real browser (Debian's Chromium,
# headless, driven by playwright-core), and the ID-JAGs that provider issues from an RFC 8693
# token exchange (registered with its `registerGrantType`, see provider.mjs) are accepted by the
# sandbox connectors' authorization servers, whose tokens the sandbox MCP servers accept.
# The test is tests/interop_oidc_provider.rs; it runs in a private desktop session with an
# unlocked gnome-keyring (scripts/with-desktop-session.sh), as the other end-to-end tests do.
#
# Usage: tests/interop/oidc-provider/run.sh [extra cargo test args]   (idempotent; installs
# chromium with apt if missing, the pinned npm packages incl. Node 22 with `npm ci`; network only
# for those installs). EMA_TEST_ARTIFACTS=<dir> keeps a screenshot of the signed-in page.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
STARTED=$SECONDS

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }

# 1. Chromium from Debian (Playwright's own browser download is not used: executablePath).
if [[ ! -x /usr/bin/chromium ]]; then
    say "installing chromium (apt)"
    SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
    $SUDO apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null || die "apt-get install chromium failed"
fi
CHROMIUM_VERSION="$(/usr/bin/chromium --version 2>/dev/null | tail -n1)" || die "/usr/bin/chromium does not run"

# 2. oidc-provider, jose, playwright-core and Node 22 exactly as locked (npm ci, node_modules/).
command -v npm >/dev/null || die "npm is required to install the pinned packages"
LOCK_SUM="$(sha256sum "$HERE/package.json" "$HERE/package-lock.json" | sha256sum | cut -d' ' -f1)"
NODE="$HERE/node_modules/.bin/node"
if [[ "$(cat "$HERE/node_modules/.installed" 2>/dev/null)" != "$LOCK_SUM" || ! -x "$NODE" ]]; then
    say "installing the pinned npm packages into $HERE/node_modules"
    (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed"
    echo "$LOCK_SUM" >"$HERE/node_modules/.installed"
fi
NODE_VERSION="$("$NODE" --version)" || die "the local Node at $NODE does not run"
[[ "$NODE_VERSION" == v22.* ]] || die "expected Node 22 at $NODE, found $NODE_VERSION"
version_of() { "$NODE" -p "require('$HERE/node_modules/$1/package.json').version"; }
say "Node $NODE_VERSION, oidc-provider $(version_of oidc-provider), jose $(version_of jose), playwright-core $(version_of playwright-core), $CHROMIUM_VERSION"

# 3. The test, in a desktop session with a keyring. Its target has `test = false` (a plain
# `cargo test --workspace` cannot run it), which also keeps it out of `clippy --all-targets`:
# lint it here.
export EMA_OIDC_PROVIDER_NODE="$NODE" EMA_OIDC_PROVIDER_DIR="$HERE"
cd "$ROOT"
cargo clippy --quiet -p ema-e2e --test interop_oidc_provider -- -D warnings || die "clippy failed on tests/interop_oidc_provider.rs"
set +e
scripts/with-desktop-session.sh cargo test -p ema-e2e --test interop_oidc_provider "$@"
STATUS=$?
set -e
ELAPSED=$((SECONDS - STARTED))
[[ $STATUS -eq 0 ]] || die "FAILED (exit $STATUS, ${ELAPSED}s)"
say "PASSED: sign-in and ID-JAG exchange against oidc-provider $(version_of oidc-provider) in $CHROMIUM_VERSION (${ELAPSED}s)"
