#!/usr/bin/env bash
# What this proves: EMA's core engine interoperates with an independent implementation of MCP
# Enterprise-Managed Authorization. The official MCP conformance suite
# (@modelcontextprotocol/conformance, pinned in package-lock.json) starts its own IdP token
# endpoint, authorization server and MCP server for the scenario
# `auth/cross-app-access-complete-flow`, and runs our adapter (tests/interop/conformance/adapter.rs),
# which sets the engine up as `ema login` leaves it (a policy for the suite's org, the suite's ID
# token as the stored session) and lets the engine's own connect path run: RFC 9728 -> RFC 8414
# discovery from the MCP URL, RFC 8693 token exchange of the ID token for an ID-JAG at the IdP,
# RFC 7523 jwt-bearer grant at the AS with client_secret_basic, the product's MCP check
# (initialize, initialized, session ended: ema_core::mcp_check), the connector's state; then MCP
# initialize + tools/list + tools/call through rmcp with the token the engine hands to clients. The suite checks every request on its side (parameters, token types, ID-JAG
# claims, client authentication, bearer token use); this script fails unless the suite reports
# OVERALL: PASSED with no failure or warning, the adapter exited 0, the token exchange, the
# jwt-bearer grant and tools/call were all seen by the suite, and every bearer token was valid.
#
# Usage: tests/interop/conformance/run.sh   (idempotent; needs npm and cargo; network only for the
# first npm install). CONFORMANCE_CLIENT_CMD overrides the client command (to check that a
# broken client makes this script fail); CONFORMANCE_TIMEOUT_MS the suite's client timeout.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
NODE_DIR="$HERE/.node"
SCENARIO="auth/cross-app-access-complete-flow"
STARTED=$SECONDS

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }

# 1. Node 22 and the suite, exactly as locked, under .node/ (npm ci into a copy of the manifest).
command -v npm >/dev/null || die "npm is required to install the pinned suite and Node 22"
mkdir -p "$NODE_DIR"
LOCK_SUM="$(sha256sum "$HERE/package.json" "$HERE/package-lock.json" | sha256sum | cut -d' ' -f1)"
NODE="$NODE_DIR/node_modules/.bin/node"
SUITE="$NODE_DIR/node_modules/.bin/conformance"
if [[ "$(cat "$NODE_DIR/.installed" 2>/dev/null)" != "$LOCK_SUM" || ! -x "$NODE" || ! -x "$SUITE" ]]; then
    say "installing the pinned conformance suite and Node 22 into $NODE_DIR"
    rm -rf "$NODE_DIR/node_modules" "$NODE_DIR/.installed"
    cp "$HERE/package.json" "$HERE/package-lock.json" "$NODE_DIR/"
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error >&2) || die "npm ci failed"
    echo "$LOCK_SUM" >"$NODE_DIR/.installed"
fi
NODE_VERSION="$("$NODE" --version)" || die "the local Node at $NODE does not run"
[[ "$NODE_VERSION" == v22.* ]] || die "expected Node 22 at $NODE, found $NODE_VERSION"
SUITE_VERSION="$(PATH="$NODE_DIR/node_modules/.bin:$PATH" "$SUITE" --version)"
say "Node $NODE_VERSION, @modelcontextprotocol/conformance $SUITE_VERSION"

# 2. The adapter.
if [[ -z "${CONFORMANCE_CLIENT_CMD:-}" ]]; then
    say "building the adapter"
    (cd "$ROOT" && cargo build --quiet -p ema-e2e --bin conformance-adapter) || die "cargo build failed"
    CLIENT_CMD="${CARGO_TARGET_DIR:-$ROOT/target}/debug/conformance-adapter"
    [[ -x "$CLIENT_CMD" ]] || die "the adapter was not built at $CLIENT_CMD"
else
    CLIENT_CMD="$CONFORMANCE_CLIENT_CMD"
fi
# The suite splits --command on spaces and appends the MCP URL.
[[ "$CLIENT_CMD" != *" "* || -n "${CONFORMANCE_CLIENT_CMD:-}" ]] || die "the adapter path must not contain spaces: $CLIENT_CMD"

# 3. The scenario. The suite echoes its (test-only) context; the ID token and secret are masked.
RESULTS="$NODE_DIR/results"
rm -rf "$RESULTS"
LOG="$NODE_DIR/last-run.log"
say "running $SCENARIO"
set +e
PATH="$NODE_DIR/node_modules/.bin:$PATH" "$SUITE" client --command "$CLIENT_CMD" --scenario "$SCENARIO" \
    --timeout "${CONFORMANCE_TIMEOUT_MS:-30000}" -o "$RESULTS" >"$LOG" 2>&1
SUITE_EXIT=$?
set -e
sed -E -e 's/"(idp_id_token|client_secret)":"[^"]*"/"\1":"[masked]"/g' -e 's/\x1b\[[0-9;]*m//g' "$LOG" \
    | grep -vE '^\s*$|\[(incoming|outgoing)-' >&2 || true

# 4. Our own verdict from the suite's checks.json, independent of its exit code.
CHECKS="$(find "$RESULTS" -name checks.json 2>/dev/null | head -n1)"
[[ -n "$CHECKS" ]] || die "the suite wrote no checks.json (exit $SUITE_EXIT); see $LOG"
set +e
"$NODE" - "$CHECKS" <<'EOF'
const checks = JSON.parse(require('fs').readFileSync(process.argv[2], 'utf8'));
const problems = [];
const graded = checks.filter(c => c.status !== 'INFO');
console.error('\nConformance checks (' + graded.length + ' graded):');
for (const c of graded) console.error(`  ${c.status.padEnd(7)} ${c.id}: ${c.description}`);
for (const c of checks.filter(c => c.status === 'FAILURE' || c.status === 'WARNING')) {
  problems.push(`${c.status} ${c.id}: ${c.description}`);
}
const ok = id => checks.some(c => c.id === id && c.status === 'SUCCESS');
for (const id of ['prm-pathbased-requested', 'authorization-server-metadata', 'complete-flow-token-exchange',
                  'complete-flow-jwt-bearer', 'valid-bearer-token']) {
  if (!ok(id)) problems.push(`no successful ${id} check`);
}
const methods = checks.filter(c => c.id === 'incoming-request' && c.details && c.details.mcpMethod)
  .map(c => c.details.mcpMethod);
for (const m of ['initialize', 'tools/list', 'tools/call']) {
  if (!methods.includes(m)) problems.push(`the MCP server never received ${m}`);
}
// One initialize from EMA's MCP check, one from the MCP session that follows.
if (methods.filter(m => m === 'initialize').length < 2) {
  problems.push('the MCP server received one initialize: EMA\'s MCP check or the MCP session is missing');
}
console.error('MCP methods the server received: ' + methods.join(', '));
if (problems.length) {
  console.error('\nProblems:\n  ' + problems.join('\n  '));
  process.exit(1);
}
EOF
VERDICT=$?
set -e
ADAPTER_LOG="$(dirname "$CHECKS")/stderr.txt"
if [[ -s "$ADAPTER_LOG" ]]; then
    printf '\nClient (adapter) log:\n' >&2
    sed 's/^/  /' "$ADAPTER_LOG" >&2
fi

ELAPSED=$((SECONDS - STARTED))
if [[ -z "${CONFORMANCE_CLIENT_CMD:-}" ]] && ! grep -q "EMA's engine connected it (state active" "$ADAPTER_LOG" 2>/dev/null; then
    VERDICT=1
    printf "run.sh: the adapter did not report the engine connecting the connector\n" >&2
fi
if [[ $SUITE_EXIT -ne 0 || $VERDICT -ne 0 ]] || ! grep -q 'OVERALL: PASSED' "$LOG"; then
    die "FAILED: $SCENARIO (suite exit $SUITE_EXIT, verdict $VERDICT, ${ELAPSED}s); full log: $LOG"
fi
say "PASSED: $SCENARIO against @modelcontextprotocol/conformance $SUITE_VERSION (${ELAPSED}s)"
