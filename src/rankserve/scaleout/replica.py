"""The scoring replica: one engine and its batcher in a Ray Serve replica process.

Each replica loads the model on its own device (a GPU Ray assigned it through
``CUDA_VISIBLE_DEVICES``, or the CPU), tokenizes and batches the requests routed to it, and
answers with values (``DocScore`` lists and a few numbers for the access log). Errors are
RankServe's own, which pickle, so the ingress maps them to the same HTTP answers as a
single-process server. Ray Serve calls ``check_health`` (a dead batcher fails it and the replica
is replaced) and ``__del__`` on shutdown, where the batcher drains.
"""

from __future__ import annotations

import asyncio
import logging
import os

from rankserve.engine.types import DocScore, ScoreRequest
from rankserve.server.backend import LocalBackend, RequestStats
from rankserve.server.settings import ServerSettings

log = logging.getLogger("rankserve.scaleout")

PUSH_EVERY_S = 1.0


class ScoringReplica:
    """A Ray Serve deployment class (wrapped by :func:`rankserve.scaleout.deploy.build`)."""

    def __init__(self, settings: ServerSettings, app_name: str, use_gpu: bool) -> None:
        from ray import serve

        from rankserve.batcher import Batcher
        from rankserve.engine import Reranker
        from rankserve.server.metrics import Metrics

        self.settings = settings
        self.app_name = app_name
        self.replica_id = serve.get_replica_context().replica_id.unique_id
        device = "cuda" if use_gpu else None
        self.reranker = Reranker.from_pretrained(settings.model, **settings.engine_kwargs(device))
        self.metrics = Metrics()
        self.metrics.model_loaded.set(1)
        batcher = Batcher(
            self.reranker,
            max_batch_tokens=settings.max_batch_tokens or self.reranker.max_batch_tokens,
            max_queued_tokens=settings.max_queued_tokens,
            metrics=self.metrics,
        )
        self.backend = LocalBackend(self.reranker, batcher)
        self._started = False
        self._push_task: asyncio.Task[None] | None = None
        log.info("replica %s: %s on %s (pid %d)", self.replica_id, settings.model, self.reranker.device, os.getpid())

    async def _ensure_started(self) -> None:
        if not self._started:
            self._started = True
            await self.backend.start()
            self._push_task = asyncio.create_task(self._push_metrics())

    async def score(
        self, requests: list[ScoreRequest], timeout: float | None, max_tokens: int = 0
    ) -> tuple[list[list[DocScore]], dict]:
        """Score requests routed here; a cancel from the ingress drops their queued pairs."""
        await self._ensure_started()
        stats = RequestStats()
        results = await self.backend.score(requests, timeout, stats, max_tokens)
        return results, {"tokens": stats.tokens, "queue_ms": stats.queue_ms, "compute_ms": stats.compute_ms}

    async def check_health(self) -> None:
        """Ray Serve's health probe: a crashed batcher makes the replica unhealthy (it is replaced)."""
        await self._ensure_started()
        health = self.backend.health()
        if health.status != "ready":
            raise RuntimeError(health.error or health.status)

    async def _push_metrics(self) -> None:
        from rankserve.scaleout.hub import get_hub

        hub = get_hub(self.app_name)
        node = os.uname().nodename
        while True:
            try:
                report = {
                    "text": self.metrics.render(),
                    "pid": os.getpid(),
                    "node": node,
                    "scores": self.reranker.describe_scores(),
                }
                await hub.push.remote(self.replica_id, report)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the hub restarting: try again next time
                log.warning("replica %s: metrics push failed: %s", self.replica_id, exc)
                hub = get_hub(self.app_name)
            await asyncio.sleep(PUSH_EVERY_S)

    async def __del__(self) -> None:
        """Ray Serve's shutdown hook: finish what is queued, then stop."""
        if self._push_task is not None:
            self._push_task.cancel()
        if self._started:
            await self.backend.close(drain=True, timeout=self.settings.deadline)
