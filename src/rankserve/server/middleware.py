"""Pure-ASGI middleware: request id + log line + metrics, API-key auth, the body size and time limits.

Pure ASGI rather than ``BaseHTTPMiddleware`` so that the client-disconnect signal
(``http.disconnect``) reaches the handlers unchanged, and so a 413 can be sent before a large
body is read at all.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rankserve.server.errors import BodyTimeoutError, BodyTooLargeError, error_response

access_log = logging.getLogger("rankserve.access")
log = logging.getLogger("rankserve.server")

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class RequestContextMiddleware:
    """Gives each request an id (``X-Request-Id``, the caller's if sane), logs one line, counts it.

    It is the outermost of our middleware, so it also turns an exception nothing else handled
    into the JSON 500 (with the id) instead of letting it reach Starlette's error middleware,
    which would answer without the id and have the traceback logged twice.
    """

    def __init__(self, app: ASGIApp, state: Any, known_paths: set[str]) -> None:
        self.app = app
        self.state = state
        self.known_paths = known_paths  # filled once routes exist; labels requests refused before routing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _SAFE_ID.match(incoming) else uuid.uuid4().hex
        ctx = scope.setdefault("state", {})
        ctx["request_id"] = request_id
        status = 500
        started_response = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                status, started_response = message["status"], True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            # A bug, not a planned error: answer the JSON 500 here, inside the request's context,
            # so it carries X-Request-Id and is logged exactly once, with the id.
            status = 500
            log.error("request %s: unexpected error: %s: %s", request_id, type(exc).__name__, exc, exc_info=exc)
            if not started_response:
                message = f"internal server error ({type(exc).__name__}); see the server log"
                await error_response(500, message)(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_label(scope, self.known_paths)
            metrics = self.state.metrics
            metrics.requests.labels(route=route, status=str(status)).inc()
            metrics.latency.labels(route=route).observe(elapsed)
            access_log.info(
                "request id=%s method=%s route=%s status=%d docs=%d tokens=%d queue_ms=%.1f compute_ms=%.1f "
                "total_ms=%.1f%s",
                request_id,
                scope.get("method", "-"),
                route,
                status,
                ctx.get("docs", 0),
                ctx.get("tokens", 0),
                ctx.get("queue_ms", 0.0),
                ctx.get("compute_ms", 0.0),
                elapsed * 1000.0,
                " (client disconnected)" if status == 499 else "",
            )


class AuthMiddleware:
    """Bearer-token check on every route except ``/health`` (and ``/metrics`` when public).

    Extra public prefixes can be appended to ``app.state.auth_exempt_prefixes`` (the UI,
    which asks for the key itself, uses this).
    """

    def __init__(self, app: ASGIApp, api_key: str, exempt: list[str], exempt_prefixes: list[str]) -> None:
        self.app = app
        self.key = api_key.encode()
        self.exempt = set(exempt)
        self.exempt_prefixes = exempt_prefixes  # shared list: may grow after startup

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._public(scope["path"]) or scope.get("method") == "OPTIONS":
            await self.app(scope, receive, send)
            return
        header = _header(scope, b"authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.key):
            await self.app(scope, receive, send)
            return
        message = "invalid API key" if header else "missing API key: send 'Authorization: Bearer <key>'"
        response = error_response(401, message, headers={"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)

    def _public(self, path: str) -> bool:
        return path in self.exempt or any(path.startswith(p) for p in self.exempt_prefixes)


class BodyLimitMiddleware:
    """413 for bodies over ``limit`` bytes: at once from Content-Length, or while streaming."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        if length and length.isdigit() and int(length) > self.limit:
            response = error_response(
                413,
                f"request body is {int(length)} bytes, over the limit of {self.limit} (--max-request-bytes)",
                headers={"Connection": "close"},
            )
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLargeError(self.limit)
            return message

        await self.app(scope, limited_receive, send)


class ReceiveTimeoutMiddleware:
    """408 (and the connection closed) when a request's body has not fully arrived ``timeout`` s after it began.

    A client that sends headers and part of a body, then stalls, would otherwise hold a
    connection and a task until the request timeout or forever; once the body is complete the
    receive channel is passed through untouched (handlers wait on it for disconnects).
    """

    def __init__(self, app: ASGIApp, timeout: float) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.timeout <= 0:
            await self.app(scope, receive, send)
            return
        deadline = time.monotonic() + self.timeout
        complete = False

        async def timed_receive() -> Message:
            nonlocal complete
            if complete:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise BodyTimeoutError(self.timeout) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                complete = True
            return message

        await self.app(scope, timed_receive, send)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def _route_label(scope: Scope, known_paths: set[str]) -> str:
    """The matched route's path template; never an unknown raw URL (keeps metric cardinality bounded)."""
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str):
        return path
    return scope["path"] if scope.get("path") in known_paths else "other"
