#!/usr/bin/env bash
# Installs the Debian packages the project needs, only those missing (idempotent, quiet when
# everything is there). `--runtime` installs what running the CLI and demo needs; the default
# adds what building needs; `--headless` adds what running the tray without a display and its
# tests need (Xvfb, a notification daemon, WebKitWebDriver, python D-Bus, imagemagick).
set -euo pipefail
runtime=(dbus gnome-keyring libsecret-tools python3 ca-certificates libwebkit2gtk-4.1-0 libayatana-appindicator3-1)
# The tray app (Tauri 2) needs WebKitGTK, appindicator, rsvg and xdo headers to build.
build=(pkg-config libdbus-1-dev libssl-dev build-essential libwebkit2gtk-4.1-dev libxdo-dev \
  libayatana-appindicator3-dev librsvg2-dev file)
headless=(xvfb xauth python3-dbus python3-gi dunst webkit2gtk-driver imagemagick x11-utils xdotool curl)
want=("${runtime[@]}")
[ "${1:-}" = "--runtime" ] || want+=("${build[@]}")
[ "${1:-}" = "--headless" ] && want+=("${headless[@]}")
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "Installing Debian packages: ${missing[*]}" >&2
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
