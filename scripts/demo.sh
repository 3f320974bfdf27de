#!/usr/bin/env bash
# Runs the EMA tray app on the embedded sandbox org (a local IdP and seven connectors), installing
# what it needs. Usage: scripts/demo.sh
#
# On a desktop (DISPLAY or WAYLAND_DISPLAY set): the tray icon appears in your panel and the status
# window opens; click "Sign in" and log in as alice, bob, carol or dave (password `demo`) in your
# browser. Tokens go to your desktop keyring under "dev.ema.desktop".
#
# On a headless machine: the app runs under Xvfb in a private D-Bus session with gnome-keyring and
# a test tray host; the scripted browser signs in as $EMA_DEMO_USER (default alice) through the real
# loopback redirect, the tray menu is printed as a panel would read it, and a screenshot of the
# window is saved (on a first run, the welcome screens' connector list). In a terminal it then keeps
# running until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
app="$root/target/debug/ema-tray"
if [ -z "${EMA_IN_TEST_SESSION:-}" ]; then
  command -v cargo >/dev/null || { echo "error: cargo (Rust) is needed: https://rustup.rs" >&2; exit 2; }
  if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
    scripts/install-deps.sh
    cargo build -q -p ema-tray
    echo "Starting the EMA tray on the sandbox org (Quit from its menu)." >&2
    exec "$app" --sandbox --open
  fi
  scripts/install-deps.sh --headless
  echo "Building the tray app (a first build takes a few minutes)..." >&2
  cargo build -q -p ema-tray
  exec xvfb-run -a -s "-screen 0 1280x800x24" scripts/with-desktop-session.sh "$0" "$@"
fi
dir=$EMA_TEST_SESSION_DIR
shots="${EMA_DEMO_OUT:-/tmp/ema-demo}"
mkdir -p "$shots"
/usr/bin/python3 tests/tray/sni-watcher.py "$dir/items" >"$dir/watcher.log" 2>&1 &
watcher=$!
dunst >/dev/null 2>&1 &
dunst_pid=$!
for _ in $(seq 50); do grep -q ready "$dir/watcher.log" 2>/dev/null && break; sleep 0.1; done
export BROWSER="$root/tests/browser/scripted-browser.py" EMA_TEST_USER="${EMA_DEMO_USER:-alice}"
"$app" --sandbox --open >"$dir/tray.log" 2>&1 &
tray=$!
trap 'kill $tray $watcher $dunst_pid 2>/dev/null || true' EXIT
for _ in $(seq 200); do [ -s "$dir/items" ] && break; sleep 0.1; done
[ -s "$dir/items" ] || { echo "error: the tray app did not start:" >&2; cat "$dir/tray.log" >&2; exit 1; }
read -r sender item <"$dir/items"
path=$item
case "$item" in /*) ;; *) path=$(gdbus introspect --session --dest "$sender" --object-path / --recurse | grep -o '/org/ayatana/NotificationItem/[^ ]*' | head -1) ;; esac
layout() { gdbus call --session --dest "$sender" --object-path "$path/Menu" --method com.canonical.dbusmenu.GetLayout -- 0 -1 '["label"]' 2>/dev/null || true; }
labels() { layout | grep -oE "'label': <'[^']*'>" | sed -E "s/'label': <'(.*)'>/  \1/" | grep -v '^  Label Empty$'; }
for _ in $(seq 50); do layout | grep -q "Sign in" && break; sleep 0.2; done
echo "The tray is up, signed out. Clicking \"Sign in...\" in its menu (the scripted browser logs in as $EMA_TEST_USER)." >&2
id=$(layout | grep -oE "\(([0-9]+), \{'label': <'Sign in...'>" | grep -oE '[0-9]+' | head -1)
gdbus call --session --dest "$sender" --object-path "$path/Menu" --method com.canonical.dbusmenu.Event -- "$id" clicked '<"">' 0 >/dev/null
for _ in $(seq 150); do layout | grep -q "Signed in as" && ! layout | grep -q "connecting" && break; sleep 0.2; done
sleep 1
echo "The tray menu now reads:" >&2
labels >&2
import -window root "$shots/status-window.png" 2>/dev/null && echo "Screenshot of the window: $shots/status-window.png" >&2
if [ -t 0 ]; then
  echo "The tray keeps running on the sandbox org; Ctrl-C stops it." >&2
  wait $tray
fi
