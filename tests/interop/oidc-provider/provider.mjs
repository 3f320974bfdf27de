// oidc-provider (panva's certified OpenID Provider) as the company IdP for EMA's interop test
// (tests/interop_oidc_provider.rs). It serves the browser sign-in (authorization code + PKCE S256,
// devInteractions login/consent pages, refresh tokens) and, through `registerGrantType`, the
// RFC 8693 token exchange of draft-ietf-oauth-identity-assertion-authz-grant that turns the
// user's ID token, or (draft -02 and later, §4.3) the refresh token it issued to EMA, into an
// ID-JAG for one connector's authorization server.
//
// Usage: EMA_OIDC_CLIENT_SECRET=... EMA_CONNECTORS_FILE=/path/connectors.json node provider.mjs
// Listens on 127.0.0.1 (port 0 unless EMA_OIDC_PORT) and prints `READY <issuer>` on stdout.
//
// EMA_OP_REFRESH_SUBJECT=accept (default) takes a refresh token as the exchange's subject;
// `refuse` answers it `invalid_request`, as an IdP of the draft -01 era does.
//
// GET /ema-test/counters answers what happened so far as a JSON object of counts (the names
// are those of COUNTERS below), so that the test can tell which subject went on the wire.
//
// EMA_OP_STEP_UP=<connector id>[,<id>...] makes the exchange for those connectors demand a step-up
// (RFC 9470 through the token exchange, ID-JAG -04 §9.2): `insufficient_user_authentication`
// (HTTP 400) with `max_age` (EMA_OP_STEP_UP_MAX_AGE, default 300) and `acr_values`
// (EMA_OP_STEP_UP_ACR, default urn:ema:mfa; empty for max_age alone), unless the subject's `acr`
// is that class and its `auth_time` is within max_age. The login page issues urn:ema:mfa when
// the authorization request asks for it in `acr_values` (a second factor, simulated), and the
// login prompt comes back for an existing session that has not got a requested class (see
// STEP-UP below).
//
// POST /ema-test/unassign?user=<account>&connector=<id> withdraws a connector from a user
// (offboarding, a group change): from then on the exchange answers it `access_denied`.
//
// GET /ema-test/log answers, in order, what the tests want to see of the sign-ins: each
// authorization request's `max_age`, `acr_values` and `prompt`, each interaction oidc-provider
// started (its prompt and the reasons of its policy checks), each login (the acr and amr it
// got), each ID token issued (its acr, amr and auth_time, as far as it has them: oidc-provider
// puts `acr` in only when `acr_values` asked for it, `auth_time` only with max_age (or
// prompt=login), `amr` never: it is not among the claims configured), and each step-up verdict.
//
// EMA_CONNECTORS_FILE (read at every exchange: the test writes it after the sandbox starts) is a
// JSON array of {id?, as_issuer, client_id, mcp_url, scopes}: the connectors' authorization
// servers this IdP issues ID-JAGs for.
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import { SignJWT, createLocalJWKSet, decodeJwt, exportJWK, generateKeyPair, importJWK, jwtVerify } from 'jose';
import Provider, { errors, interactionPolicy } from 'oidc-provider';

const GRANT_TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const TOKEN_TYPE_ID_JAG = 'urn:ietf:params:oauth:token-type:id-jag';
const TOKEN_TYPE_ID_TOKEN = 'urn:ietf:params:oauth:token-type:id_token';
const TOKEN_TYPE_REFRESH_TOKEN = 'urn:ietf:params:oauth:token-type:refresh_token';
// The authentication context classes this provider knows (`acr_values_supported`): a password
// alone, or a password and a second factor.
const ACR_PASSWORD = 'urn:ema:pwd';
const ACR_MFA = 'urn:ema:mfa';
const ACR_VALUES = [ACR_PASSWORD, ACR_MFA];
const ID_JAG_TTL = 300;
const LEEWAY = 30;

const CLIENT_ID = 'ema-desktop';
const CLIENT_SECRET = process.env.EMA_OIDC_CLIENT_SECRET || process.argv[2];
if (!CLIENT_SECRET) {
  console.error('provider.mjs: set EMA_OIDC_CLIENT_SECRET (the ema-desktop client secret)');
  process.exit(2);
}
const CONNECTORS_FILE = process.env.EMA_CONNECTORS_FILE;
const REFRESH_SUBJECT = process.env.EMA_OP_REFRESH_SUBJECT || 'accept';
if (!['accept', 'refuse'].includes(REFRESH_SUBJECT)) {
  console.error(`provider.mjs: EMA_OP_REFRESH_SUBJECT must be accept or refuse, not ${REFRESH_SUBJECT}`);
  process.exit(2);
}

const STEP_UP = new Set((process.env.EMA_OP_STEP_UP || '').split(',').filter(Boolean));
const STEP_UP_MAX_AGE = Number(process.env.EMA_OP_STEP_UP_MAX_AGE || 300);
const STEP_UP_ACR = process.env.EMA_OP_STEP_UP_ACR ?? ACR_MFA;
if (!Number.isSafeInteger(STEP_UP_MAX_AGE) || STEP_UP_MAX_AGE < 0 || (STEP_UP_ACR && !ACR_VALUES.includes(STEP_UP_ACR))) {
  console.error(`provider.mjs: EMA_OP_STEP_UP_MAX_AGE must be seconds and EMA_OP_STEP_UP_ACR one of ${ACR_VALUES.join(', ')} or empty`);
  process.exit(2);
}

// What the test reads at COUNTERS_PATH.
const COUNTERS_PATH = '/ema-test/counters';
const COUNTERS = {
  // ID-JAGs issued, in all and by the kind of subject token.
  exchange: 0,
  'exchange-with-id-token': 0,
  'exchange-with-refresh-token': 0,
  // Refresh tokens as the subject refused by EMA_OP_REFRESH_SUBJECT=refuse (`invalid_request`).
  'exchange-refresh-token-refused': 0,
  // Refresh tokens as the subject that failed validation (`invalid_grant`).
  'exchange-refresh-token-invalid': 0,
  // Successful refresh_token grants (a new ID token).
  refresh: 0,
  // Refresh tokens stored (issued or rotated) and consumed (rotated away) by oidc-provider.
  'refresh-token-saved': 0,
  'refresh-token-consumed': 0,
  // Authorization requests (GET or POST at the authorization endpoint), and those with the
  // step-up parameters.
  authorization: 0,
  'authorization-with-max_age': 0,
  'authorization-with-acr_values': 0,
  // Exchanges refused with `insufficient_user_authentication` (EMA_OP_STEP_UP), and exchanges
  // for such a connector whose subject met the step-up.
  'step-up-refused': 0,
  'step-up-met': 0,
  // Exchanges refused because POST /ema-test/unassign withdrew the connector.
  'exchange-unassigned': 0,
};
const count = (name) => {
  COUNTERS[name] += 1;
};
// What the test reads at LOG_PATH: one object per event, in order (never a token).
const LOG_PATH = '/ema-test/log';
const LOG = [];
const note = (event, fields) => {
  LOG.push({ event, at: Math.floor(Date.now() / 1000), ...fields });
};

// Demo users (account id = login typed on the devInteractions page).
const USERS = {
  alice: { email: 'alice@example.com', given_name: 'Alice', family_name: 'Anders' },
  bob: { email: 'bob@example.com', given_name: 'Bob', family_name: 'Berg' },
  carol: { email: 'carol@example.com', given_name: 'Carol', family_name: 'Chen' },
};
async function findAccount(ctx, id) {
  const user = USERS[id];
  if (!user) return undefined;
  const claims = {
    sub: id,
    email: user.email,
    email_verified: true,
    name: `${user.given_name} ${user.family_name}`,
    given_name: user.given_name,
    family_name: user.family_name,
  };
  return { accountId: id, claims: async () => claims };
}

// Entitlements: which connectors (by `id` in EMA_CONNECTORS_FILE) each user may get an ID-JAG
// for. '*' is every connector.
const ENTITLEMENTS = { alice: '*', bob: new Set(['linear']), carol: new Set() };
// Connectors withdrawn since (POST /ema-test/unassign), by account.
const UNASSIGNED = {};
const unassigned = (accountId, connector) => UNASSIGNED[accountId]?.has(connector.id) ?? false;
const entitled = (accountId, connector) => {
  const e = ENTITLEMENTS[accountId];
  return (e === '*' || (e instanceof Set && e.has(connector.id))) && !unassigned(accountId, connector);
};

// Signing keys: RS256 for ID tokens (the client default), ES256 for ID-JAGs, so the connector
// ASs pick the key by `kid` from a JWKS holding two algorithms.
async function signingKey(alg, kid) {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  return { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' };
}
const rsa = await signingKey('RS256', `rs256-${randomUUID().slice(0, 8)}`);
const ec = await signingKey('ES256', `es256-${randomUUID().slice(0, 8)}`);
const publicJwk = ({ d, p, q, dp, dq, qi, ...pub }) => pub;
const ownJwks = createLocalJWKSet({ keys: [publicJwk(rsa), publicJwk(ec)] });
const idJagKey = await importJWK(ec, 'ES256');

function readConnectors() {
  if (!CONNECTORS_FILE) return [];
  try {
    return JSON.parse(readFileSync(CONNECTORS_FILE, 'utf8'));
  } catch (e) {
    throw new errors.ServerError(`cannot read EMA_CONNECTORS_FILE: ${e.message}`);
  }
}

const sameUri = (a, b) => typeof a === 'string' && typeof b === 'string' && a.replace(/\/+$/, '') === b.replace(/\/+$/, '');

// --- STEP-UP: what oidc-provider does with `max_age` and `acr_values` ---
//
// `max_age` needs nothing here: oidc-provider's login prompt has a `max_age` check (a session
// older than max_age, or none, is sent to the login page: OIDC Core §3.1.2.1 "MUST attempt to
// actively re-authenticate") and it puts `auth_time` in the ID token when max_age was asked.
// `acr_values` is, per OIDC Core §3.1.2.1, a request for a *voluntary* `acr` claim: oidc-provider
// copies it into the ID token claims request (lib/actions/authorization/claims.js) and its
// built-in checks force a login only for an *essential* acr (the `claims` parameter). So the
// classes a login achieves are the interaction's business, as its docs say: the login result's
// `acr`/`amr` (`interactionFinished(req, res, { login: { accountId, acr, amr } })`), and the
// policy decides when a session must log in again. This provider:
// - adds to the login prompt a check `acr_values`: a session whose acr is none of the requested
//   classes it knows logs in again (as `essential_acrs` does for the claims parameter);
// - makes its login page (devInteractions, which submits `{ login: { accountId } }`) report how
//   the user signed in: a password and a second factor (simulated; nothing more to type) when the
//   request asked for urn:ema:mfa, a password alone otherwise.
const { Check } = interactionPolicy;
const policy = interactionPolicy.base();
policy.get('login').checks.add(
  new Check('acr_values', 'none of the requested authentication context classes was obtained', (ctx) => {
    const { oidc } = ctx;
    const requested = (oidc.params.acr_values ?? '').split(' ').filter((v) => ACR_VALUES.includes(v));
    // No session: `no_session` asks for the login; a login just done is what the user could do.
    if (!requested.length || !oidc.session.accountId || oidc.result?.login) return Check.NO_NEED_TO_PROMPT;
    return requested.includes(oidc.acr) ? Check.NO_NEED_TO_PROMPT : Check.REQUEST_PROMPT;
  }),
);

const server = createServer();
await new Promise((resolve) => server.listen(Number(process.env.EMA_OIDC_PORT || 0), '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      // The MCP profile requires client authentication at the IdP for the exchange; the secret
      // is what managed policy delivers (policy `client_auth.method = client_secret_basic`).
      token_endpoint_auth_method: 'client_secret_basic',
      application_type: 'native',
      // RFC 8252 §7.3: for native clients oidc-provider matches loopback redirects on any port.
      redirect_uris: ['http://127.0.0.1/callback'],
      response_types: ['code'],
      grant_types: ['authorization_code', 'refresh_token', GRANT_TOKEN_EXCHANGE],
    },
  ],
  jwks: { keys: [rsa, ec] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  scopes: ['openid', 'email', 'profile', 'offline_access'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'given_name', 'family_name'],
  },
  // OIDC Core §5.4 (oidc-provider's default): with an access token issued, scope claims such as
  // `email` go to UserInfo only, not into the ID token. Kept at the default on purpose.
  conformIdTokenClaims: process.env.EMA_OIDC_CONFORM_ID_TOKEN_CLAIMS !== 'false',
  pkce: { required: () => true },
  // EMA_OIDC_ID_TOKEN_TTL (seconds) makes ID tokens short-lived, so that EMA must renew them
  // with the refresh token before each exchange.
  ttl: {
    IdToken: Number(process.env.EMA_OIDC_ID_TOKEN_TTL || 3600),
    AccessToken: 3600,
    AuthorizationCode: 60,
    Grant: 14 * 24 * 3600,
    Interaction: 3600,
    RefreshToken: 14 * 24 * 3600,
    Session: 14 * 24 * 3600,
  },
  features: {
    devInteractions: { enabled: true },
    revocation: { enabled: true },
    // The ID-JAG's audience is the connector AS (RFC 8693 `audience`), not an oidc-provider
    // resource server; resource indicators for its own access tokens are not needed here.
    resourceIndicators: { enabled: false },
  },
  // OIDC Core §11: oidc-provider keeps `offline_access` only when the authorization request
  // has prompt=consent (EMA's policy `idp.prompt: ["consent"]`); then a refresh token is issued.
  issueRefreshToken: async (ctx, client, code) =>
    client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access'),
  findAccount,
  acrValues: ACR_VALUES,
  interactions: { policy },
  renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = `<!doctype html><title>oidc-provider error</title><h1>${out.error}</h1><p>${out.error_description ?? ''}</p>`;
  },
});

// devInteractions' login page submits `{ login: { accountId } }` through interactionFinished;
// this adds what a real login page reports there: the class the user authenticated with.
const interactionFinished = provider.interactionFinished.bind(provider);
provider.interactionFinished = async (req, res, result, options) => {
  if (result?.login) {
    const { params } = await provider.interactionDetails(req, res);
    const mfa = (params.acr_values ?? '').split(' ').includes(ACR_MFA);
    const login = { acr: mfa ? ACR_MFA : ACR_PASSWORD, amr: mfa ? ['pwd', 'otp'] : ['pwd'] };
    note('login', { account: result.login.accountId, ...login });
    result.login = { ...result.login, ...login };
  }
  return interactionFinished(req, res, result, options);
};

// --- RFC 8693 token exchange issuing ID-JAGs (draft-ietf-oauth-identity-assertion-authz-grant §4.3) ---

// The subject an ID token: one this provider issued to this very client, still valid.
async function idTokenSubject(ctx) {
  const { client, params } = ctx.oidc;
  let claims;
  try {
    ({ payload: claims } = await jwtVerify(params.subject_token, ownJwks, {
      issuer,
      audience: client.clientId,
      algorithms: ['RS256', 'ES256'],
      clockTolerance: LEEWAY,
      requiredClaims: ['sub', 'iat', 'exp'],
    }));
  } catch (e) {
    console.error(`token-exchange: subject_token refused: ${e.code ?? ''} ${e.message}`);
    throw new errors.InvalidGrant(`subject_token is not a valid ID token from this provider for this client (${e.message})`);
  }
  if (claims.azp && claims.azp !== client.clientId) throw new errors.InvalidGrant('subject_token azp is another client');
  const account = await findAccount(ctx, claims.sub);
  if (!account) throw new errors.InvalidGrant('subject_token subject is unknown');
  const userClaims = await account.claims();
  return { kind: 'id-token', sub: claims.sub, authTime: claims.auth_time, acr: claims.acr, email: userClaims.email };
}

// The subject a refresh token (draft -02 and later): validated as oidc-provider's own
// refresh_token grant validates one (lib/actions/grants/refresh_token.js): found (and, bound to
// a session, that session still alive: RefreshToken.find checks it), issued to this client,
// unexpired, its grant still there, unexpired and this client's, its account known and the
// grant's, and not consumed (a consumed one is a replay: like the refresh grant, the token and
// everything of its grant are revoked). It is neither consumed nor rotated: the exchange does
// not spend it, so EMA goes on using it. Its claims are assembled as for a new ID token: from
// the account now, filtered by the grant's OpenID scopes. The draft's "the requested scopes and
// audience remain within the authorization context of the Refresh Token" cannot be read
// literally here: the refresh token's scopes are this IdP's OpenID scopes and it names no
// audience, while the exchange asks for a connector AS's scopes; those are judged by the same
// entitlement policy as with an ID token.
async function refreshTokenSubject(ctx) {
  const { client, params } = ctx.oidc;
  const invalid = (why) => {
    count('exchange-refresh-token-invalid');
    console.error(`token-exchange: refresh token refused: ${why}`);
    return new errors.InvalidGrant(why);
  };
  const refreshToken = await provider.RefreshToken.find(params.subject_token, { ignoreExpiration: true });
  if (!refreshToken) throw invalid('refresh token not found');
  if (refreshToken.clientId !== client.clientId) throw invalid('client mismatch');
  if (refreshToken.isExpired) throw invalid('refresh token is expired');
  const grant = await provider.Grant.find(refreshToken.grantId, { ignoreExpiration: true });
  if (!grant) throw invalid('grant not found');
  if (grant.isExpired) throw invalid('grant is expired');
  if (grant.clientId !== client.clientId) throw invalid('grant client mismatch');
  // The ID-JAG asserts the user's identity: the refresh token must have been granted `openid`.
  if (!refreshToken.scopes.has('openid')) throw invalid('refresh token was not granted openid');
  const account = await findAccount(ctx, refreshToken.accountId, refreshToken);
  if (!account) throw invalid('refresh token invalid (referenced account not found)');
  if (refreshToken.accountId !== grant.accountId) throw invalid('accountId mismatch');
  if (refreshToken.consumed) {
    await Promise.all([
      refreshToken.destroy(),
      provider.AccessToken.revokeByGrantId(refreshToken.grantId),
      provider.RefreshToken.revokeByGrantId(refreshToken.grantId),
      provider.AuthorizationCode.revokeByGrantId(refreshToken.grantId),
      grant.destroy(),
    ]);
    throw invalid('refresh token already used');
  }
  const scopes = grant.getOIDCScopeFiltered(refreshToken.scopes);
  const userClaims = await account.claims();
  return {
    kind: 'refresh-token',
    sub: account.accountId,
    authTime: refreshToken.authTime,
    acr: refreshToken.acr,
    email: scopes.split(' ').includes('email') ? userClaims.email : undefined,
  };
}

async function tokenExchange(ctx) {
  const { params } = ctx.oidc;
  const log = (msg) => console.error(`token-exchange: ${msg}`);
  if (params.requested_token_type !== TOKEN_TYPE_ID_JAG) {
    throw new errors.InvalidRequest(`requested_token_type must be ${TOKEN_TYPE_ID_JAG}`);
  }
  const refreshSubject = params.subject_token_type === TOKEN_TYPE_REFRESH_TOKEN && REFRESH_SUBJECT === 'accept';
  if (params.subject_token_type === TOKEN_TYPE_REFRESH_TOKEN && !refreshSubject) {
    count('exchange-refresh-token-refused');
    log('refresh token as the subject refused (EMA_OP_REFRESH_SUBJECT=refuse)');
  }
  if (params.subject_token_type !== TOKEN_TYPE_ID_TOKEN && !refreshSubject) {
    // What an IdP of the draft -01 era answers: it knows no other subject token type.
    throw new errors.InvalidRequest(`subject_token_type must be ${TOKEN_TYPE_ID_TOKEN}`);
  }
  if (!params.subject_token) throw new errors.InvalidRequest('missing subject_token');
  if (!params.audience) throw new errors.InvalidRequest('missing audience (REQUIRED for ID-JAG)');

  const subject = refreshSubject ? await refreshTokenSubject(ctx) : await idTokenSubject(ctx);

  const connectors = readConnectors();
  const connector = connectors.find((c) => sameUri(c.as_issuer, params.audience));
  if (!connector) {
    log(`unknown audience ${params.audience}`);
    throw new errors.InvalidTarget('audience is not a known authorization server');
  }
  if (params.resource !== undefined && !sameUri(params.resource, connector.mcp_url)) {
    throw new errors.InvalidTarget('resource is not the MCP server of this audience');
  }
  if (STEP_UP.has(connector.id)) {
    // RFC 9470 §3 through the exchange (ID-JAG -04 §9.2): the subject must come from a sign-in
    // with the class asked for, at most max_age ago. oidc-provider renders errors with `error`,
    // `error_description`, `scope` and `state` only (lib/helpers/err_out.js), so this answer is
    // written here; oidc-provider then emits `grant.success` for it (see the listener).
    const now = Math.floor(Date.now() / 1000);
    const age = typeof subject.authTime === 'number' ? now - subject.authTime : undefined;
    const met = (!STEP_UP_ACR || subject.acr === STEP_UP_ACR) && age !== undefined && age <= STEP_UP_MAX_AGE;
    note('step-up', { connector: connector.id, subject: subject.kind, acr: subject.acr ?? null, auth_time: subject.authTime ?? null, age: age ?? null, met });
    if (!met) {
      count('step-up-refused');
      log(`${connector.id} needs a step-up: acr ${subject.acr ?? '(none)'}, auth_time ${age === undefined ? '(none)' : `${age} s ago`}`);
      ctx.status = 400;
      ctx.body = {
        error: 'insufficient_user_authentication',
        error_description: `${connector.id} requires a sign-in${STEP_UP_ACR ? ` with ${STEP_UP_ACR}` : ''} within ${STEP_UP_MAX_AGE} s`,
        max_age: STEP_UP_MAX_AGE,
        ...(STEP_UP_ACR ? { acr_values: STEP_UP_ACR } : {}),
      };
      return;
    }
    count('step-up-met');
  }
  if (unassigned(subject.sub, connector)) count('exchange-unassigned');
  if (!entitled(subject.sub, connector)) {
    log(`${subject.sub} is not entitled to ${connector.id ?? connector.as_issuer}`);
    throw new errors.AccessDenied(`${subject.sub} is not assigned to this connector`);
  }
  const known = connector.scopes ?? [];
  const requested = params.scope ? [...new Set(params.scope.split(' ').filter(Boolean))] : known;
  const unknown = requested.filter((s) => !known.includes(s));
  if (unknown.length) throw new errors.InvalidScope('requested scope is not allowed for this audience', unknown.join(' '));
  const scope = requested.join(' ');

  const now = Math.floor(Date.now() / 1000);
  const payload = {
    sub: subject.sub,
    client_id: connector.client_id,
    jti: randomUUID(),
    resource: connector.mcp_url,
    email: subject.email,
    auth_time: subject.authTime,
  };
  if (scope) payload.scope = scope;
  const idJag = await new SignJWT(payload)
    .setProtectedHeader({ alg: 'ES256', typ: 'oauth-id-jag+jwt', kid: ec.kid })
    .setIssuer(issuer)
    .setAudience(connector.as_issuer)
    .setIssuedAt(now)
    .setExpirationTime(now + ID_JAG_TTL)
    .sign(idJagKey);
  count('exchange');
  count(`exchange-with-${subject.kind}`);
  log(`issued an ID-JAG for ${subject.sub} -> ${connector.as_issuer} (scope "${scope}", subject: ${subject.kind})`);
  ctx.body = {
    access_token: idJag,
    issued_token_type: TOKEN_TYPE_ID_JAG,
    token_type: 'N_A',
    expires_in: ID_JAG_TTL,
    ...(scope ? { scope } : {}),
  };
}

provider.registerGrantType(GRANT_TOKEN_EXCHANGE, tokenExchange, [
  'audience',
  'resource',
  'scope',
  'requested_token_type',
  'subject_token',
  'subject_token_type',
  'actor_token',
  'actor_token_type',
]);

provider.on('revocation.error', (ctx, err) => console.error(`revocation.error: ${err.error ?? ''} ${err.error_description ?? err.message}`));
provider.on('refresh_token.saved', (token) => {
  count('refresh-token-saved');
  console.error(`refresh token issued to ${token.clientId} for ${token.accountId}`);
});
provider.on('refresh_token.consumed', () => count('refresh-token-consumed'));
provider.on('grant.success', (ctx) => {
  if (ctx.status !== 200) return;
  if (typeof ctx.body?.id_token === 'string') {
    const { acr, amr, auth_time: authTime } = decodeJwt(ctx.body.id_token);
    note('id-token', { grant_type: ctx.oidc.params.grant_type, acr: acr ?? null, amr: amr ?? null, auth_time: authTime ?? null });
  }
  if (ctx.oidc.params.grant_type !== 'refresh_token') return;
  count('refresh');
  console.error(`refresh grant: new ID token for ${ctx.oidc.entities.Account?.accountId}`);
});
provider.on('refresh_token.destroyed', (token) => console.error(`refresh token revoked (${token.accountId})`));
provider.on('interaction.started', (ctx, prompt) => note('interaction', { prompt: prompt.name, reasons: prompt.reasons }));
// The authorization requests, with what a step-up adds to them (OIDC Core §3.1.2.1).
provider.use(async (ctx, next) => {
  if (ctx.path === '/auth' && ['GET', 'POST'].includes(ctx.method)) {
    count('authorization');
    const q = ctx.method === 'GET' ? ctx.query : {};
    if (q.max_age !== undefined) count('authorization-with-max_age');
    if (q.acr_values !== undefined) count('authorization-with-acr_values');
    note('authorization', { max_age: q.max_age ?? null, acr_values: q.acr_values ?? null, prompt: q.prompt ?? null });
  }
  await next();
});
provider.on('server_error', (ctx, err) => console.error('server_error:', err));
provider.on('grant.error', (ctx, err) => console.error(`grant.error: ${err.error ?? ''} ${err.error_description ?? err.message}`));
provider.on('authorization.error', (ctx, err) => console.error(`authorization.error: ${err.error ?? ''} ${err.error_description ?? err.message}`));

const callback = provider.callback();
server.on('request', (req, res) => {
  const json = (status, body) => {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(body));
  };
  const url = new URL(req.url, issuer);
  if (req.method === 'GET' && url.pathname === COUNTERS_PATH) return json(200, COUNTERS);
  if (req.method === 'GET' && url.pathname === LOG_PATH) return json(200, LOG);
  if (req.method === 'POST' && url.pathname === '/ema-test/unassign') {
    const [user, connector] = [url.searchParams.get('user'), url.searchParams.get('connector')];
    if (!USERS[user] || !connector) return json(400, { error: 'user (a known account) and connector are required' });
    (UNASSIGNED[user] ??= new Set()).add(connector);
    note('unassign', { user, connector });
    console.error(`entitlements: ${connector} withdrawn from ${user}`);
    return json(200, { user, unassigned: [...UNASSIGNED[user]] });
  }
  callback(req, res);
});
process.stdout.write(`READY ${issuer}\n`);
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// The test keeps stdin open; when it goes away (test ended or killed) the provider exits too.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
