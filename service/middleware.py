"""Refusals on the wire, before an upload's body is read: the upload limit (413) and a missing API key (401).

FastAPI parses a request's body before it runs the route's dependencies, so these checks live here, where a refused
client costs the server its headers only.
"""

import json

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from esrgan.service.deps import API_KEY_HEADER, api_key_refusal
from esrgan.service.settings import Settings


async def send_error(send: Send, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    """A JSON error like FastAPI's, closing the connection (the unread body is not worth draining)."""
    body = json.dumps({"detail": message}).encode()
    fields = {**(headers or {}), "content-type": "application/json", "content-length": str(len(body))}
    raw = [(k.lower().encode(), v.encode()) for k, v in fields.items()] + [(b"connection", b"close")]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class ApiKeyGate:
    """With an API key configured, refuse a request that carries a body without the key, before reading the body.
    Every route that takes a body needs the key; routes without one are still checked by `require_api_key`."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        has_body = scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH")
        if has_body and self.settings.api_key is not None:
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
