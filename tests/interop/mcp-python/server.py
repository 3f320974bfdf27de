#!/usr/bin/env python3
"""An MCP server built with the MCP Python SDK (PyPI `mcp`), as an interop peer for EMA's MCP check.

Streamable HTTP at http://127.0.0.1:<port>/mcp with one tool (`echo`), behind the SDK's own bearer
middleware: a `TokenVerifier` that accepts exactly `Authorization: Bearer $EMA_MCP_TOKEN` (anything
else gets the SDK's 401). Everything else is the SDK's defaults; nothing here touches the protocol.

Modes (first argument), each needing its SDK line in the running interpreter:

  newest  mcp 2.x (`mcp.server.mcpserver.MCPServer`). The SDK serves MCP 2026-07-28 on its
          per-request entry (`mcp/server/_streamable_http_modern.py`), reached when the request's
          MCP-Protocol-Version header names a non-handshake revision; there it requires the
          `_meta` envelope and MCP-Protocol-Version / Mcp-Method (/ Mcp-Name) headers equal to the
          body (`mcp.shared.inbound.classify_inbound_request`: -32020, -32022, HTTP 400). Requests
          without that header get its `initialize` handshake era (2024-11-05 .. 2025-11-25).
  older   mcp 1.x (`mcp.server.fastmcp.FastMCP`), the 2025 line: the `initialize` handshake only,
          2024-11-05 .. 2025-11-25.

Options: --port N (default 0: any free port), --stateless (the SDK's stateless_http: no
Mcp-Session-Id), --json-response (JSON bodies instead of event streams).

Once it listens it prints the chosen port on stdout as one line; logs go to stderr.
Run by tests/interop_mcp_python.rs through tests/interop/mcp-python/run.sh.
"""

import argparse
import hmac
import importlib.metadata
import os
import socket
import sys

import uvicorn
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings

SERVER_NAME = "ema-interop-mcp-python"


class StaticTokenVerifier:
    """The SDK's `TokenVerifier` protocol (`mcp.server.auth.provider`): one token, from the environment."""

    def __init__(self, token: str):
        self._token = token

    async def verify_token(self, token: str) -> AccessToken | None:
        if not hmac.compare_digest(token.encode(), self._token.encode()):
            return None
        return AccessToken(token=token, client_id="ema", scopes=[])


class LogRefusals:
    """ASGI wrapper, for the test's failure output only: logs each request's MCP headers and the
    body of every 4xx/5xx answer to stderr (never the Authorization header). Changes nothing."""

    LOGGED = (b"mcp-protocol-version", b"mcp-method", b"mcp-name", b"mcp-session-id")

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        shown = {k.decode(): v.decode("latin-1") for k, v in scope["headers"] if k in self.LOGGED}
        status = 0

        async def logging_send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and status >= 400 and message.get("body"):
                body = message["body"][:500].decode("utf-8", "replace")
                print(f"refused {scope['method']} {shown}: HTTP {status} {body}", file=sys.stderr, flush=True)
            await send(message)

        await self.app(scope, receive, logging_send)


def build_app(mode: str, url: str, stateless: bool, json_response: bool, token: str):
    sdk_version = importlib.metadata.version("mcp")
    major = int(sdk_version.split(".")[0])
    wanted = {"newest": 2, "older": 1}[mode]
    if major != wanted:
        sys.exit(f"server.py: mode {mode} needs mcp {wanted}.x, this interpreter has mcp {sdk_version}")
    # A resource server only: the issuer is never contacted (it is only named in the protected
    # resource metadata the SDK serves). The verifier checks the one token itself, so the SDK's
    # audience check is off.
    auth = AuthSettings(
        issuer_url="https://idp.invalid",
        resource_server_url=url,
        validate_token_resource=False,
    )
    verifier = StaticTokenVerifier(token)

    def echo(text: str) -> str:
        """Returns its input."""
        return text

    if mode == "newest":
        from mcp.server.mcpserver import MCPServer

        server = MCPServer(name=SERVER_NAME, version=sdk_version, token_verifier=verifier, auth=auth)
        server.tool()(echo)
        return server.streamable_http_app(stateless_http=stateless, json_response=json_response, host="127.0.0.1")

    from mcp.server.fastmcp import FastMCP

    server = FastMCP(
        name=SERVER_NAME,
        token_verifier=verifier,
        auth=auth,
        host="127.0.0.1",
        stateless_http=stateless,
        json_response=json_response,
    )
    server._mcp_server.version = sdk_version  # FastMCP 1.x has no `version` argument
    server.tool()(echo)
    return server.streamable_http_app()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["newest", "older"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--stateless", action="store_true")
    parser.add_argument("--json-response", action="store_true")
    args = parser.parse_args()
    token = os.environ.get("EMA_MCP_TOKEN", "")
    if not token:
        sys.exit("server.py: set EMA_MCP_TOKEN to the bearer token to accept")

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(128)
    port = sock.getsockname()[1]
    app = build_app(args.mode, f"http://127.0.0.1:{port}/mcp", args.stateless, args.json_response, token)
    print(
        f"server.py: mcp {importlib.metadata.version('mcp')}, mode {args.mode}, "
        f"{'stateless' if args.stateless else 'stateful'}, {'json' if args.json_response else 'sse'}, port {port}",
        file=sys.stderr,
        flush=True,
    )
    # The socket already listens, so a client that connects before uvicorn runs just waits.
    print(port, flush=True)
    # Nothing else on stdout (uvicorn writes its access log there): the reader may stop reading.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    config = uvicorn.Config(LogRefusals(app), log_level="info", lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
