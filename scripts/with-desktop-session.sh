#!/usr/bin/env bash
# Runs a command the way the tests and the headless demo need the desktop: a private HOME and
# XDG_RUNTIME_DIR, a D-Bus session bus, and gnome-keyring's Secret Service unlocked in it.
# Nothing touches the real home or keyring. Usage: scripts/with-desktop-session.sh COMMAND [ARGS...]
set -euo pipefail
if [ -z "${EMA_IN_TEST_SESSION:-}" ]; then
  base=$(mktemp -d /tmp/ema-test-session.XXXXXX)
  mkdir -p "$base/home" "$base/run"
  chmod 700 "$base/run"
  # cargo and rustup live under the real home: keep them there.
  export CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}" RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}"
  export HOME="$base/home" XDG_RUNTIME_DIR="$base/run" EMA_IN_TEST_SESSION=1 EMA_TEST_SESSION_DIR="$base"
  exec dbus-run-session -- "$0" "$@"
fi
# The keyring daemon runs in the foreground as our child for the whole session (not daemonized,
# so nothing else in the session can replace it), with the login keyring unlocked by the
# password on its stdin. A keyring that D-Bus would otherwise start on demand is locked and
# would ask for a password in a dialog that cannot appear here.
gnome-keyring-daemon --foreground --unlock --components=secrets <<<'test-password' >/dev/null 2>"$EMA_TEST_SESSION_DIR/keyring.log" &
for _ in $(seq 100); do
  [ -S "$XDG_RUNTIME_DIR/keyring/control" ] && break
  sleep 0.1
done
# Prove the Secret Service answers before handing over, so a broken session fails here, clearly.
probe="probe-$$"
if ! printf %s "$probe" | secret-tool store --label=ema-session-probe service dev.ema.session-probe key "$probe" 2>/dev/null \
  || [ "$(secret-tool lookup service dev.ema.session-probe key "$probe" 2>/dev/null)" != "$probe" ]; then
  echo "with-desktop-session: the gnome-keyring Secret Service does not work in this session:" >&2
  cat "$EMA_TEST_SESSION_DIR/keyring.log" >&2
  exit 1
fi
secret-tool clear service dev.ema.session-probe key "$probe" 2>/dev/null || true
exec "$@"
