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
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request, Response
from fastapi.responses import RedirectResponse

from rankserve.server.docs import DOCS_STATIC, install_docs
from rankserve.server.errors import install_error_handlers
from rankserve.server.middleware import (
    AuthMiddleware,
    BodyLimitMiddleware,
    ReceiveTimeoutMiddleware,
    RequestContextMiddleware,
)
from rankserve.server.openapi import build_openapi
from rankserve.server.presets import load_presets
from rankserve.server.routes import info, rerank, score, tei
from rankserve.server.scoring import ClientDisconnected
from rankserve.server.settings import ServerSettings
from rankserve.server.state import AppState

if TYPE_CHECKING:
    from rankserve.engine import Reranker
    from rankserve.server.backend import ScoringBackend

log = logging.getLogger("rankserve.server")

DESCRIPTION = """Self-hosted reranking for Qwen3-Reranker and cross-encoders.

Formats: simple (`/rerank` with `texts`), Jina / Cohere v1 / vLLM (`/rerank` with `documents`,
`/v1/rerank`), Cohere v2 (`/v2/rerank`), vLLM score (`/score`, `/v1/score`),
Text Embeddings Inference (`/tei/rerank`, `/info`).
When the server has an API key, send `Authorization: Bearer <key>` (in this page: "Authorize").
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

    app = FastAPI(
        title="RankServe",
        description=DESCRIPTION,
        version=_version(),
        lifespan=lifespan,
        docs_url=None,  # served by rankserve.server.docs from local files (no CDN)
        redoc_url=None,
    )
    app.state.rankserve = state
    app.state.auth_exempt_prefixes = []
    install_error_handlers(app)

    async def _disconnected(request: Request, exc: Exception) -> Response:
        return Response(status_code=499)  # nginx's "client closed request"; nobody reads it

    app.add_exception_handler(ClientDisconnected, _disconnected)
    for module in (rerank, score, info, tei):
        app.include_router(module.router)
    install_docs(app)

    known_paths: set[str] = set()
    # Starlette wraps later-added middleware around earlier ones: context -> auth -> body time -> body size.
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_request_bytes)
    app.add_middleware(ReceiveTimeoutMiddleware, timeout=settings.body_timeout)
    if settings.api_key:
        # The API's description is public so Swagger can load and ask for the key ("Authorize"):
        # it reveals no data and spends no compute.
        public = ["/health", "/", "/openapi.json", "/docs", "/docs/oauth2-redirect"]
        public += ["/metrics"] if settings.metrics_public else []
        app.state.auth_exempt_prefixes.append(DOCS_STATIC + "/")
        app.add_middleware(
            AuthMiddleware,
            api_key=settings.api_key,
            exempt=public,
            exempt_prefixes=app.state.auth_exempt_prefixes,
        )
    app.add_middleware(RequestContextMiddleware, state=state, known_paths=known_paths)
    limits = {
        "model_names": sorted({settings.model_name, settings.model}),
        "presets": sorted(state.presets),
        "max_documents": settings.max_documents,
    }
    app.openapi = lambda: build_openapi(app, limits, auth=bool(settings.api_key))  # type: ignore[method-assign]
    if mount_ui:
        _mount_ui(app, settings)
    ui_mounted = any(getattr(r, "path", None) == "/ui" for r in app.routes)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/ui" if ui_mounted else "/docs")

    known_paths.update(getattr(r, "path", "") for r in app.routes)
    return app


def _mount_ui(app: FastAPI, settings: ServerSettings) -> None:
    """Mount the web UI when the optional ``rankserve.ui`` module provides ``mount``.

    Without Gradio (installed by the ``ui`` extra) ``/ui`` answers one line saying so.
    """
    from rankserve.extras import available

    if not available("gradio"):
        from rankserve.server.routes import ui_missing

        app.include_router(ui_missing.router)
        app.state.auth_exempt_prefixes.append("/ui")  # the message is public, like the page would be
        log.warning("web UI disabled: %s", ui_missing.MESSAGE)
        return
    try:
        ui = importlib.import_module("rankserve.ui")
    except ModuleNotFoundError as exc:
        if exc.name == "rankserve.ui":
            return  # the UI is optional
        raise
    mount = getattr(ui, "mount", None)
    if mount is not None:
        mount(app, settings=settings)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("rankserve")
    except Exception:
        return "0.0.0"
