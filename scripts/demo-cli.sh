#!/usr/bin/env bash
# The `ema` CLI on the embedded sandbox org: starts the org, signs you in, shows your connectors.
# (scripts/demo.sh runs the tray app instead.)
#
# With a desktop (DISPLAY/WAYLAND_DISPLAY) or $BROWSER set, sign-in happens in your browser:
# log in as alice, bob, carol or dave, password `demo`. On a headless machine the scripted
# browser signs in as $EMA_DEMO_USER (default alice) through the same loopback redirect.
# Without a desktop session, a private D-Bus session with gnome-keyring holds the tokens.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
if [ -z "${DBUS_SESSION_BUS_ADDRESS:-}" ] && [ -z "${EMA_IN_TEST_SESSION:-}" ]; then
  scripts/install-deps.sh --runtime
  command -v cargo >/dev/null || { echo "error: cargo (Rust) is needed: https://rustup.rs" >&2; exit 2; }
  scripts/install-deps.sh
  exec scripts/with-desktop-session.sh "$0" "$@"
fi
scripts/install-deps.sh
cargo build -q -p ema-cli
ema="$root/target/debug/ema"
work=$(mktemp -d /tmp/ema-demo.XXXXXX)
"$ema" sandbox --write-policy "$work/policy.json" >"$work/sandbox.out" 2>"$work/sandbox.err" &
sandbox_pid=$!
trap 'kill $sandbox_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$work/policy.json" ] && break; sleep 0.1; done
[ -s "$work/policy.json" ] || { cat "$work/sandbox.err" >&2; exit 1; }
export EMA_CONFIG="$work/policy.json"
sed -n '/Sandbox org at/,$p' "$work/sandbox.err"
if [ -z "${BROWSER:-}" ] && [ -z "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  export BROWSER="$root/tests/browser/scripted-browser.py" EMA_TEST_USER="${EMA_DEMO_USER:-alice}"
  echo "No desktop browser here: the scripted browser signs in as $EMA_TEST_USER." >&2
fi
echo >&2
"$ema" login || true
knobs=$(sed -n 's/.*Knobs: GET\/POST //p' "$work/sandbox.err")
if [ -t 0 ]; then
  cat >&2 <<MSG

You are in a shell on the sandbox org. Try:
  ema status            ema status --json       ema refresh       ema logout
  curl -X POST -d '{"idp_down":true}' $knobs     (provoke an IdP outage, then: ema refresh)
Type exit to stop the sandbox org.
MSG
  PATH="$root/target/debug:$PATH" PS1='(ema sandbox) $ ' bash --norc -i || true
else
  echo "(no terminal: the sandbox org stops now; run this script in a terminal to explore)" >&2
fi
