#!/usr/bin/env python3
"""Builds the seed corpus of every fuzz target (fuzz/seeds/<target>/) from the test fixtures
and from the documents the unit tests use, so a run starts from real inputs, not from nothing.

Idempotent and cheap: scripts/fuzz.sh runs it before every run. The output is not committed
(fuzz/.gitignore); the fixtures are the source of truth.
"""
import base64
import json
import os
import pathlib
import shutil

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIX = ROOT / "crates/core/tests/fixtures/scan"
OUT = ROOT / "fuzz/seeds"
SEP = b"\n--\n"


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwt(header, claims, sig=b"signature-bytes"):
    return f"{b64u(json.dumps(header).encode())}.{b64u(json.dumps(claims).encode())}.{b64u(sig)}"


def write(target, seeds):
    d = OUT / target
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    for i, s in enumerate(seeds):
        if isinstance(s, str):
            s = s.encode()
        (d / f"seed-{i:03}").write_bytes(s)


def joined(*parts):
    return SEP.join(p.encode() if isinstance(p, str) else p for p in parts)


ID_JAG = jwt({"typ": "oauth-id-jag+jwt", "alg": "ES256", "kid": "k1"},
             {"iss": "https://idp.example.com", "sub": "alice", "aud": "https://as.example.com",
              "client_id": "ema", "scope": "read", "resource": "https://mcp.example.com/mcp",
              "exp": 1780000300, "iat": 1780000000, "jti": "j1", "secret_claim": "x"})

# Every JWT-looking string in the fixture home (fake, unsigned mcp-remote and Claude tokens).
fixture_texts = {p: p.read_bytes() for p in FIX.rglob("*") if p.is_file()}
fixture_jwts = []
for text in fixture_texts.values():
    for word in text.decode(errors="replace").replace('"', " ").split():
        if word.startswith("eyJ") and word.count(".") == 2:
            fixture_jwts.append(word)

write("jwt_decode", [ID_JAG, "a.b.c", "opaque-token", "e30.e30.", "eyJ.eyJ.x"] + fixture_jwts[:8])

claims = {"iss": "https://idp.example.com", "sub": "alice", "aud": "ema-desktop", "exp": "$NOW",
          "iat": "$NOW", "nonce": "$NONCE", "email": "alice@example.com", "name": "Alice"}
claims_text = json.dumps(claims).replace('"$NOW"', "$NOW")
claims_future = claims_text.replace('"exp": $NOW', '"exp": 9999999999')
token_resp = json.dumps({"access_token": "at-1", "token_type": "Bearer", "expires_in": 3600,
                         "id_token": "$ID", "refresh_token": "rt-1", "scope": "openid email"})
userinfo = json.dumps({"sub": "alice", "email": "alice@example.com", "name": "Alice Anders"})
header = json.dumps({"alg": "ES256", "kid": "k1", "typ": "JWT"})
write("id_token", [
    b"\x00" + joined(claims_future, header, token_resp, userinfo),
    b"\x01" + joined(claims_future.replace(', "nonce": "$NONCE"', ""), header, token_resp, "{}"),
    b"\x02" + joined(claims_future, '{"alg":"ES256","kid":"k1","crit":["x"]}', token_resp, userinfo),
    b"\x00" + joined(claims_future.replace('"aud": "ema-desktop"', '"aud": ["ema-desktop", "other"], "azp": "other"'),
                     header, token_resp, userinfo),
    b"\x00" + joined(claims_text, header, token_resp.replace('"id_token": "$ID", ', ""), userinfo),
    b"\x20" + joined(claims_future, header, '{"error":"invalid_grant","error_description":"expired"}', ""),
])

ok = {"access_token": ID_JAG, "issued_token_type": "urn:ietf:params:oauth:token-type:id-jag",
      "token_type": "N_A", "expires_in": 300, "scope": "read write"}
bearer = {"access_token": "at-0123456789abcdef0123456789abcdef", "token_type": "Bearer",
          "expires_in": "3600", "refresh_token": "rt-1", "scope": "read"}
errors = [
    {"error": "invalid_grant", "error_description": f"assertion {ID_JAG} was replayed"},
    {"error": "access_denied", "error_description": "user not assigned"},
    {"error": "insufficient_user_authentication", "max_age": 0, "acr_values": "phr"},
    {"error": "invalid_client", "error_uri": "https://as.example.com/errors?code=abc"},
    {"error": "no_matching_policy"},
]
write("token_response", [b"\x00" + json.dumps(ok).encode(), b"\x00" + json.dumps(bearer).encode(),
                         b"\x00" + b'{"access_token":"x","token_type":"Bearer","expires_in":1000000000000000}',
                         b"\x00" + b'{"access_token":"x","token_type":"Bearer","expires_in":0}',
                         b"\x08" + b"<html>moved</html>"]
      + [b"\x04" + json.dumps(e).encode() for e in errors])
# oauth_error: status, shape, encoding, place, delimiters, then the body (prefix, secret material,
# suffix): whole server bodies as the first contract's input, and planted secrets in each place.
write("oauth_error", [bytes([4, 0, 0, 0, 0]) + json.dumps(e).encode() for e in errors]
      + [b"\x07\x00\x00\x03\x00" + b"Internal error: token=" + ID_JAG.encode(), b"\x05\x00\x00\x03\x00<html>401</html>"]
      + [bytes([4, s, e, p, d]) + joined("the assertion", "secret-material-0123456789", "was replayed")
         for s, e, p, d in ((0, 0, 0, 0), (1, 1, 1, 3), (2, 3, 2, 5), (3, 0, 3, 7), (4, 2, 4, 1), (0, 0, 2, 0))])

write("www_authenticate", [
    joined('Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/v1/mcp"',
           "https://mcp.example.com/.well-known/oauth-protected-resource"),
    joined('Bearer realm="mcp", error="invalid_token", resource_metadata=https://a/b, scope="x"', 'a"b\\c'),
    joined('Basic realm="x", Bearer resource_metadata="\\"quoted\\""', ""),
])

prm = {"resource": "https://mcp.example.com/v1/mcp", "authorization_servers": ["https://as.example.com/tenant1"],
       "bearer_methods_supported": ["header"]}
asm = {"issuer": "https://as.example.com/tenant1", "token_endpoint": "https://as.example.com/tenant1/token",
       "token_endpoint_auth_methods_supported": ["private_key_jwt"],
       "grant_types_supported": ["urn:ietf:params:oauth:grant-type:jwt-bearer"]}
hint = 'Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/v1/mcp"'
write("discovery", [b"\x00" + joined(hint, json.dumps(prm), json.dumps(asm)),
                    b"\x01" + joined("", json.dumps(prm), json.dumps(asm)),
                    b"\x00" + joined('Bearer resource_metadata="http://127.0.0.1:9/prm"', json.dumps(prm),
                                     json.dumps(dict(asm, issuer="https://evil.example"))),
                    b"\x16" + joined(hint, json.dumps(dict(prm, authorization_servers=["http://as.example.com"])), "")])

STATE = "Xq3-expected-state_0123456789"
queries = [f"code=abc&state={STATE}", f"code=abc&state={STATE}&iss=https%3A%2F%2Fidp.example.com%2Foauth2%2Fdefault",
           f"error=access_denied&error_description=no&state={STATE}", "code=abc&state=forged", f"state={STATE}",
           f"code=&state={STATE}&iss=https://evil.example"]
write("callback_query", queries)
write("loopback_request", [f"GET /callback?{q} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" for q in queries[:4]]
      + ["POST /callback HTTP/1.1\r\n\r\n", "GET /favicon.ico HTTP/1.1\r\n\r\n", "GET /callback?code=a",
         b"\xff\xfe GET / \r\n\r\n"])

policies = [ROOT / "examples/policy.example.json", FIX / "policy.json",
            ROOT / "crates/core/tests/data/config/policy-relative-key.json"]
policy_seeds = [p.read_bytes() for p in policies if p.exists()]
policy_seeds.append(json.dumps({
    "schema_version": 1, "organization": {"name": "E"},
    "idp": {"issuer": "https://idp.example.com", "client_id": "c",
            "client_auth": {"method": "private_key_jwt", "key_file": "key.pem", "key_id": "k1", "alg": "ES256"}},
    "settings": {"notifications": False, "expiry_warning_minutes": 5}}).encode())
write("policy", policy_seeds)
write("user_settings", [joined('{"expiry_warning_minutes": 30, "notifications": true}', '{"notifications": false}'),
                        joined('\ufeff{"start_at_login": true}', "{}"),
                        joined('{"colour": "blue"}', '{"expiry_warning_minutes": 5, "start_at_login": true}')])

# scan_config: the slot byte is the index in SLOTS of fuzz_targets/scan_config.rs.
slots = {".claude.json": 0, ".config/Claude/claude_desktop_config.json": 1, ".config/Code/User/mcp.json": 2,
         ".config/Code/User/settings.json": 3, ".cursor/mcp.json": 4, ".codeium/windsurf/mcp_config.json": 5,
         ".claude/.credentials.json": 6}
scan_seeds = []
for p, text in sorted(fixture_texts.items()):
    rel = p.relative_to(FIX).as_posix()
    if not rel.endswith(".json") or rel == "policy.json":
        continue
    rel_home = rel.removeprefix("home/")
    if rel_home in slots:
        slot = slots[rel_home]
    elif "_tokens.json" in rel:
        slot = 7
    elif rel.startswith("managed/"):
        slot = 8
    elif rel.endswith("/.mcp.json"):
        slot = 9
    elif "/.vscode/" in rel or "profiles" in rel:
        slot = 10 if "/.vscode/" in rel else 2
    elif "/.cursor/" in rel:
        slot = 11
    else:
        continue
    scan_seeds.append(bytes([slot]) + text.replace(b"@HOME@", b"/home/nobody"))
write("scan_config", scan_seeds)
write("remedy_edit", [bytes([sel, op]) + s[1:] for s in scan_seeds for sel, op in ((1, 0), (2, 0x80))]
      + [b"\x01\x00\xef\xbb\xbf{\"a\": 1, \"b\": 2}", b"\x02\x81{\n // c\n \"servers\": {\"a\": {},\n},\n}\n",
         b"\x01\x00{\"a\": 1, \"a\": 2}"])

write("scrub", [bytes([s, e, p, d]) + joined("server said:", "secret-material-0123456789", "was rejected")
                for s, e, p, d in ((0, 0, 0, 0), (1, 1, 3, 3), (2, 3, 2, 5), (4, 0, 1, 7), (5, 0, 0, 0), (6, 0, 0, 14),
                                   (3, 2, 0, 20), (2, 0x80, 1, 1))])
print(f"seeds in {OUT.relative_to(ROOT)}: " + ", ".join(f"{d.name} {len(list(d.iterdir()))}" for d in sorted(OUT.iterdir())))
