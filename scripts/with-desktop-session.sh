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
  # The session bus starts services on demand from our own directory: the system's services, except
  # that the Secret Service (and the rest of gnome-keyring) is our unlocked keyring. The system's
  # would come up locked and ask for a password in a dialog that cannot appear here; a CI run saw
  # that after gnome-keyring-daemon aborted mid-run (a GLib error in its aes_negotiate when a
  # client vanished with a session request in flight), and the tests then hung on the prompt.
  mkdir -p "$base/services"
  for service in /usr/share/dbus-1/services/*.service; do
    case "$(basename "$service")" in
      org.freedesktop.secrets.service | org.gnome.keyring*.service | org.freedesktop.impl.portal.Secret.service) ;;
      *) ln -s "$service" "$base/services/" ;;
    esac
  done
  # The login keyring's password, as the watchdog below sends it (a here-string: with its newline).
  printf 'test-password\n' >"$base/keyring-password"
  cat >"$base/keyring-on-demand.sh" <<'SH'
#!/bin/sh
echo "with-desktop-session: the Secret Service was started on demand, unlocked" >>"$EMA_TEST_SESSION_DIR/keyring.log"
echo $$ >>"$EMA_TEST_SESSION_DIR/keyring-on-demand.pids"
exec gnome-keyring-daemon --foreground --replace --unlock --components=secrets \
  <"$EMA_TEST_SESSION_DIR/keyring-password" >/dev/null 2>>"$EMA_TEST_SESSION_DIR/keyring.log"
SH
  chmod 755 "$base/keyring-on-demand.sh"
  printf '[D-BUS Service]\nName=org.freedesktop.secrets\nExec=%s\n' "$base/keyring-on-demand.sh" \
    >"$base/services/org.freedesktop.secrets.service"
  cat >"$base/session.conf" <<XML
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <keep_umask/>
  <listen>unix:tmpdir=/tmp</listen>
  <auth>EXTERNAL</auth>
  <servicedir>$base/services</servicedir>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
XML
  exec dbus-run-session --config-file="$base/session.conf" -- "$0" "$@"
fi
# The keyring daemon runs in the foreground as our child for the whole session (not daemonized,
# so nothing else in the session can replace it), with the login keyring unlocked by the
# password on its stdin. A keyring that D-Bus would otherwise start on demand is locked and
# would ask for a password in a dialog that cannot appear here.
#
# A watchdog waits on it: if it exits while the command runs (CI runs saw it abort in the middle
# of the tests), the exit status is written to stderr and the keyring log, and it is started again
# with the same password, which unlocks the same login keyring: the tests after it run on a
# working keyring, and the log says what happened. A request that comes first starts one the same
# way, on demand (the bus's service file above); whichever starts second replaces the other.
keyring_log="$EMA_TEST_SESSION_DIR/keyring.log"
keyring_watchdog() {
  local started=0 status=0 daemon=
  # Stopped by stop_keyring: the daemon it watches goes with it (no window in which a restart
  # could slip past the stop).
  trap '[ -z "$daemon" ] || kill "$daemon" 2>/dev/null; exit 0' TERM
  while dbus-send --session --dest=org.freedesktop.DBus --type=method_call --print-reply / org.freedesktop.DBus.GetId >/dev/null 2>&1; do
    if [ "$started" -gt 0 ]; then
      echo "with-desktop-session: gnome-keyring-daemon exited (status $status) during the run; started again, unlocked (log: $keyring_log)" | tee -a "$keyring_log" >&2
    fi
    started=$((started + 1))
    gnome-keyring-daemon --foreground --replace --unlock --components=secrets <"$EMA_TEST_SESSION_DIR/keyring-password" >/dev/null 2>>"$keyring_log" &
    daemon=$!
    status=0
    wait "$daemon" || status=$?
    daemon=
    [ "$started" -gt 20 ] && { echo "with-desktop-session: gnome-keyring-daemon keeps exiting; giving up" >&2; return 1; }
    sleep 0.2
  done
}
keyring_watchdog &
watchdog=$!
stop_keyring() {
  kill "$watchdog" 2>/dev/null || true
  wait "$watchdog" 2>/dev/null || true
  # A keyring the bus started on demand is not our child: stopped here too.
  if [ -f "$EMA_TEST_SESSION_DIR/keyring-on-demand.pids" ]; then
    xargs kill 2>/dev/null <"$EMA_TEST_SESSION_DIR/keyring-on-demand.pids" || true
  fi
}
# Ctrl-C in the demo ends the command; the keyring goes with it, without a word.
trap 'stop_keyring; exit 130' INT
trap 'stop_keyring; exit 143' TERM
trap stop_keyring EXIT
for _ in $(seq 100); do
  [ -S "$XDG_RUNTIME_DIR/keyring/control" ] && break
  sleep 0.1
done
# Prove the Secret Service answers before handing over, so a broken session fails here, clearly.
# A few tries: the watchdog's daemon and one the probe's own request started on demand may still
# be replacing each other (seen on a loaded machine: the first store was dropped mid-request).
probe="probe-$$"
probe_works() {
  printf %s "$probe" | secret-tool store --label=ema-session-probe service dev.ema.session-probe key "$probe" 2>/dev/null \
    && [ "$(secret-tool lookup service dev.ema.session-probe key "$probe" 2>/dev/null)" = "$probe" ]
}
works=
for _ in 1 2 3 4 5; do
  if probe_works; then works=1; break; fi
  sleep 1
done
if [ -z "$works" ]; then
  echo "with-desktop-session: the gnome-keyring Secret Service does not work in this session:" >&2
  cat "$keyring_log" >&2
  stop_keyring
  exit 1
fi
secret-tool clear service dev.ema.session-probe key "$probe" 2>/dev/null || true
# Not exec: the watchdog is stopped when the command ends, and the command's status is ours.
status=0
"$@" || status=$?
stop_keyring
exit "$status"
