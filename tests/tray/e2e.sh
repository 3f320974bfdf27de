#!/usr/bin/env bash
# The tray app end to end, headless and real (see e2e.py for what it checks): Xvfb, a D-Bus
# session with gnome-keyring's Secret Service, dunst as the notification daemon (Notify calls
# recorded by dbus-monitor), a StatusNotifierWatcher, tauri-driver + WebKitWebDriver.
# Screenshots and logs land in target/test-artifacts/tray/.
# Usage: tests/tray/e2e.sh (installs what it needs); EMA_E2E_SCRIPT runs another script in the same
# kind of session (tests/tray/onboarding.sh does).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
if [ -z "${EMA_IN_TEST_SESSION:-}" ]; then
  scripts/install-deps.sh --headless
  command -v tauri-driver >/dev/null || cargo install tauri-driver --locked --version '^2' --quiet
  cargo build -q -p ema-tray -p ema-cli
  export EMA_ARTIFACTS="$root/target/test-artifacts/tray"
  # onboarding.sh runs after e2e.sh in the suite: both keep their screenshots.
  [ -n "${EMA_ARTIFACTS_KEEP:-}" ] || rm -rf "$EMA_ARTIFACTS"
  mkdir -p "$EMA_ARTIFACTS"
  exec xvfb-run -a -s "-screen 0 1280x800x24" scripts/with-desktop-session.sh "$0" "$@"
fi
dir=$EMA_TEST_SESSION_DIR
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  cp "$dir"/*.log "$EMA_ARTIFACTS/" 2>/dev/null || true
}
trap cleanup EXIT
/usr/bin/python3 tests/tray/sni-watcher.py "$dir/items" >"$dir/watcher.log" 2>&1 &
pids+=($!)
dbus-monitor --session "type='method_call',interface='org.freedesktop.Notifications',member='Notify'" >"$dir/notify.log" 2>&1 &
pids+=($!)
dunst >"$dir/dunst.log" 2>&1 &
pids+=($!)
# The app inherits tauri-driver's environment: the scripted browser signs alice in.
export BROWSER="$root/tests/browser/scripted-browser.py" EMA_TEST_USER=alice EMA_TEST_BROWSER_LOG="$dir/browser.log"
tauri-driver --native-driver /usr/bin/WebKitWebDriver >"$dir/driver.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do grep -q ready "$dir/watcher.log" 2>/dev/null && break; sleep 0.1; done
for _ in $(seq 100); do curl -sf http://127.0.0.1:4444/status >/dev/null 2>&1 && break; sleep 0.1; done
/usr/bin/python3 ${EMA_E2E_SCRIPT:-tests/tray/e2e.py}
