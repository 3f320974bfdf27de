#!/usr/bin/env bash
# Checks the status window's script (ui/main.js) with tsc against the window protocol's types
# (protocol.d.ts, written from the Rust enum by src-tauri's unit test
# protocol_types_for_the_ui_are_current) and the Tauri commands the window registers
# (tauri-globals.d.ts). A renamed command or field on either side fails here.
# TypeScript, pinned in package-lock.json, is installed under target/ (never under ui/, whose
# files are embedded in the app).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
NODE_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/ui-types-node"
mkdir -p "$NODE_DIR"
LOCK_SUM="$(sha256sum "$HERE/package.json" "$HERE/package-lock.json" | sha256sum | cut -d' ' -f1)"
TSC="$NODE_DIR/node_modules/typescript/bin/tsc"
if [[ "$(cat "$NODE_DIR/.installed" 2>/dev/null)" != "$LOCK_SUM" || ! -f "$TSC" ]]; then
    echo "ui-types: installing the pinned TypeScript into $NODE_DIR" >&2
    rm -rf "$NODE_DIR/node_modules" "$NODE_DIR/.installed"
    cp "$HERE/package.json" "$HERE/package-lock.json" "$NODE_DIR/"
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error >&2)
    echo "$LOCK_SUM" >"$NODE_DIR/.installed"
fi
node "$TSC" --project "$HERE/tsconfig.json" --pretty false
echo "ui-types: ui/main.js matches the window protocol ($(node "$TSC" --version))" >&2
