"""Request bodies at the edge: a bound on their size, and a Content-Length on each.

Go's HTTP client sends a body read from a file (`wendy ... create --spec @p.json`)
chunked, without Content-Length, and Connexion's body validation takes such a request
for one without a body. So a chunked body is read here, within the bound, and passed on
with its length. A body over the bound is refused with 413 before it is read.
"""

from __future__ import annotations

import json

from api_server.asgi import App, Message, Receive, Scope, Send, send_json


class BodyLimit:
    def __init__(self, app: App, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.lower(): v for k, v in scope["headers"]}
        length = headers.get(b"content-length")
        if length is not None:
            if length.isdigit() and int(length) > self.max_bytes:
                return await self._too_large(send)
            return await self.app(scope, receive, send)
        if b"chunked" not in headers.get(b"transfer-encoding", b"").lower():
            return await self.app(scope, receive, send)
        body = await self._read(receive)
        if body is None:
            return await self._too_large(send)
        scope = dict(scope)
        scope["headers"] = [
            (k, v)
            for k, v in scope["headers"]
            if k.lower() not in (b"transfer-encoding", b"content-length")
        ] + [(b"content-length", str(len(body)).encode())]
        await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive: Receive) -> bytes | None:
        """The whole body, or None once it passes the bound."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client left; what came is passed on and goes nowhere
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        return b"".join(chunks)

    async def _too_large(self, send: Send) -> None:
        body = json.dumps(
            {
                "message": f"Request body is larger than {self.max_bytes} bytes "
                "(BOB_API_MAX_BODY_BYTES)"
            }
        ).encode()
        # The rest of the body is not read: the connection cannot be reused.
        await send_json(send, 413, body, [(b"connection", b"close")])


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: the disconnect, when it comes

    return replay
