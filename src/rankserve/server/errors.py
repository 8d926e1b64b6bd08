"""HTTP errors: one JSON shape, ``{"error": {"message", "type", "code"}}``, for every failure.

Handlers raise :class:`APIError` (or let engine errors through); the exception handlers
registered by :func:`install_error_handlers` turn them, and FastAPI's own validation errors,
into that shape so clients parse one format. Unexpected crashes get the same shape from
``RequestContextMiddleware`` (so they carry ``X-Request-Id``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rankserve.errors import EngineError, InvalidInputError

log = logging.getLogger("rankserve.server")

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "method_not_allowed",
    408: "timeout_error",
    413: "request_too_large",
    422: "invalid_request_error",
    500: "internal_error",
    503: "service_unavailable",
    504: "timeout_error",
}


class APIError(Exception):
    """An error with an HTTP status, sent to the client as the JSON error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_ or _TYPES.get(status, "error")
        self.headers = dict(headers or {})


class BodyTooLargeError(StarletteHTTPException):
    """Raised while the body streams in; an HTTPException so FastAPI's body parser re-raises it."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than the limit of {limit} bytes (--max-request-bytes)")


class BodyTimeoutError(StarletteHTTPException):
    """The body did not arrive in time (a stalled or very slow client); the connection is closed."""

    def __init__(self, timeout: float) -> None:
        super().__init__(
            408, f"request body not received within {timeout:g} s (--body-timeout)", headers={"Connection": "close"}
        )


def error_body(status: int, message: str, type_: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_ or _TYPES.get(status, "error"), "code": status}}


def error_response(
    status: int, message: str, type_: str | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(status, message, type_), status_code=status, headers=dict(headers or {}))


def _loc(loc: tuple[Any, ...] | list[Any]) -> str:
    """``("body", "texts", 1)`` -> ``texts[1]``: the field as the client wrote it."""
    parts = [p for p in loc if p != "body"] if len(loc) > 1 else list(loc)
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "body"


def validation_message(errors: list[dict[str, Any]]) -> tuple[int, str]:
    """Status and a one-line message naming every offending field."""
    if any(e.get("type") == "json_invalid" for e in errors):
        detail = next(e for e in errors if e.get("type") == "json_invalid")
        reason = (detail.get("ctx") or {}).get("error", "invalid JSON")
        return 400, f"malformed JSON body: {reason}"
    parts = []
    for err in errors[:5]:
        parts.append(f"{_loc(err.get('loc', ()))}: {err.get('msg', 'invalid value')}")
    if len(errors) > 5:
        parts.append(f"... and {len(errors) - 5} more")
    return 422, "invalid request: " + "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    """Map every exception class we expect to the JSON error shape."""

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.type, exc.headers)

    @app.exception_handler(InvalidInputError)
    async def _invalid_input(request: Request, exc: InvalidInputError) -> JSONResponse:
        return error_response(400, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        status, message = validation_message(list(exc.errors()))
        return error_response(status, message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no route {request.method} {request.url.path}"
        return error_response(exc.status_code, message, headers=exc.headers)

    @app.exception_handler(EngineError)
    async def _engine(request: Request, exc: EngineError) -> JSONResponse:
        log.error("engine error (request %s): %s", _request_id(request), exc)
        return error_response(500, f"scoring failed: {exc}")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Last resort only: RequestContextMiddleware answers (and logs) unexpected errors from the
        # routes. Anything reaching here failed outside it; Starlette re-raises it afterwards and
        # the server logs the traceback, so it is not logged here as well.
        return error_response(500, f"internal server error ({type(exc).__name__}); see the server log")


def _request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", "-"))
