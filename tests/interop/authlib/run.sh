#!/usr/bin/env bash
# What this proves: EMA's client interoperates with Authlib's ID-JAG grant
# (authlib.oauth2.drafts.IDJAGGrant, pinned in requirements.txt) acting as a connector's
# authorization server with its jti replay check on. fixture.py hosts the connector `authlib`
# (RFC 9728 + RFC 8414 metadata, Authlib's token endpoint, a minimal MCP server) and trusts the
# sandbox IdP; tests/interop_authlib.rs signs in end to end through it and checks that Authlib's
# refusals (wrong audience, another client, a replayed jti) reach our status with Authlib's reason.
# It also registers our client for private_key_jwt (Authlib's JWTBearerClientAssertion) and checks
# that Authlib takes our client assertion and refuses a wrong audience, another key and a replay.
#
# Usage: tests/interop/authlib/run.sh [extra cargo test args, e.g. a test name]
# Idempotent: creates tests/interop/authlib/.venv (gitignored) once, reinstalls when
# requirements.txt changes. Needs python3 with venv (Debian: python3-venv, installed if missing),
# network only for the first pip install, and the desktop session tools (dbus, gnome-keyring).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
VENV="$HERE/.venv"
STARTED=$SECONDS

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }

command -v python3 >/dev/null || die "python3 is required"
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    command -v apt-get >/dev/null || die "python3 has no venv/ensurepip module; install python3-venv"
    say "installing python3-venv"
    SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
    $SUDO apt-get install -y python3-venv >&2 || die "apt-get install python3-venv failed"
fi

REQ_SUM="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
PYTHON="$VENV/bin/python"
if [[ "$(cat "$VENV/.installed" 2>/dev/null)" != "$REQ_SUM" || ! -x "$PYTHON" ]]; then
    say "creating $VENV with the pinned requirements"
    rm -rf "$VENV"
    python3 -m venv "$VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    "$PYTHON" -m pip install --quiet --disable-pip-version-check -r "$HERE/requirements.txt" >&2 \
        || die "pip install -r requirements.txt failed"
    echo "$REQ_SUM" >"$VENV/.installed"
fi
AUTHLIB_VERSION="$("$PYTHON" -c 'import authlib; from authlib.oauth2.drafts import IDJAGGrant; print(authlib.__version__)')" \
    || die "Authlib with authlib.oauth2.drafts.IDJAGGrant is not importable from $PYTHON"
say "Authlib $AUTHLIB_VERSION ($("$PYTHON" --version))"

cd "$ROOT"
# `test = false` keeps this target out of `clippy --all-targets`: lint it here.
cargo clippy --quiet -p ema-e2e --test interop_authlib -- -D warnings || die "clippy failed on tests/interop_authlib.rs"
set +e
EMA_AUTHLIB_PYTHON="$PYTHON" scripts/with-desktop-session.sh \
    cargo test -p ema-e2e --test interop_authlib -- "$@"
STATUS=$?
set -e
ELAPSED=$((SECONDS - STARTED))
[[ $STATUS -eq 0 ]] || die "FAILED against Authlib $AUTHLIB_VERSION (${ELAPSED}s)"
say "PASSED against Authlib $AUTHLIB_VERSION (${ELAPSED}s)"
