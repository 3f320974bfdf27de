#!/usr/bin/env bash
# Tray smoke test, headless and real: the tray app starts on the embedded sandbox org under Xvfb,
# exports its StatusNotifierItem and menu over D-Bus to a test watcher, and the menu (read with
# gdbus, as a desktop panel would) shows the signed-out state, one row per sandbox connector, and
# the actions. Usage: tests/tray/smoke.sh (installs xvfb and python3-dbus/gi if missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
if [ -z "${EMA_IN_TEST_SESSION:-}" ]; then
  scripts/install-deps.sh --headless
  cargo build -q -p ema-tray
  exec xvfb-run -a -s "-screen 0 1280x800x24" scripts/with-desktop-session.sh "$0" "$@"
fi
dir=$EMA_TEST_SESSION_DIR
/usr/bin/python3 tests/tray/sni-watcher.py "$dir/items" >"$dir/watcher.log" 2>&1 &
for _ in $(seq 50); do grep -q ready "$dir/watcher.log" 2>/dev/null && break; sleep 0.1; done
# The tray's own temporary directory, to find (and check) where it writes the sandbox policy.
mkdir -p "$dir/tmp"
TMPDIR="$dir/tmp" BROWSER="$root/tests/browser/scripted-browser.py" EMA_TEST_USER=alice EMA_TEST_BROWSER_LOG="$dir/browser.log" \
  "$root/target/debug/ema-tray" --sandbox >"$dir/tray.log" 2>&1 &
tray=$!
trap 'kill $tray 2>/dev/null || true' EXIT
for _ in $(seq 200); do [ -s "$dir/items" ] && break; sleep 0.1; done
if [ ! -s "$dir/items" ]; then
  echo "FAIL: the tray app registered no StatusNotifierItem within 20 s" >&2
  cat "$dir/tray.log" >&2
  exit 1
fi
# The item as a panel sees it: the latest registration (an indicator may register again while the
# app starts), its menu under the item's object path.
locate_item() {
  read -r sender item < <(tail -n 1 "$dir/items")
  path=$item
  case "$item" in /*) ;; *) path=$(gdbus introspect --session --dest "$sender" --object-path / --recurse 2>/dev/null | grep -o '/org/ayatana/NotificationItem/[^ ]*' | tail -n 1) ;; esac
}
layout=""
for _ in $(seq 100); do
  locate_item
  layout=$(gdbus call --session --dest "$sender" --object-path "$path/Menu" --method com.canonical.dbusmenu.GetLayout -- 0 -1 '["label"]' 2>/dev/null || true)
  echo "$layout" | grep -q "Linear" && break
  sleep 0.2
done
fail=0
for want in "Not signed in" "Asana - sign-in needed" "Linear - sign-in needed" "Supabase - sign-in needed" "Sign in..." "Open status window" "Quit EMA"; do
  if echo "$layout" | grep -qF "$want"; then echo "ok: menu has \"$want\""; else echo "FAIL: menu lacks \"$want\""; fail=1; fi
done
if [ $fail -ne 0 ]; then
  echo "menu layout was: $layout" >&2
  cat "$dir/tray.log" >&2
  exit 1
fi
# Click "Sign in..." as a panel would; the scripted browser ($BROWSER) signs alice in through the
# real loopback redirect, and the rebuilt menu must show her and her connectors.
id=$(echo "$layout" | grep -oE "\(([0-9]+), \{'label': <'Sign in...'>" | grep -oE '[0-9]+' | head -1)
gdbus call --session --dest "$sender" --object-path "$path/Menu" --method com.canonical.dbusmenu.Event -- "$id" clicked '<"">' 0 >/dev/null
for _ in $(seq 100); do
  layout=$(gdbus call --session --dest "$sender" --object-path "$path/Menu" --method com.canonical.dbusmenu.GetLayout -- 0 -1 '["label"]' 2>/dev/null || true)
  echo "$layout" | grep -q "Linear - active" && break
  sleep 0.2
done
for want in "Signed in as alice@example.com" "Linear - active until " "Supabase - active until " "Figma - not assigned to you" "Refresh now" "Sign out"; do
  if echo "$layout" | grep -qF "$want"; then echo "ok: after sign-in the menu has \"$want\""; else echo "FAIL: after sign-in the menu lacks \"$want\""; fail=1; fi
done
if [ $fail -ne 0 ]; then
  echo "menu layout was: $layout" >&2
  cat "$dir/tray.log" "$dir/browser.log" >&2 || true
  exit 1
fi
# One tray per org: the sandbox tray owns its own session-bus name (an installed EMA's stays free),
# and a second `--sandbox` launch hands over to it and exits.
has_owner() {
  gdbus call --session --dest org.freedesktop.DBus --object-path /org/freedesktop/DBus \
    --method org.freedesktop.DBus.NameHasOwner "$1" 2>/dev/null
}
if [ "$(has_owner dev.ema.desktop.Sandbox)" != "(true,)" ] || [ "$(has_owner dev.ema.desktop)" != "(false,)" ]; then
  echo "FAIL: the sandbox tray must own dev.ema.desktop.Sandbox and leave dev.ema.desktop free" >&2
  exit 1
fi
second=$(timeout 20 "$root/target/debug/ema-tray" --sandbox 2>&1) || { echo "FAIL: a second --sandbox launch failed: $second" >&2; exit 1; }
if ! echo "$second" | grep -q "already running" || ! kill -0 "$tray" 2>/dev/null; then
  echo "FAIL: a second --sandbox launch must hand over to the running tray: $second" >&2
  exit 1
fi
echo "ok: the sandbox tray owns dev.ema.desktop.Sandbox; a second --sandbox launch handed over and exited"
# Issue 14 item 12: the sandbox policy (the org's client secrets) was written 0644 to the
# predictable /tmp/ema-tray-sandbox-<pid>/policy.json, through any symlink planted there, and left
# behind after exit. Now: a private directory of random name, the file 0600, removed at exit.
mapfile -t policy_dirs < <(find "$dir/tmp" -maxdepth 1 -name 'ema-tray-sandbox-*')
if [ ${#policy_dirs[@]} -ne 1 ]; then
  echo "FAIL: expected one sandbox policy directory in $dir/tmp, found: ${policy_dirs[*]:-none}" >&2
  exit 1
fi
policy_dir=${policy_dirs[0]}
modes="$(stat -c %a "$policy_dir") $(stat -c %a "$policy_dir/policy.json")"
if [ "$modes" != "700 600" ] || [ "$policy_dir" = "$dir/tmp/ema-tray-sandbox-$tray" ] || [ -L "$policy_dir/policy.json" ]; then
  echo "FAIL: the sandbox policy must be private (700 600, random name, no symlink): $policy_dir $modes" >&2
  exit 1
fi
kill -TERM "$tray"
for _ in $(seq 100); do kill -0 "$tray" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$tray" 2>/dev/null || [ -e "$policy_dir" ]; then
  echo "FAIL: on SIGTERM the tray must exit and remove its sandbox policy directory ($policy_dir)" >&2
  ls -la "$policy_dir" >&2 || true
  exit 1
fi
echo "ok: the sandbox policy was private ($modes, random directory name) and removed when the tray was terminated"
echo "tray-smoke: 4 passed, 0 failed"
