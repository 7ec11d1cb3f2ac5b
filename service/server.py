"""The HTTP protocol `esrgan serve` runs: uvicorn's h11 protocol with a deadline for each request's head.

uvicorn closes a keep-alive connection that stays idle after a response, but not one that sends half a request head
(or nothing) and waits: such clients could hold every connection the server has. Here a connection has
`head_timeout` seconds to send a complete head (request line and headers), counted from when it opens and again after
each response; one that misses it is answered 408 and closed. A request whose head arrived is never cut by this: its
body, and the work, have their own limits (the upload limit, the job timeout).
"""

import asyncio
import functools
import json
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

_BODY = json.dumps({"detail": "The request's head did not arrive in time; the connection is closed."}).encode()
REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
    + f"content-length: {len(_BODY)}\r\nconnection: close\r\n\r\n".encode()
    + _BODY
)


class HeadTimeoutProtocol(H11Protocol):
    """H11Protocol whose connections must deliver each request head within `head_timeout` seconds."""

    def __init__(self, *args: Any, head_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_timeout = head_timeout
        self.head_deadline: asyncio.TimerHandle | None = None
        self.awaited_after: object = None  # the request cycle that was current when the wait for a head began

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.cycle is not self.awaited_after:  # a complete head arrived: its request has started
            self._cancel_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def _await_head(self) -> None:
        self._cancel_deadline()
        self.awaited_after = self.cycle
        self.head_deadline = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _cancel_deadline(self) -> None:
        if self.head_deadline is not None:
            self.head_deadline.cancel()
            self.head_deadline = None

    def _head_timed_out(self) -> None:
        self.head_deadline = None
        serving = self.cycle is not None and not self.cycle.response_complete  # e.g. a pipelined request
        if self.transport.is_closing() or serving or self.cycle is not self.awaited_after:
            return
        self.transport.write(REQUEST_TIMEOUT)
        self.transport.close()


def head_timeout_protocol(seconds: float) -> Any:
    """The protocol class for `uvicorn.run(http=...)`, with this deadline for request heads."""
    return functools.partial(HeadTimeoutProtocol, head_timeout=seconds)
