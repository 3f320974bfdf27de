#!/usr/bin/env bash
# The first run of the tray app end to end (see onboarding.py for what it checks), in a fresh
# desktop session of its own: e2e.sh's session (Xvfb, D-Bus, gnome-keyring, dunst, a
# StatusNotifierWatcher, tauri-driver + WebKitWebDriver) running onboarding.py instead of e2e.py.
# Screenshots of each screen land in target/test-artifacts/tray/onboarding-*.png.
set -euo pipefail
cd "$(dirname "$0")/../.."
EMA_E2E_SCRIPT=tests/tray/onboarding.py EMA_ARTIFACTS_KEEP=1 exec tests/tray/e2e.sh "$@"
