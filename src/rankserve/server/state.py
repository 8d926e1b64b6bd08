"""Per-app runtime state: settings, presets, metrics, and the model once it has loaded.

The model loads in the background (so ``/health`` can answer "loading" to Kubernetes probes
instead of the port staying closed); every scoring route asks :meth:`AppState.require_backend`,
which answers 503 until the model is ready. The backend is the local engine + batcher, or
one given to ``create_app`` (Ray Serve replicas, see :mod:`rankserve.scaleout`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from rankserve.batcher import Batcher
from rankserve.server.backend import BackendHealth, LocalBackend, ScoringBackend, crash_message
from rankserve.server.errors import APIError
from rankserve.server.metrics import Metrics
from rankserve.server.settings import ServerSettings

if TYPE_CHECKING:
    from rankserve.engine import Reranker

log = logging.getLogger("rankserve.server")


class AppState:
    """What the routes of one app share."""

    def __init__(self, settings: ServerSettings, presets: dict[str, str]) -> None:
        self.settings = settings
        self.presets = presets
        self.metrics = Metrics()
        self.created = int(time.time())
        self.status = "loading"  # loading | ready | failed (model did not load, or the worker crashed)
        self.load_error: str | None = None  # why "failed"; /health shows it
        self.reranker: Reranker | None = None
        self.batcher: Batcher | None = None
        self.backend: ScoringBackend | None = None
        self._external = False  # a backend given from outside: its health is the app's
        self._load_task: asyncio.Task[None] | None = None

    @property
    def model_name(self) -> str:
        return self.settings.model_name

    def health(self) -> BackendHealth:
        """The backend's health, or the loading state before there is one."""
        if self._external and self.backend is not None:
            return self.backend.health()
        return BackendHealth(self.status, int(self.status == "ready"), 1, self.load_error)

    def require_backend(self) -> ScoringBackend:
        """The scoring backend, or a 503 the client can retry while the model loads."""
        if self._external and self.backend is not None:
            health = self.backend.health()
            if health.status != "ready":
                raise APIError(
                    503,
                    f"no replica is ready ({health.error or health.status}); retry shortly",
                    "service_unavailable",
                    {"Retry-After": "5"},
                )
            return self.backend
        if self.status == "failed":
            if self.batcher is None:
                raise APIError(503, f"model failed to load: {self.load_error}", "model_load_failed")
            raise APIError(503, f"server is unhealthy: {self.load_error}; it needs a restart", "server_unhealthy")
        if self.backend is None:
            raise APIError(503, "model is still loading; retry shortly", "model_loading", {"Retry-After": "5"})
        return self.backend

    def render_metrics(self) -> bytes:
        own = self.metrics.render()
        return self.backend.render_metrics(own) if self.backend is not None else own

    def check_model(self, requested: str | None) -> None:
        """A request may name the model; a name we do not serve is a 404, as in vLLM/OpenAI."""
        if requested is None or requested in (self.settings.model_name, self.settings.model):
            return
        raise APIError(
            404,
            f"model {requested!r} not found; this server serves {self.model_name!r}",
            "model_not_found",
        )

    # -- lifecycle -------------------------------------------------------------------------
    async def attach_backend(self, backend: ScoringBackend) -> None:
        """Serve through a backend built elsewhere (its replicas load their own models)."""
        self.backend, self._external = backend, True
        await backend.start()
        self.status = "ready"
        self.metrics.model_loaded.set(1)

    async def attach(self, reranker: Reranker) -> None:
        """Make a loaded engine servable: start a batcher around it."""
        s = self.settings
        max_batch_tokens = s.max_batch_tokens or int(getattr(reranker, "max_batch_tokens", 0) or 16384)
        batcher = Batcher(
            reranker,
            max_batch_tokens=max_batch_tokens,
            max_queued_tokens=s.max_queued_tokens,
            metrics=self.metrics,
            on_crash=self._batcher_crashed,
        )
        backend = LocalBackend(reranker, batcher)
        await backend.start()
        self.reranker, self.batcher, self.backend, self.status = reranker, batcher, backend, "ready"
        self.metrics.model_loaded.set(1)
        log.info(
            "Model ready: %s (%s) on %s, dtype %s, max length %s, max batch tokens %d",
            self.model_name,
            getattr(reranker, "kind", "?"),
            getattr(reranker, "device", "?"),
            _dtype_name(getattr(reranker, "dtype", "?")),
            getattr(reranker, "max_length", "?"),
            max_batch_tokens,
        )

    def _batcher_crashed(self, exc: BaseException) -> None:
        """The batcher's worker died (it logged why): report unhealthy so probes restart us."""
        self.status, self.load_error = "failed", crash_message(exc)
        self.metrics.model_loaded.set(0)

    def start_loading(self, on_error: Callable[[BaseException], None] | None) -> None:
        """Load the model on a thread without blocking startup."""
        self._load_task = asyncio.create_task(self._load(on_error), name="rankserve-load-model")

    async def _load(self, on_error: Callable[[BaseException], None] | None) -> None:
        s = self.settings
        started = time.perf_counter()
        try:
            from rankserve.engine import Reranker

            reranker = await asyncio.to_thread(Reranker.from_pretrained, s.model, **s.engine_kwargs())
            log.info("Model loaded in %.1f s", time.perf_counter() - started)
            log.info("CUDA graphs: %s", reranker.graphs_status())
            await self.attach(reranker)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.status, self.load_error = "failed", f"{type(exc).__name__}: {exc}"
            log.error("Could not load model %s: %s", s.model, exc)
            if on_error is not None:
                on_error(exc)

    async def close(self) -> None:
        """Called once HTTP has drained: let what is still queued finish, then stop."""
        if self._load_task is not None and not self._load_task.done():
            self._load_task.cancel()
        if self.backend is not None:
            await self.backend.close(drain=True, timeout=self.settings.deadline)


def _dtype_name(dtype: object) -> str:
    return str(dtype).removeprefix("torch.")
