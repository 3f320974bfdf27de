#!/usr/bin/env bash
# What this proves: EMA's MCP check (ema_core::mcp_check::HttpProbe) interoperates with MCP servers
# built with the MCP Python SDK (PyPI `mcp`), which we did not write: the 2.x line speaking
# MCP 2026-07-28 (server/discover, the per-request `_meta` envelope, the MCP-Protocol-Version and
# Mcp-Method headers it enforces), and the 1.x line speaking only the 2025 initialize handshake.
# server.py is the peer (one tool, the SDK's bearer middleware with a static-token verifier);
# tests/interop_mcp_python.rs starts it per test and runs the product's check against it.
#
# Usage: tests/interop/mcp-python/run.sh [extra cargo test args, e.g. a test name]
# Idempotent: creates tests/interop/mcp-python/.venv (mcp 2.x, requirements.txt) and .venv-older
# (mcp 1.x, requirements-older.txt) once each (gitignored), and reinstalls one when its
# requirements file changes. Needs python3 >= 3.10 with venv (Debian: python3-venv, installed if
# missing) and network only for the first pip installs.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
STARTED=$SECONDS

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }

command -v python3 >/dev/null || die "python3 is required"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' || die "the MCP Python SDK needs python3 >= 3.10"
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    command -v apt-get >/dev/null || die "python3 has no venv/ensurepip module; install python3-venv"
    say "installing python3-venv"
    SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
    $SUDO apt-get install -y python3-venv >&2 || die "apt-get install python3-venv failed"
fi

# make_venv DIR REQUIREMENTS: the venv at DIR with exactly REQUIREMENTS, unless its marker says so already.
make_venv() {
    local venv="$1" req="$2" sum
    sum="$(sha256sum "$req" | cut -d' ' -f1)"
    if [[ "$(cat "$venv/.installed" 2>/dev/null)" != "$sum" || ! -x "$venv/bin/python" ]]; then
        say "creating $venv with $(basename "$req")"
        rm -rf "$venv"
        python3 -m venv "$venv" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2 \
            || die "pip install -r $(basename "$req") failed"
        echo "$sum" >"$venv/.installed"
    fi
}
make_venv "$HERE/.venv" "$HERE/requirements.txt"
make_venv "$HERE/.venv-older" "$HERE/requirements-older.txt"
PYTHON="$HERE/.venv/bin/python"
PYTHON_OLDER="$HERE/.venv-older/bin/python"

sdk() { "$1" -c 'import importlib.metadata as m, mcp.server.auth.provider; print(m.version("mcp"))'; }
NEWEST="$(sdk "$PYTHON")" || die "mcp is not importable from $PYTHON"
OLDER="$(sdk "$PYTHON_OLDER")" || die "mcp is not importable from $PYTHON_OLDER"
say "MCP Python SDK $NEWEST (newest) and $OLDER (older) ($("$PYTHON" --version))"

cd "$ROOT"
# `test = false` keeps this target out of `clippy --all-targets`: lint it here.
cargo clippy --quiet -p ema-e2e --test interop_mcp_python -- -D warnings \
    || die "clippy failed on tests/interop_mcp_python.rs"
set +e
EMA_MCP_PYTHON="$PYTHON" EMA_MCP_PYTHON_OLDER="$PYTHON_OLDER" EMA_MCP_SERVER_PY="$HERE/server.py" \
    cargo test -p ema-e2e --test interop_mcp_python -- "$@"
STATUS=$?
set -e
ELAPSED=$((SECONDS - STARTED))
[[ $STATUS -eq 0 ]] || die "FAILED against the MCP Python SDK $NEWEST / $OLDER (${ELAPSED}s)"
say "PASSED against the MCP Python SDK $NEWEST / $OLDER (${ELAPSED}s)"
