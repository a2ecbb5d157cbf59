"""Secure by default: one ASGI middleware in front of everything.

  1. Host must name this server (loopback names/addresses, the bound address, --allow-origin
     hosts): a foreign Host is how DNS rebinding reaches a loopback server -> 403.
  2. Origin, when a browser sends one, must be this server itself or an --allow-origin -> 403:
     no other website can drive the API (CSRF), even with a simple form POST.
  3. The body is capped (by Content-Length, or counted when chunked) -> 413, before it is read. The
     upload routes get room for their files (UPLOAD_FILES x max_upload) on top of the usual cap.
  4. With a token, every API call needs `Authorization: Bearer <token>` -> 401. The web UI
     itself (/, /static, /docs) carries no data and loads without it.
Every response also gets headers that stop framing and sniffing, and a CSP for the UI.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from typing import Iterable
from urllib.parse import urlsplit

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
WILDCARD_HOSTS = {"0.0.0.0", "::", ""}
PROTECTED_PREFIXES = ("/api/", "/v1/", "/openapi.json")
UPLOAD_FILES = {"/v1/images/edits": 2, "/api/uploads": 1}  # route -> the files its body may carry

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' data: blob:; connect-src 'self'; style-src 'self'; "
     b"script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
]


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_host(value: str) -> tuple[str, int | None] | None:
    """'Host' header -> (hostname, port); None when malformed."""
    try:
        parts = urlsplit("//" + value)
        return (parts.hostname or "").lower(), parts.port
    except ValueError:
        return None


def origin_parts(origin: str) -> tuple[str, str, int | None] | None:
    try:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return None
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return parts.scheme, parts.hostname.lower(), port
    except ValueError:
        return None


def normalize_origin(origin: str) -> str:
    """'http://Box:7860/' -> 'http://box:7860' (what browsers send); ValueError when not an origin."""
    parts = origin_parts(origin.strip().rstrip("/"))
    if parts is None:
        raise ValueError(f"{origin!r} is not an origin like http://host:port")
    scheme, host, port = parts
    default = 443 if scheme == "https" else 80
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" + ("" if port == default else f":{port}")


class SecurityMiddleware:
    def __init__(self, app, *, token: str | None, allow_origins: Iterable[str] = (),
                 bound_host: str | None = None, max_body: int, max_upload: int = 0):
        self.app = app
        self.token = token.encode() if token else None
        self.allow_origins = {normalize_origin(o) for o in allow_origins}
        self.allowed_hosts = {urlsplit(o).hostname.lower() for o in self.allow_origins}
        if bound_host and bound_host not in WILDCARD_HOSTS:
            self.allowed_hosts.add(bound_host.strip("[]").lower())
        self.max_body = max_body
        self.max_upload = max_upload

    def host_allowed(self, host: str) -> bool:
        return is_loopback(host) or host in self.allowed_hosts

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = split_host(headers.get("host", ""))
        if host is None or not host[0] or not self.host_allowed(host[0]):
            return await _reply(send, 403, "forbidden host: this server only answers to its own names "
                                           "(loopback, or hosts given with --allow-origin)")
        origin = headers.get("origin")
        if origin is not None and not self._origin_allowed(origin, host, scope):
            return await _reply(send, 403, "forbidden origin: another website may not call this server "
                                           "(allow one with --allow-origin)")
        path = scope.get("path", "")
        cap = self.max_body + UPLOAD_FILES.get(path, 0) * self.max_upload
        length = headers.get("content-length")
        if length is not None:
            if not (length.isascii() and length.isdigit()):  # '²'.isdigit() is True, int('²') a ValueError
                return await _reply(send, 400, "bad Content-Length")
            if int(length) > cap:
                return await _reply(send, 413, f"request body over {cap} bytes")
        if self.token and path.startswith(PROTECTED_PREFIXES) and scope.get("method") != "OPTIONS":
            auth = headers.get("authorization", "")
            scheme, _, given = auth.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.token):
                return await _reply(send, 401, "missing or wrong token: send Authorization: Bearer <token>",
                                    [(b"www-authenticate", b"Bearer")])
        if length is None and scope["type"] == "http" and scope.get("method") in ("POST", "PUT", "PATCH"):
            # a chunked body: read it here, up to the cap, and hand it on whole
            body, more = bytearray(), True  # bytearray: += of bytes would copy it all each chunk
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    return
                body += message.get("body", b"")
                more = message.get("more_body", False)
                if len(body) > cap:
                    return await _reply(send, 413, f"request body over {cap} bytes")
            receive = _replay(bytes(body), receive)
        return await self.app(scope, receive, self._with_headers(send))

    def _origin_allowed(self, origin: str, host: tuple[str, int | None], scope) -> bool:
        try:
            if normalize_origin(origin) in self.allow_origins:
                return True
        except ValueError:
            return False  # 'null' (sandboxed frames, file://) and other non-origins
        parts = origin_parts(origin)
        scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
        default = 443 if scheme == "https" else 80
        # same origin as the Host header the request came in on (which is already allowlisted)
        return parts is not None and parts == (scheme, host[0], host[1] or default)

    @staticmethod
    def _with_headers(send):
        async def wrapped(message):
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        return wrapped


def _replay(body: bytes, receive):
    sent = False

    async def wrapped():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # then disconnects, as usual

    return wrapped


async def _reply(send, status: int, message: str, extra: list | None = None) -> None:
    kind = {401: "unauthorized", 403: "forbidden", 413: "body_too_large"}.get(status, "bad_request")
    body = json.dumps({"detail": message, "error": {"message": message, "type": kind}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *SECURITY_HEADERS, *(extra or [])]})
    await send({"type": "http.response.body", "body": body})
