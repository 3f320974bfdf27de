#!/usr/bin/env bash
# Runs a command the way the tests and the headless demo need the desktop: a private HOME and XDG_RUNTIME_DIR, a
# D-Bus session bus, and gnome-keyring's Secret Service unlocked in it. Nothing touches the
# real home or keyring. Usage: scripts/with-desktop-session.sh COMMAND [ARGS...]
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
echo -n 'test-password' | gnome-keyring-daemon --unlock --components=secrets >/dev/null
exec "$@"
