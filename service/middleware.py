"""What every request meets before a route: a missing API key (401), then the upload limit (413), both refused before
an upload's body is read, and the security headers on every response.

FastAPI parses a request's body before it runs the route's dependencies, so the refusals live here, where a refused
client costs the server its headers only. The key is checked first: a client without it learns nothing, not even the
size limit. The headers are set here and nowhere else.
"""

import base64
import hashlib
import json

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.routing import Match, Mount, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from esrgan.service.deps import API_KEY_HEADER, api_key_refusal
from esrgan.service.settings import Settings

# The web page: scripts, styles and images from this origin only, plus the blob:/data: images the compare view makes.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
OTHER_CSP = "default-src 'none'; frame-ancestors 'none'"  # JSON, images, files: nothing to load, never framed


METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def route_methods(router: Router, scope: Scope) -> set[str]:
    """The methods some route takes at this request's path (empty for a path no route has).

    Asked of the router itself, method by method, so included routers count as their routes do; mounts (static files)
    match any method and take none of these.
    """
    routes = [route for route in router.routes if not isinstance(route, Mount)]
    return {m for m in METHODS if any(r.matches({**scope, "method": m})[0] == Match.FULL for r in routes)}


def docs_csp(inline_scripts: list[str]) -> str:
    """The API docs pages' policy: their assets from this origin, their own inline start-up script by its hash, and
    the inline styles and blob: worker that Swagger UI and ReDoc make at run time."""
    hashes = "".join(
        f" 'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in inline_scripts
    )
    return (
        f"default-src 'none'; script-src 'self'{hashes}; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; worker-src blob:; base-uri 'none'; frame-ancestors 'none'"
    )


async def send_error(send: Send, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    """A JSON error like FastAPI's, closing the connection (the unread body is not worth draining)."""
    body = json.dumps({"detail": message}).encode()
    fields = {**(headers or {}), "content-type": "application/json", "content-length": str(len(body))}
    raw = [(k.lower().encode(), v.encode()) for k, v in fields.items()] + [(b"connection", b"close")]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class ApiKeyGate:
    """With an API key configured, refuse a request that carries a body without the key, before reading the body.

    Only a request some route takes is gated: any other (PUT /healthz, POST /nowhere) goes on to the router's own 405 or
    404, which reads no body either. Routes without a body are checked by `require_api_key`.
    """

    def __init__(self, app: ASGIApp, settings: Settings, router: Router) -> None:
        self.app = app
        self.settings = settings
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        has_body = scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH")
        if has_body and self.settings.api_key is not None and scope["method"] in route_methods(self.router, scope):
            headers = Headers(scope=scope)
            refusal = api_key_refusal(self.settings, headers.get(API_KEY_HEADER), headers.get("authorization"))
            if refusal is not None:
                await send_error(send, refusal.status_code, refusal.detail, refusal.headers)
                return
        await self.app(scope, receive, send)


class UploadLimit:
    """A declared Content-Length over the limit is refused before the body is read; a body without one (chunked) is
    counted as it streams and cut off at the limit. Both answer 413 in JSON."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, message: str) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.message = message

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await send_error(send, 413, self.message)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise HTTPException(413, self.message)  # FastAPI re-raises it from body parsing; JSON handler
            return message

        await self.app(scope, counted, send)


class SecurityHeaders:
    """The security headers of every response, in one place.

    nosniff and no-referrer everywhere; a Content-Security-Policy: the page's for HTML (unless the route set its own,
    as the API docs pages do, with their inline script's hash) and a deny-all one for everything else; a result (any
    response offered as a download) is `Cache-Control: private`, since it is one person's picture.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "no-referrer"
                headers["X-Frame-Options"] = "DENY"
                if "content-security-policy" not in headers:
                    html = headers.get("content-type", "").startswith("text/html")
                    headers["Content-Security-Policy"] = PAGE_CSP if html else OTHER_CSP
                if "content-disposition" in headers:
                    headers["Cache-Control"] = "private"
            await send(message)

        await self.app(scope, receive, send_with_headers)


class HeadAndOptions:
    """HEAD and OPTIONS answer like the other methods, for every route.

    HEAD runs the GET route (its status and headers, no body); OPTIONS answers 204 with the path's methods in `Allow`;
    a 405 names them all, HEAD and OPTIONS included. FastAPI's routes know only the methods they were declared with.
    A CORS preflight never gets here: CORSMiddleware, outside this, answers it.
    """

    def __init__(self, app: ASGIApp, router: Router) -> None:
        self.app = app
        self.router = router

    def allowed(self, scope: Scope) -> set[str]:
        """The methods of this path, HEAD with GET and OPTIONS with any (none for a path no route has)."""
        methods = route_methods(self.router, scope)
        if "GET" in methods:
            methods.add("HEAD")
        return methods | {"OPTIONS"} if methods else methods

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if method == "OPTIONS" and (methods := self.allowed(scope)):
            allow = ", ".join(sorted(methods))
            await send({"type": "http.response.start", "status": 204, "headers": [(b"allow", allow.encode())]})
            await send({"type": "http.response.body", "body": b""})
            return

        async def answer(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                MutableHeaders(scope=message)["Allow"] = ", ".join(sorted(self.allowed(scope)))
            if message["type"] == "http.response.body" and method == "HEAD":
                message = {**message, "body": b""}
            await send(message)

        inner = {**scope, "method": "GET"} if method == "HEAD" else scope
        await self.app(inner, receive, answer)
