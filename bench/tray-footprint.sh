#!/usr/bin/env bash
# Tray footprint benchmark: the EMA tray app (ema-tray) side by side with a bare Tauri 2 tray app
# (bench/bare-tray: icon, one-item menu, no window) built by the same toolchain in the same run.
#
# Reports, for each app, with the status window closed:
#   - idle memory after a settle time: RSS, PSS and USS summed over the process and all descendants;
#   - CPU time and wake-ups (context switches of every thread) over an idle window;
#   - whether a browser-engine process (WebKitWebProcess/WebKitNetworkProcess) is in its tree;
# and the time from exec to a built tray menu (read over D-Bus with dbusmenu GetLayout, as a
# panel would), for ema-tray with stored tokens (a user already signed in: the row
# "Linear - active"), 5 launches. Everything runs headless and real: release builds, Xvfb, a
# D-Bus session with gnome-keyring's Secret Service, a StatusNotifierWatcher, the sandbox org as
# its own process and a sign-in through the CLI (`ema login`) with the scripted browser.
#
# ema-tray is measured as it is packaged: `cargo build --release -p ema-tray --no-default-features`
# (no embedded sandbox org). With --no-build, whatever target/release/ema-tray is gets measured.
#
# Prints a markdown table; writes target/bench/tray-footprint.json (and .md), logs in
# target/bench/tray-footprint-logs/.
#
# Usage: bench/tray-footprint.sh [--idle-seconds N] [--settle-seconds N] [--launches N] [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
args=("$@")
idle=60 settle=10 launches=5 build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --idle-seconds) idle=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
    --idle-seconds=*) idle=${1#*=}; shift ;;
    --settle-seconds) settle=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
    --settle-seconds=*) settle=${1#*=}; shift ;;
    --launches) launches=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
    --launches=*) launches=${1#*=}; shift ;;
    --no-build) build=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "tray-footprint: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done
for v in "$idle" "$settle" "$launches"; do
  [[ "$v" =~ ^[0-9]+$ ]] || { echo "tray-footprint: not a whole number: '$v'" >&2; exit 2; }
done
[ "$idle" -ge 1 ] && [ "$launches" -ge 1 ] || { echo "tray-footprint: --idle-seconds and --launches must be at least 1" >&2; exit 2; }

target=${CARGO_TARGET_DIR:-$root/target}
bin=$target/release
out=$target/bench

if [ -z "${EMA_IN_TEST_SESSION:-}" ]; then
  scripts/install-deps.sh
  missing=()
  for p in xvfb xauth dbus gnome-keyring libsecret-tools python3-dbus python3-gi; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "tray-footprint: installing ${missing[*]}" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if [ "$build" -eq 1 ]; then
    echo "tray-footprint: building ema-tray, bare-tray and ema in release (a cold build takes several minutes)..." >&2
    # ema-tray as it is packaged: on its own (no features unified in from the CLI) and without the
    # embedded sandbox org (`sandbox`, a default feature for development and tests).
    cargo build --release -p ema-tray --no-default-features
    cargo build --release -p bare-tray -p ema-cli
  fi
  for b in ema-tray bare-tray ema; do
    [ -x "$bin/$b" ] || { echo "tray-footprint: $bin/$b is missing (run without --no-build)" >&2; exit 1; }
  done
  mkdir -p "$out"
  rm -f "$out/.tray-footprint-session"
  rc=0
  xvfb-run -a -s "-screen 0 1280x800x24" scripts/with-desktop-session.sh "$0" "${args[@]}" || rc=$?
  # The session directory (scripts/with-desktop-session.sh made it for this run) goes once the
  # session's services are gone.
  if [ -s "$out/.tray-footprint-session" ]; then
    session=$(cat "$out/.tray-footprint-session")
    case "$session" in
      /tmp/ema-test-session.*) rm -rf "$session" 2>/dev/null || { sleep 1; rm -rf "$session" 2>/dev/null || true; } ;;
    esac
    rm -f "$out/.tray-footprint-session"
  fi
  exit $rc
fi

# Inside Xvfb and the desktop session (private HOME, D-Bus session bus, unlocked gnome-keyring).
dir=$EMA_TEST_SESSION_DIR
echo "$dir" >"$out/.tray-footprint-session"
logs=$out/tray-footprint-logs
rm -rf "$logs" && mkdir -p "$logs"
pids=()
cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  cp "$dir"/*.log "$dir"/*.out "$logs/" 2>/dev/null || true
  [ $rc -eq 0 ] || echo "tray-footprint: failed (exit $rc); logs in $logs" >&2
  # The document portal (activated with xdg-desktop-portal below) has a FUSE mount in the session
  # directory: detach it so the directory can be removed when the session is over.
  mountpoint -q "$XDG_RUNTIME_DIR/doc" 2>/dev/null && { fusermount -uz "$XDG_RUNTIME_DIR/doc" 2>/dev/null || true; }
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
  echo "tray-footprint: FAIL: $1" >&2
  shift
  for f in "$@"; do [ -s "$f" ] && { echo "--- $f" >&2; tail -n 40 "$f" >&2; }; done
  exit 1
}

# The tray host: a StatusNotifierWatcher that records every registration.
/usr/bin/python3 tests/tray/sni-watcher.py "$dir/items" >"$dir/watcher.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q ready "$dir/watcher.log" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$dir/watcher.log" 2>/dev/null || fail "the StatusNotifierWatcher did not start" "$dir/watcher.log"
: >"$dir/items"

# The sandbox org, as a process of its own (not inside the app being measured).
EMA_LOG=warn "$bin/ema" sandbox --write-policy "$dir/policy.json" >"$dir/sandbox.out" 2>"$dir/sandbox.log" &
sandbox=$!
pids+=($sandbox)
for _ in $(seq 200); do [ -s "$dir/policy.json" ] && break; kill -0 $sandbox 2>/dev/null || break; sleep 0.1; done
[ -s "$dir/policy.json" ] || fail "the sandbox org did not write its policy ($dir/policy.json)" "$dir/sandbox.log"

# Sign in once through the CLI: the tokens land in this session's keyring, where ema-tray finds them.
login_rc=0
BROWSER="$root/tests/browser/scripted-browser.py" EMA_TEST_USER=alice EMA_TEST_BROWSER_LOG="$dir/browser.log" EMA_LOG=warn \
  timeout 120 "$bin/ema" --config "$dir/policy.json" login --timeout 60 >"$dir/login.out" 2>"$dir/login.log" || login_rc=$?
grep -q "Signed in as" "$dir/login.log" \
  || fail "ema login did not sign alice in (exit $login_rc)" "$dir/login.log" "$dir/login.out" "$dir/browser.log"
grep -q "Linear.*active" "$dir/login.out" \
  || fail "after ema login, Linear is not active" "$dir/login.out" "$dir/login.log"
echo "tray-footprint: signed in as alice on the sandbox org; measuring..." >&2

# A desktop session runs xdg-desktop-portal; here it is D-Bus-activated by the first GTK app that
# asks, and that first app alone then loads Mesa's llvmpipe (libLLVM, ~50 MB RSS), whichever app
# it is. Start the portal first so both apps are measured in the same, real-desktop-like state.
portal=absent
if timeout 20 gdbus call --session --dest org.freedesktop.portal.Desktop --object-path /org/freedesktop/portal/desktop \
  --method org.freedesktop.DBus.Peer.Ping >/dev/null 2>"$dir/portal.log"; then
  portal=running
else
  echo "tray-footprint: warning: xdg-desktop-portal is not available; the first app launched may load Mesa (llvmpipe)" >&2
fi

tauri=$(awk '/^name = "tauri"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
meta=$(printf '{"profile":"release","tauri":"%s","rustc":"%s","display":"Xvfb 1280x800x24","tray_host":"tests/tray/sni-watcher.py (StatusNotifierWatcher)","keyring":"gnome-keyring Secret Service","sandbox":"ema sandbox, separate process","xdg_desktop_portal":"%s","kernel":"%s"}' \
  "$tauri" "$(rustc --version 2>/dev/null || echo unknown)" "$portal" "$(uname -r)")
EMA_LOG=warn /usr/bin/python3 bench/tray_footprint.py \
  --ema "$bin/ema-tray" --bare "$bin/bare-tray" --config "$dir/policy.json" --items "$dir/items" \
  --logdir "$logs" --out "$out/tray-footprint.json" \
  --idle-seconds "$idle" --settle-seconds "$settle" --launches "$launches" --meta "$meta"
echo "tray-footprint: wrote $out/tray-footprint.json" >&2
