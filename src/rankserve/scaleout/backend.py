"""The HTTP layer's backend when scoring runs in Ray Serve replicas.

Requests go through a Ray Serve deployment handle, so Ray Serve's own router picks the replica
(power of two choices on queue length). The request's remaining time travels with it (the
replica's admission refuses what cannot finish in time). A replica that dies with the request
on it (``RayActorError``), or no replica reachable, means one retry on another replica while
the deadline allows it, else a 503 + Retry-After: never a hang, never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from rankserve.engine.types import DocScore, ScoreRequest
from rankserve.errors import RankServeError, UnavailableError
from rankserve.server.backend import BackendHealth, RequestStats

log = logging.getLogger("rankserve.scaleout")

POLL_S = 1.0
RETRIES = 2
RETRY_AFTER_S = 5


class RayBackend:
    """Talks to the scoring deployment ``deployment`` of Serve application ``app_name``."""

    def __init__(self, handle: Any, app_name: str, deployment: str, min_total: int) -> None:
        self.handle = handle.options(stream=False)
        self.app_name = app_name
        self.deployment = deployment
        self.min_total = min_total
        self._health = BackendHealth("loading", 0, min_total, "replicas are starting")
        self._reports: dict[str, dict[str, Any]] = {}
        self._poller: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._poller = asyncio.create_task(self._poll())

    async def close(self, drain: bool = True, timeout: float | None = None) -> None:
        if self._poller is not None:
            self._poller.cancel()

    def health(self) -> BackendHealth:
        return self._health

    def render_metrics(self, own: bytes) -> bytes:
        from rankserve.scaleout.metrics import merge

        texts = {k: v["text"] for k, v in self._reports.items()}
        return merge(own, texts, self._health.ready, self._health.total)

    async def score(
        self, requests: Sequence[ScoreRequest], timeout: float | None, stats: RequestStats, max_tokens: int = 0
    ) -> list[list[DocScore]]:
        from ray.exceptions import RayActorError, RayTaskError
        from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError, ReplicaUnavailableError

        started = time.monotonic()
        attempt = 0
        while True:
            left = None if timeout is None else max(0.0, timeout - (time.monotonic() - started))
            response = self.handle.score.remote(list(requests), left, max_tokens)
            try:
                results, figures = await response
            except asyncio.CancelledError:
                response.cancel()  # the replica drops the request's queued pairs
                raise
            except RayTaskError as exc:  # raised in the replica: our own errors pass through as they are
                cause = getattr(exc, "cause", None)
                if isinstance(cause, (RankServeError, ValueError)):
                    raise cause from None
                raise
            except (RayActorError, ReplicaUnavailableError, DeploymentUnavailableError, BackPressureError) as exc:
                attempt += 1
                left = None if timeout is None else timeout - (time.monotonic() - started)
                log.warning("replica unavailable (%s: %s); attempt %d", type(exc).__name__, exc, attempt)
                if attempt <= RETRIES and (left is None or left > 1.0):
                    continue  # Ray Serve routes the retry to a live replica
                raise UnavailableError(
                    f"the scoring replica became unavailable ({type(exc).__name__}); retry shortly", RETRY_AFTER_S
                ) from None
            stats.tokens = figures["tokens"]
            stats.queue_ms, stats.compute_ms = figures["queue_ms"], figures["compute_ms"]
            return results

    async def _poll(self) -> None:
        """Every second: replica states from the Serve controller, metrics from the hub."""
        from rankserve.scaleout.hub import get_hub

        hub = None
        while True:
            try:
                self._health = await asyncio.to_thread(self._read_health)
                hub = hub or get_hub(self.app_name)
                self._reports = await hub.snapshot.remote()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("could not read replica status: %s", exc)
                hub = None
            await asyncio.sleep(POLL_S)

    def _read_health(self) -> BackendHealth:
        from ray import serve

        app = serve.status().applications.get(self.app_name)
        states: dict[str, int] = {}
        if app is not None and self.deployment in app.deployments:
            states = {
                str(getattr(k, "value", k)): v for k, v in app.deployments[self.deployment].replica_states.items()
            }
        ready = states.get("RUNNING", 0)
        live = sum(v for k, v in states.items() if k in ("RUNNING", "STARTING", "UPDATING", "RECOVERING"))
        total = max(live, self.min_total)
        details = {"replicas": {"ready": ready, "total": total, "states": states}}
        if ready > 0:
            return BackendHealth("ready", ready, total, None, details)
        return BackendHealth("loading", 0, total, "no scoring replica is ready yet", details)
