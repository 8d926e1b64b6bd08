"""The FastAPI application factory.

``create_app`` wires settings, presets, metrics, routes, middleware and the model's lifecycle
into one app. Everything per-app lives on ``app.state.rankserve`` (no module globals), so
several apps can coexist in one process.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi

from rankserve.server.errors import install_error_handlers
from rankserve.server.middleware import AuthMiddleware, BodyLimitMiddleware, RequestContextMiddleware
from rankserve.server.presets import load_presets
from rankserve.server.routes import info, rerank, score
from rankserve.server.schemas.cohere import RerankRequest, RerankResponse
from rankserve.server.schemas.simple import SimpleRerankRequest, SimpleRerankResponse
from rankserve.server.scoring import ClientDisconnected
from rankserve.server.settings import ServerSettings
from rankserve.server.state import AppState

if TYPE_CHECKING:
    from rankserve.engine import Reranker
    from rankserve.server.backend import ScoringBackend

log = logging.getLogger("rankserve.server")

DESCRIPTION = """Self-hosted reranking for Qwen3-Reranker and cross-encoders.

Formats: simple (`/rerank` with `texts`), Jina / Cohere v1 / vLLM (`/rerank` with `documents`,
`/v1/rerank`), Cohere v2 (`/v2/rerank`), vLLM score (`/score`, `/v1/score`).
When the server has an API key, send `Authorization: Bearer <key>`.
"""


def create_app(
    settings: ServerSettings | None = None,
    *,
    reranker: Reranker | None = None,
    backend: ScoringBackend | None = None,
    mount_ui: bool = True,
    on_load_error: Callable[[BaseException], None] | None = None,
) -> FastAPI:
    """Build the app.

    ``reranker``: an already loaded engine (served at once); otherwise ``settings.model``
    loads in the background at startup and ``/health`` answers 503 "loading" meanwhile.
    ``on_load_error`` is called if that load fails (the CLI uses it to exit non-zero).
    ``backend``: score through this backend instead (Ray Serve replicas, see
    :mod:`rankserve.scaleout`); the routes, schemas and errors are the same.
    ``mount_ui``: when ``rankserve.ui`` exists, call ``rankserve.ui.mount(app, settings=settings)``;
    a UI that handles the API key itself may append its path prefix to
    ``app.state.auth_exempt_prefixes``.
    """
    settings = settings or ServerSettings()
    state = AppState(settings, load_presets(settings.presets_file))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if backend is not None:
            await state.attach_backend(backend)
        elif reranker is not None:
            await state.attach(reranker)
        else:
            state.start_loading(on_load_error)
        try:
            yield
        finally:
            await state.close()

    app = FastAPI(title="RankServe", description=DESCRIPTION, version=_version(), lifespan=lifespan)
    app.state.rankserve = state
    app.state.auth_exempt_prefixes = []
    install_error_handlers(app)

    async def _disconnected(request: Request, exc: Exception) -> Response:
        return Response(status_code=499)  # nginx's "client closed request"; nobody reads it

    app.add_exception_handler(ClientDisconnected, _disconnected)
    for module in (rerank, score, info):
        app.include_router(module.router)

    known_paths: set[str] = set()
    # Starlette wraps later-added middleware around earlier ones: context -> auth -> body limit.
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_request_bytes)
    if settings.api_key:
        public = ["/health"] + (["/metrics"] if settings.metrics_public else [])
        app.add_middleware(
            AuthMiddleware,
            api_key=settings.api_key,
            exempt=public,
            exempt_prefixes=app.state.auth_exempt_prefixes,
        )
    app.add_middleware(RequestContextMiddleware, state=state, known_paths=known_paths)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    if mount_ui:
        _mount_ui(app, settings)
    known_paths.update(getattr(r, "path", "") for r in app.routes)
    return app


def _mount_ui(app: FastAPI, settings: ServerSettings) -> None:
    """Mount the web UI when the optional ``rankserve.ui`` module provides ``mount``."""
    try:
        ui = importlib.import_module("rankserve.ui")
    except ModuleNotFoundError as exc:
        if exc.name == "rankserve.ui":
            return  # the UI is optional
        raise
    mount = getattr(ui, "mount", None)
    if mount is not None:
        mount(app, settings=settings)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, plus the two body shapes ``POST /rerank`` accepts (it parses by hand)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    ref = "#/components/schemas/{model}"
    for model, mode in (
        (SimpleRerankRequest, "validation"),
        (SimpleRerankResponse, "serialization"),
        (RerankRequest, "validation"),
        (RerankResponse, "serialization"),
    ):
        body = model.model_json_schema(ref_template=ref, mode=mode)
        components.update(body.pop("$defs", {}))
        components.setdefault(model.__name__, body)
    op = schema.get("paths", {}).get("/rerank", {}).get("post")
    if op is not None:
        op.pop("x-rankserve-body", None)
        refs = [{"$ref": ref.format(model=m)} for m in ("SimpleRerankRequest", "RerankRequest")]
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": {"oneOf": refs}}}}
        out = [{"$ref": ref.format(model=m)} for m in ("SimpleRerankResponse", "RerankResponse")]
        op["responses"]["200"]["content"] = {"application/json": {"schema": {"oneOf": out}}}
    app.openapi_schema = schema
    return schema


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("rankserve")
    except Exception:
        return "0.0.0"
