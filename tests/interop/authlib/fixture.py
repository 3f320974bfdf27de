#!/usr/bin/env python3
"""A connector hosted by Authlib: its authorization server and a minimal MCP server.

The resource authorization server of the ID-JAG flow
(draft-ietf-oauth-identity-assertion-authz-grant §4.4) is Authlib's own
``authlib.oauth2.drafts.IDJAGGrant`` on Authlib's Flask ``AuthorizationServer``.
This file only supplies what Authlib leaves to the application (the hooks the
grant's docstring lists), plus the discovery documents and an MCP endpoint, so
that EMA can be proven against an independent ID-JAG validator
(tests/interop_authlib.rs, run by tests/interop/authlib/run.sh).

Served on one origin ``http://127.0.0.1:PORT`` (the base URL, also the AS issuer):

- ``/.well-known/oauth-protected-resource/mcp``  RFC 9728 metadata of ``<base>/mcp``
- ``/.well-known/oauth-authorization-server``    RFC 8414 metadata (issuer ``<base>``)
- ``/token``                                     Authlib: IDJAGGrant (jwt-bearer grant type)
- ``/mcp``                                       MCP Streamable HTTP, Bearer tokens of ``/token`` only
- ``/_config``                                   test-only, see below

Application choices (Authlib's hooks):

- trusted IdP: one issuer, keys from its JWKS URL (fetched lazily, again on an unknown ``kid``);
- ``aud`` must be exactly this AS's issuer (``get_audiences``);
- clients: ``ema-authlib`` and ``other-client``, confidential, ``client_secret_basic`` (Authlib's
  IDJAGGrant default), both allowed the jwt-bearer grant type; with ``--client-jwk``, ``ema-authlib``
  is registered for ``private_key_jwt`` with that public key instead (Authlib's
  ``JWTBearerClientAssertion``, RFC 7523 §3, its method name ``client_assertion_jwt``): the
  assertion's ``aud`` must be the token endpoint URL or the issuer (its ``get_audiences``, as
  Authlib's own docstring example lists them), its ``jti`` is single-use;
- jti replay check ON: ``(iss, jti)`` is kept in memory until the assertion's ``exp`` + leeway;
- users are provisioned just in time from ``sub`` (federated from the trusted IdP);
- policy (``check_id_jag_permission``): when the ID-JAG or the request carries ``resource``,
  it must be this MCP server (Authlib itself does not look at ``resource``);
- access tokens: Authlib's Bearer generator, kept in memory, never a refresh token.

The ordering problem: the IdP (the EMA sandbox) must know this server's URLs before it starts,
and this server must know the IdP. So the IdP may be given later: start this server without
``--idp-issuer``/``--idp-jwks-url``, read ``READY <base_url>`` from stdout, start the IdP, then
``POST /_config`` with ``{"idp_issuer": ..., "idp_jwks_url": ...}`` (once; 409 afterwards).
Until then ``/token`` refuses every assertion (``invalid_grant``: no trusted IdP).

Usage: fixture.py (--client-secret S | --client-jwk JWK) --other-client-secret S2 [--port 0]
                  [--scope read ...] [--idp-issuer URL --idp-jwks-url URL] [--token-ttl 3600]
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import sys
import threading
import time
import urllib.request

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.drafts import IDJAGGrant
from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oauth2.rfc6749 import InvalidGrantError
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7523.jwt_bearer import JWT_BEARER_GRANT_TYPE
from flask import Flask
from flask import Response
from flask import request
from joserfc.jwk import KeySet
from werkzeug.serving import make_server

FIXTURE_VERSION = "1.0.0"
EMA_CLIENT_ID = "ema-authlib"
OTHER_CLIENT_ID = "other-client"
# MCP revisions that still have the `initialize` handshake (the 2026-07-28 one does not).
MCP_VERSIONS = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"]

log = logging.getLogger("authlib-fixture")


class Settings:
    """Everything the routes need; the IdP part may arrive late (``/_config``)."""

    def __init__(self, base: str, scopes: list[str], token_ttl: int):
        self.base = base
        self.issuer = base
        self.mcp_url = f"{base}/mcp"
        self.resource_metadata_url = f"{base}/.well-known/oauth-protected-resource/mcp"
        self.scopes = scopes
        self.token_ttl = token_ttl
        self.lock = threading.Lock()
        self.idp_issuer: str | None = None
        self.idp_jwks_url: str | None = None
        self.jwks: KeySet | None = None
        self.used_jtis: dict[tuple[str, str], float] = {}
        # Client assertions (private_key_jwt): (client_id, jti) -> exp, apart from the ID-JAGs'.
        self.used_client_jtis: dict[tuple[str, str], float] = {}
        self.tokens: dict[str, dict] = {}

    def configure_idp(self, issuer: str, jwks_url: str) -> bool:
        with self.lock:
            if self.idp_issuer is not None:
                return False
            self.idp_issuer, self.idp_jwks_url = issuer, jwks_url
            return True

    def keys(self, kid: str | None) -> KeySet:
        """The trusted IdP's keys; fetched on first use and again when ``kid`` is unknown."""
        with self.lock:
            cached = self.jwks
            url = self.idp_jwks_url
        if cached is not None and (kid is None or any(k.kid == kid for k in cached.keys)):
            return cached
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 (loopback URL from the test)
            data = json.load(resp)
        keys = KeySet.import_key_set(data)
        with self.lock:
            self.jwks = keys
        log.info("fetched %d key(s) from %s", len(keys.keys), url)
        return keys


class Client(ClientMixin):
    """A confidential client registered for the jwt-bearer grant and one authentication method:
    client_secret_basic with ``secret``, or private_key_jwt with the public key ``jwk``."""

    def __init__(self, client_id: str, secret: str | None = None, jwk: dict | None = None):
        self.client_id = client_id
        self.secret = secret
        self.public_keys = KeySet.import_key_set({"keys": [jwk]}) if jwk else None
        # Authlib's name for both JWT methods (private_key_jwt, client_secret_jwt).
        self.auth_method = JWTBearerClientAssertion.CLIENT_AUTH_METHOD if jwk else "client_secret_basic"
        self.metadata_method = "private_key_jwt" if jwk else "client_secret_basic"

    def get_client_id(self):
        return self.client_id

    def check_client_secret(self, client_secret):
        return self.secret is not None and hmac.compare_digest(self.secret.encode(), client_secret.encode())

    def check_endpoint_auth_method(self, method, endpoint):
        return endpoint == "token" and method == self.auth_method

    def check_grant_type(self, grant_type):
        return grant_type == JWT_BEARER_GRANT_TYPE

    def get_allowed_scope(self, scope):
        return scope


class User:
    def __init__(self, issuer: str, sub: str, email: str | None):
        self.issuer, self.sub, self.email = issuer, sub, email


def make_client_assertion(settings: Settings):
    class FixtureClientAssertion(JWTBearerClientAssertion):
        """Authlib's private_key_jwt verifier with this fixture's answers to its required hooks."""

        def get_audiences(self):
            return [f"{settings.base}/token", settings.issuer]

        def resolve_client_public_key(self, client):
            return client.public_keys

        def validate_jti(self, claims, jti):
            now = time.time()
            key = (claims["sub"], jti)
            with settings.lock:
                settings.used_client_jtis = {
                    k: exp for k, exp in settings.used_client_jtis.items() if exp + self.leeway >= now
                }
                if key in settings.used_client_jtis:
                    log.info("client assertion jti replay refused: %s", jti)
                    return False
                settings.used_client_jtis[key] = float(claims["exp"])
            log.info("client %s authenticated with private_key_jwt (aud %r)", claims["sub"], claims["aud"])
            return True

    return FixtureClientAssertion


def make_grant(settings: Settings):
    class FixtureIDJAGGrant(IDJAGGrant):
        """Authlib's IDJAGGrant with this fixture's answers to its required hooks."""

        TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", JWTBearerClientAssertion.CLIENT_AUTH_METHOD]

        def get_audiences(self):
            return [settings.issuer]

        def resolve_issuer_key(self, issuer, headers):
            if settings.idp_issuer is None:
                raise InvalidGrantError(description="no trusted IdP is configured yet (POST /_config)")
            if issuer != settings.idp_issuer:
                raise InvalidGrantError(description=f"untrusted issuer '{issuer}'")
            return settings.keys(headers.get("kid"))

        def authenticate_user(self, subject):
            claims = self.request.id_jag_claims
            return User(claims["iss"], subject, claims.get("email"))

        def check_jti(self, claims, jti):
            now = time.time()
            key = (claims["iss"], jti)
            with settings.lock:
                # Remember a jti while its assertion could still pass the exp check.
                settings.used_jtis = {
                    k: exp for k, exp in settings.used_jtis.items() if exp + self.LEEWAY >= now
                }
                if key in settings.used_jtis:
                    log.info("jti replay refused: %s", jti)
                    return False
                settings.used_jtis[key] = float(claims["exp"])
            return True

        def check_id_jag_permission(self, client, user, scopes):
            claims = self.request.id_jag_claims
            for name, value in (("claim", claims.get("resource")), ("parameter", request.form.get("resource"))):
                if value is not None and value != settings.mcp_url:
                    log.info("resource %s %r is not %s", name, value, settings.mcp_url)
                    return False
            return True

    return FixtureIDJAGGrant


def create_app(settings: Settings, clients: dict[str, Client]) -> Flask:
    app = Flask("authlib-fixture")
    app.config["OAUTH2_SCOPES_SUPPORTED"] = settings.scopes
    app.config["OAUTH2_TOKEN_EXPIRES_IN"] = {JWT_BEARER_GRANT_TYPE: settings.token_ttl}

    def query_client(client_id):
        return clients.get(client_id)

    def save_token(token, req):
        with settings.lock:
            settings.tokens[token["access_token"]] = {
                "client_id": req.client.get_client_id(),
                "sub": req.user.sub,
                "scope": token.get("scope"),
                "expires_at": time.time() + token["expires_in"],
            }
        log.info("issued an access token to %s for %s (scope %r)", req.client.get_client_id(), req.user.sub,
                 token.get("scope"))

    server = AuthorizationServer(app, query_client=query_client, save_token=save_token)
    server.register_client_auth_method(JWTBearerClientAssertion.CLIENT_AUTH_METHOD, make_client_assertion(settings)())
    server.register_grant(make_grant(settings))
    auth_methods = sorted({c.metadata_method for c in clients.values()})

    @app.get("/.well-known/oauth-protected-resource/mcp")
    def resource_metadata():
        return {
            "resource": settings.mcp_url,
            "authorization_servers": [settings.issuer],
            "scopes_supported": settings.scopes,
            "bearer_methods_supported": ["header"],
            "resource_name": "Authlib fixture",
        }

    @app.get("/.well-known/oauth-authorization-server")
    def as_metadata():
        return {
            "issuer": settings.issuer,
            "token_endpoint": f"{settings.base}/token",
            "grant_types_supported": [JWT_BEARER_GRANT_TYPE],
            "token_endpoint_auth_methods_supported": auth_methods,
            **({"token_endpoint_auth_signing_alg_values_supported": ["ES256"]} if "private_key_jwt" in auth_methods
               else {}),
            "scopes_supported": settings.scopes,
            "response_types_supported": [],
            "authorization_grant_profiles_supported": ["urn:ietf:params:oauth:grant-profile:id-jag"],
        }

    @app.post("/token")
    def token():
        response = server.create_token_response()
        if response.status_code != 200:
            log.info("token endpoint: HTTP %s %s", response.status_code, response.get_data(as_text=True))
        return response

    @app.post("/_config")
    def config():
        body = request.get_json(force=True, silent=True) or {}
        issuer, jwks_url = body.get("idp_issuer"), body.get("idp_jwks_url")
        if not isinstance(issuer, str) or not isinstance(jwks_url, str):
            return {"error": "idp_issuer and idp_jwks_url (strings) are required"}, 400
        if not settings.configure_idp(issuer, jwks_url):
            return {"error": "the IdP is already configured"}, 409
        log.info("trusting IdP %s (JWKS %s)", issuer, jwks_url)
        return {"issuer": settings.issuer, "idp_issuer": issuer}

    @app.route("/mcp", methods=["GET", "POST", "DELETE"])
    def mcp():
        unauthorized = check_bearer(settings)
        if unauthorized is not None:
            return unauthorized
        if request.method != "POST":
            # No server-initiated stream and no sessions (MCP Streamable HTTP allows 405).
            return Response(status=405, headers={"Allow": "POST"})
        accept = request.headers.get("Accept", "")
        if "application/json" not in accept or "text/event-stream" not in accept:
            return jsonrpc_error(None, -32600, f"Accept must list application/json and text/event-stream: {accept!r}",
                                 406)
        version = request.headers.get("MCP-Protocol-Version")
        if version is not None and version not in MCP_VERSIONS:
            return jsonrpc_error(None, -32600, f"unsupported MCP-Protocol-Version {version!r}", 400)
        try:
            message = json.loads(request.get_data())
        except ValueError:
            return jsonrpc_error(None, -32700, "parse error", 400)
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0" or "method" not in message:
            return jsonrpc_error(None, -32600, "expected one JSON-RPC 2.0 request or notification", 400)
        method, msg_id = message["method"], message.get("id")
        if msg_id is None:
            if method == "notifications/initialized":
                return Response(status=202)
            return jsonrpc_error(None, -32601, f"unexpected notification {method!r}", 400)
        if method == "initialize":
            params = message.get("params") or {}
            requested = params.get("protocolVersion")
            log.info("MCP initialize from %r, protocolVersion %r", (params.get("clientInfo") or {}).get("name"),
                     requested)
            return jsonrpc_result(msg_id, {
                "protocolVersion": requested if requested in MCP_VERSIONS else MCP_VERSIONS[-1],
                "capabilities": {},
                "serverInfo": {"name": "authlib-fixture", "version": FIXTURE_VERSION},
            })
        if method == "ping":
            return jsonrpc_result(msg_id, {})
        return jsonrpc_error(msg_id, -32601, f"method {method!r} not found", 200)

    return app


def check_bearer(settings: Settings) -> Response | None:
    """RFC 6750 §3 / RFC 9728 §5.1: a 401 naming the resource metadata unless the token is ours."""
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    token = value.strip() if scheme.lower() == "bearer" else ""
    challenge = f'Bearer resource_metadata="{settings.resource_metadata_url}"'
    if token:
        with settings.lock:
            known = settings.tokens.get(token)
        if known is not None and known["expires_at"] > time.time():
            return None
        challenge += ', error="invalid_token", error_description="unknown or expired access token"'
    return Response(json.dumps({"error": "invalid_token" if token else "unauthorized"}), status=401,
                    headers={"WWW-Authenticate": challenge}, content_type="application/json")


def jsonrpc_result(msg_id, result) -> Response:
    return Response(json.dumps({"jsonrpc": "2.0", "id": msg_id, "result": result}), status=200,
                    content_type="application/json")


def jsonrpc_error(msg_id, code: int, message: str, status: int) -> Response:
    body = {"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": message}}
    return Response(json.dumps(body), status=status, content_type="application/json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: ephemeral)")
    own = parser.add_mutually_exclusive_group(required=True)
    own.add_argument("--client-secret", help=f"secret of {EMA_CLIENT_ID} (client_secret_basic)")
    own.add_argument("--client-jwk", type=json.loads, help=f"public JWK of {EMA_CLIENT_ID} (private_key_jwt)")
    parser.add_argument("--other-client-secret", required=True, help=f"secret of {OTHER_CLIENT_ID}")
    parser.add_argument("--scope", action="append", dest="scopes", help="a scope this AS knows (repeatable; default read)")
    parser.add_argument("--idp-issuer", help="the trusted IdP's issuer (or POST /_config later)")
    parser.add_argument("--idp-jwks-url", help="the trusted IdP's JWKS URL (with --idp-issuer)")
    parser.add_argument("--token-ttl", type=int, default=3600, help="access-token lifetime in seconds")
    args = parser.parse_args()
    if bool(args.idp_issuer) != bool(args.idp_jwks_url):
        parser.error("--idp-issuer and --idp-jwks-url go together")

    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("authlib").setLevel(logging.DEBUG)
    clients = {
        EMA_CLIENT_ID: Client(EMA_CLIENT_ID, secret=args.client_secret, jwk=args.client_jwk),
        OTHER_CLIENT_ID: Client(OTHER_CLIENT_ID, args.other_client_secret),
    }
    # Bind first: the issuer contains the port.
    holder: dict[str, Flask] = {}
    httpd = make_server("127.0.0.1", args.port, lambda env, start: holder["app"](env, start), threaded=True)
    base = f"http://127.0.0.1:{httpd.server_port}"
    settings = Settings(base, args.scopes or ["read"], args.token_ttl)
    if args.idp_issuer:
        settings.configure_idp(args.idp_issuer, args.idp_jwks_url)
    holder["app"] = create_app(settings, clients)
    print(f"READY {base}", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
