#!/usr/bin/env bash
# What this proves: EMA's core engine interoperates with an independent implementation of MCP
# authorization and of its Enterprise-Managed Authorization extension. The official MCP
# conformance suite (@modelcontextprotocol/conformance, pinned in package-lock.json) starts its own
# servers for each scenario below and runs our adapter (tests/interop/conformance/adapter.rs), which
# sets the engine up as `ema login` leaves it (a policy, the ID token as the stored session) and lets
# the engine's own discovery and connect path run (Engine::connect_all), never a re-implementation.
# The suite checks every request on its side; this script grades the suite's checks itself.
#
#   auth/enterprise-managed-authorization  the whole EMA flow against the suite's IdP, AS and MCP
#       server: RFC 9728 -> RFC 8414 discovery, RFC 8693 token exchange of the suite's ID token for
#       an ID-JAG (parameters, token types), RFC 7523 jwt-bearer grant with client_secret_basic
#       (the ID-JAG's typ, aud, client_id, resource), the product's MCP check, then MCP initialize +
#       tools/list + tools/call through rmcp with the token the engine hands to clients.
#   auth/metadata-default, -var1, -var2, -var3  discovery however the server publishes its
#       metadata: protected-resource metadata (PRM) named by the 401 or not, path-based or only at
#       the root /.well-known/oauth-protected-resource (-var2: the engine's fallback, with the
#       origin as the resource, sent verbatim), AS metadata as RFC 8414 or OpenID configuration,
#       with an issuer path or not; then the grant (resource exactly as the PRM publishes it) and
#       bearer use, including the same MCP session.
#   auth/resource-mismatch, auth/metadata-issuer-mismatch  a PRM for another resource, AS metadata
#       naming another issuer: the engine must refuse the connector (codes
#       discovery-resource-mismatch, discovery-issuer-mismatch) before any token request. The
#       suite alone cannot tell for resource-mismatch: it grades it by whether an authorization
#       request followed, which an ID-JAG client never makes (the issuer scenario also watches the
#       token endpoint). So this script also requires, for both, that no token request or bearer
#       token reached the suite, that the adapter's IdP issued no ID-JAG, and the engine's code.
#
# The IdP: the EMA scenario passes its IdP's token endpoint and a pre-minted ID token
# (MCP_CONFORMANCE_CONTEXT; the adapter serves the OpenID configuration naming that endpoint, as the
# suite's own lacks fields OIDC Discovery requires). The generic scenarios are written for an
# authorization-code client and pass no IdP context, so the adapter serves a small IdP of its own on
# 127.0.0.1 (OpenID configuration, RFC 8693 token exchange issuing ID-JAGs for the audience and
# resource the engine asks for, and the ID token it mints); their AS answers any grant, the
# jwt-bearer one included, with its test token.
#
# Verdict, per scenario: the suite ran it (a SKIPPED scenario or one with no graded checks fails),
# its exit status is 0, no check is FAILURE or WARNING except those only an authorization-code
# client can pass (below, handed to the suite as its expected-failures baseline, and each must fail
# only because the request never came), the checks that prove the point succeeded (and, for the
# refusals, no token was requested or used), the MCP server saw the calls, and the adapter exited 0
# with its line saying the engine connected (state active) or refused with the expected code.
# Not applicable to an ID-JAG client in the metadata scenarios: client-registration (DCR),
# authorization-request and resource-parameter-in-authorization (the suite adds them as
# "Expected Check Missing" failures; the PKCE checks only appear once an authorization request or
# an authorization_code token request is made, so they never do).
#
# Usage: tests/interop/conformance/run.sh [scenario...]   (idempotent; all scenarios by default;
# needs npm and cargo; network only for the first npm install). CONFORMANCE_CLIENT_CMD overrides the
# client command (to check that a broken client makes this script fail; it gets no --expect);
# CONFORMANCE_TIMEOUT_MS the suite's client timeout.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
NODE_DIR="$HERE/.node"
STARTED=$SECONDS

# Each scenario and what the engine must end in (the adapter's --expect).
SCENARIOS=(
    "auth/enterprise-managed-authorization connect"
    "auth/metadata-default connect"
    "auth/metadata-var1 connect"
    "auth/metadata-var2 connect"
    "auth/metadata-var3 connect"
    "auth/resource-mismatch refuse:discovery-resource-mismatch"
    "auth/metadata-issuer-mismatch refuse:discovery-issuer-mismatch"
)
# Checks only an authorization-code client can pass, per scenario (the suite's baseline format).
NOT_FOR_ID_JAG=(client-registration authorization-request resource-parameter-in-authorization)
BASELINE_SCENARIOS=(auth/metadata-default auth/metadata-var1 auth/metadata-var2 auth/metadata-var3)

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }
# Milliseconds (EPOCHREALTIME has six decimals; bash < 5 falls back to whole seconds).
now_ms() { if [[ -n "${EPOCHREALTIME:-}" ]]; then echo $(( ${EPOCHREALTIME/[.,]/} / 1000 )); else echo $(( $(date +%s) * 1000 )); fi; }

if [[ $# -gt 0 ]]; then
    selected=()
    for want in "$@"; do
        found=""
        for s in "${SCENARIOS[@]}"; do [[ "${s%% *}" == "$want" ]] && selected+=("$s") && found=1; done
        [[ -n "$found" ]] || die "unknown scenario $want (known: $(printf '%s ' "${SCENARIOS[@]%% *}"))"
    done
    SCENARIOS=("${selected[@]}")
fi

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
    # The suite splits --command on spaces and appends the MCP URL.
    [[ "$CLIENT_CMD" != *" "* ]] || die "the adapter path must not contain spaces: $CLIENT_CMD"
    OURS=1
else
    CLIENT_CMD="$CONFORMANCE_CLIENT_CMD"
    OURS=0
fi

# 3. The suite's expected-failures baseline: the checks an ID-JAG client cannot pass. The suite
# fails a run whose baseline entry passed (stale), so this list cannot hide a change either way.
BASELINE="$NODE_DIR/expected-failures.yaml"
{
    echo "client:"
    for s in "${BASELINE_SCENARIOS[@]}"; do
        for c in "${NOT_FOR_ID_JAG[@]}"; do echo "  - $s:$c"; done
    done
} >"$BASELINE"

# 4. Each scenario: the suite, then our own verdict from its checks.json, its log and the adapter's.
RESULTS="$NODE_DIR/results"
LOGS="$NODE_DIR/logs"
rm -rf "$RESULTS" "$LOGS" "$NODE_DIR/last-run.log"
mkdir -p "$RESULTS" "$LOGS"
SUMMARY=()
FAILED=0

verdict() { # checks.json scenario expect suite-log suite-exit adapter-log ours
"$NODE" - "$@" <<'EOF'
const fs = require('fs');
const [checksPath, scenario, expect, logPath, suiteExit, adapterLogPath, ours] = process.argv.slice(2);
const checks = JSON.parse(fs.readFileSync(checksPath, 'utf8'));
const log = fs.readFileSync(logPath, 'utf8').replace(/\x1b\[[0-9;]*m/g, '');
const adapterLog = fs.existsSync(adapterLogPath) ? fs.readFileSync(adapterLogPath, 'utf8') : '';
const refuse = expect.startsWith('refuse:') ? expect.slice('refuse:'.length) : null;
const noTokenUsed = ['token-request', 'valid-bearer-token', 'invalid-bearer-token', 'client-registration',
                     'authorization-request'];
const metadata = {
  required: ['prm-pathbased-requested', 'authorization-server-metadata', 'token-request', 'valid-bearer-token',
             'resource-parameter-in-token', 'resource-parameter-valid-uri', 'resource-parameter-matches-prm'],
  notForIdJag: { 'client-registration': c => c.name.startsWith('Expected Check Missing'),
                 'authorization-request': c => c.name.startsWith('Expected Check Missing'),
                 'resource-parameter-in-authorization': c => c.details && c.details.resource === 'not provided' },
  mcp: true,
};
const rules = {
  'auth/enterprise-managed-authorization': {
    required: ['prm-pathbased-requested', 'authorization-server-metadata', 'complete-flow-token-exchange',
               'complete-flow-jwt-bearer', 'token-request', 'valid-bearer-token'],
    mcp: true,
  },
  'auth/metadata-default': metadata, 'auth/metadata-var1': metadata,
  'auth/metadata-var2': metadata, 'auth/metadata-var3': metadata,
  'auth/resource-mismatch': { required: ['prm-pathbased-requested', 'resource-mismatch-rejected'], absent: noTokenUsed },
  'auth/metadata-issuer-mismatch': {
    required: ['prm-pathbased-requested', 'authorization-server-metadata', 'sep-2468-client-validate-metadata-issuer'],
    absent: noTokenUsed,
  },
}[scenario];
const problems = [];
if (!rules) problems.push(`run.sh has no verdict rules for ${scenario}`);
const r = rules || { required: [] };
const notForIdJag = r.notForIdJag || {};
const graded = checks.filter(c => c.status !== 'INFO');
if (/^SKIPPED:/m.test(log)) problems.push('the suite skipped the scenario');
if (graded.length === 0) problems.push('the suite reported no graded checks');
const shown = new Map(); // the same check repeated (one per bearer request) is listed once
for (const c of graded) {
  const na = notForIdJag[c.id];
  const line = `${c.status.padEnd(7)} ${c.id}: ${c.description}` + (na ? ' (not for an ID-JAG client)' : '');
  shown.set(line, (shown.get(line) || 0) + 1);
  if (na && !(c.status === 'FAILURE' && na(c))) {
    problems.push(`${c.status} ${c.id}: expected to fail only because no such request came (baseline)`);
  } else if (!na && (c.status === 'FAILURE' || c.status === 'WARNING')) {
    problems.push(`${c.status} ${c.id}: ${c.errorMessage || c.description}`);
  }
}
for (const [line, n] of shown) console.error(`    ${line}${n > 1 ? ` (x${n})` : ''}`);
for (const id of Object.keys(notForIdJag)) {
  if (!checks.some(c => c.id === id)) problems.push(`the suite no longer reports ${id}: update the baseline`);
}
const ok = id => checks.some(c => c.id === id && c.status === 'SUCCESS');
for (const id of r.required) if (!ok(id)) problems.push(`no successful ${id} check`);
for (const id of r.absent || []) {
  if (checks.some(c => c.id === id)) problems.push(`the client went on after the refusal: ${id} was seen`);
}
const methods = checks.filter(c => c.id === 'incoming-request' && c.details && c.details.mcpMethod)
  .map(c => c.details.mcpMethod);
console.error('    MCP methods the server received: ' + (methods.join(', ') || '(none)'));
if (r.mcp) {
  for (const m of ['initialize', 'tools/list', 'tools/call']) {
    if (!methods.includes(m)) problems.push(`the MCP server never received ${m}`);
  }
  // One initialize from EMA's MCP check, one from the MCP session that follows.
  if (methods.filter(m => m === 'initialize').length < 2) {
    problems.push('the MCP server received one initialize: EMA\'s MCP check or the MCP session is missing');
  }
}
if (Number(suiteExit) !== 0) problems.push(`the suite exited ${suiteExit}`);
if (Object.keys(notForIdJag).length ? !/Baseline check passed/.test(log) : !/OVERALL: PASSED/.test(log)) {
  problems.push('the suite did not report a pass' + (Object.keys(notForIdJag).length ? ' against the baseline' : ''));
}
const exited = log.match(/Client exited with code (-?\d+)/);
if (exited) problems.push(`the client exited with code ${exited[1]}`);
if (/Client timed out/.test(log)) problems.push('the client timed out');
if (ours === '1') {
  const line = refuse ? new RegExp(`EMA's engine refused it \\(state [a-z-]+, code ${refuse.replace(/[-]/g, '\\-')}\\)`)
                      : /EMA's engine connected it \(state active/;
  if (!line.test(adapterLog)) {
    problems.push(refuse ? `the adapter did not report the engine refusing it with code ${refuse}`
                         : 'the adapter did not report the engine connecting the connector');
  }
}
if (problems.length) {
  console.error('    Problems:\n      ' + problems.join('\n      '));
  process.exit(1);
}
EOF
}

for entry in "${SCENARIOS[@]}"; do
    scenario="${entry%% *}"
    expect="${entry#* }"
    slug="${scenario//\//-}"
    out="$RESULTS/$slug"
    log="$LOGS/$slug.log"
    command="$CLIENT_CMD"
    [[ $OURS -eq 0 ]] || command="$CLIENT_CMD --expect $expect"
    say "$scenario (expecting: $expect)"
    t0=$(now_ms)
    set +e
    # No --spec-version: with one, the suite skips the EMA scenario (an extension) and exits 0.
    PATH="$NODE_DIR/node_modules/.bin:$PATH" "$SUITE" client --command "$command" --scenario "$scenario" \
        --timeout "${CONFORMANCE_TIMEOUT_MS:-30000}" -o "$out" --expected-failures "$BASELINE" >"$log" 2>&1
    suite_exit=$?
    set -e
    checks="$(find "$out" -name checks.json 2>/dev/null | head -n1)"
    adapter_log="${checks:+$(dirname "$checks")/stderr.txt}"
    verdict_ok=0
    if [[ -z "$checks" ]]; then
        printf '    the suite wrote no checks.json (exit %s)\n' "$suite_exit" >&2
        grep -E '^SKIPPED:' "$log" | sed 's/^/    /' >&2 || true
    else
        verdict "$checks" "$scenario" "$expect" "$log" "$suite_exit" "$adapter_log" "$OURS" && verdict_ok=1
        if [[ -s "$adapter_log" ]]; then
            printf '    Client (adapter) log:\n' >&2
            sed 's/^/      /' "$adapter_log" >&2
        fi
    fi
    ms=$(( $(now_ms) - t0 ))
    took="$((ms / 1000)).$(printf '%03d' $((ms % 1000)) | cut -c1) s"
    if [[ $verdict_ok -eq 1 ]]; then
        line="PASSED  $scenario ($took)"
    else
        FAILED=1
        line="FAILED  $scenario ($took; suite exit $suite_exit)"
        # The suite's own account (its context echo masked: the ID token and secret are test-only).
        printf '    The suite said (full log: %s):\n' "$log" >&2
        sed -E -e 's/"(idp_id_token|client_secret)":"[^"]*"/"\1":"[masked]"/g' -e 's/\x1b\[[0-9;]*m//g' "$log" \
            | grep -vE '^\s*$|\[(incoming|outgoing)-' | sed 's/^/      /' >&2 || true
    fi
    say "$line"
    SUMMARY+=("$line")
done

ELAPSED=$((SECONDS - STARTED))
printf '\nMCP conformance suite %s, per scenario:\n' "$SUITE_VERSION" >&2
printf '  %s\n' "${SUMMARY[@]}" >&2
if [[ $FAILED -ne 0 ]]; then
    die "FAILED against @modelcontextprotocol/conformance $SUITE_VERSION (${ELAPSED}s); logs in $LOGS"
fi
say "PASSED: ${#SUMMARY[@]} scenario(s) against @modelcontextprotocol/conformance $SUITE_VERSION (${ELAPSED}s)"
