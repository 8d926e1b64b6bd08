"""What the HTTP layer talks to: a scoring backend (requests in, scores out), local or remote.

Every route ends in :func:`rankserve.server.scoring.score`, which hands a list of
:class:`ScoreRequest` values to a :class:`ScoringBackend` and gets one list of
:class:`DocScore` values back per request. Two backends exist:

- :class:`LocalBackend`: the engine and its batcher in this process (``rankserve serve``);
- the Ray Serve backend (:mod:`rankserve.scaleout`): the same engine and batcher in each of
  N replica processes, on any host of a Ray cluster.

The contract is value-typed (requests, scores and errors all pickle), so it crosses a process
boundary unchanged; the HTTP layer, its schemas and its error mapping are one code path.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from rankserve.batcher import Batcher, Ticket
from rankserve.engine.types import DocScore, ScoreRequest
from rankserve.errors import RequestTooLargeError

if TYPE_CHECKING:
    from rankserve.engine import Reranker


@dataclass
class RequestStats:
    """Per-request figures for the access log, filled in by the backend."""

    tokens: int = 0
    queue_ms: float | None = None
    compute_ms: float | None = None


@dataclass(frozen=True)
class BackendHealth:
    """``status``: loading | ready | failed; ``ready``/``total`` count serving replicas (1/1 locally)."""

    status: str
    ready: int = 0
    total: int = 1
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def crash_message(error: BaseException) -> str:
    """How ``/health`` and the 503 answers describe a batcher whose worker died."""
    return f"the scoring worker crashed ({type(error).__name__}: {error})"


class ScoringBackend(Protocol):
    """One interface for in-process and replicated scoring."""

    async def start(self) -> None: ...

    async def close(self, drain: bool = True, timeout: float | None = None) -> None: ...

    def health(self) -> BackendHealth: ...

    async def score(
        self, requests: Sequence[ScoreRequest], timeout: float | None, stats: RequestStats, max_tokens: int = 0
    ) -> list[list[DocScore]]:
        """Scores per request; raises the engine's/batcher's errors (InvalidInputError, QueueFullError...).

        ``max_tokens`` (> 0): refuse with :class:`RequestTooLargeError` when the requests tokenize to more.
        """
        ...

    def render_metrics(self, own: bytes) -> bytes:
        """The ``/metrics`` text: the front end's own series (``own``) plus the backend's."""
        ...

    def describe_scores(self) -> dict[str, Any] | None:
        """What the served scores mean (see ``Reranker.describe_scores``); None while unknown."""
        ...


class LocalBackend:
    """The engine and its :class:`Batcher` in this process."""

    def __init__(self, reranker: Reranker, batcher: Batcher) -> None:
        self.reranker = reranker
        self.batcher = batcher

    async def start(self) -> None:
        await self.batcher.start()

    async def close(self, drain: bool = True, timeout: float | None = None) -> None:
        await self.batcher.close(drain=drain, timeout=timeout)

    def health(self) -> BackendHealth:
        if self.batcher.crashed is not None:
            return BackendHealth("failed", 0, 1, crash_message(self.batcher.crashed))
        return BackendHealth("ready", 1, 1)

    def render_metrics(self, own: bytes) -> bytes:
        return own  # the batcher updates the app's own registry

    def describe_scores(self) -> dict[str, Any] | None:
        describe = getattr(self.reranker, "describe_scores", None)  # engines other than Reranker may not say
        return describe() if describe else None

    async def score(
        self, requests: Sequence[ScoreRequest], timeout: float | None, stats: RequestStats, max_tokens: int = 0
    ) -> list[list[DocScore]]:
        """Prepare each request, queue it with what is left of ``timeout``, await every answer.

        Cancelling this coroutine (client gone, HTTP timeout) drops the requests' queued pairs.
        """
        started = time.perf_counter()
        tickets: list[Ticket] = []
        try:
            prepared = [await self.batcher.prepare(r) for r in requests]
            stats.tokens = sum(p.num_tokens for p in prepared)
            if 0 < max_tokens < stats.tokens:  # before anything is queued: no model time spent
                raise RequestTooLargeError(
                    f"request is {stats.tokens} tokens, over the limit of {max_tokens}", stats.tokens, max_tokens
                )
            for p in prepared:  # the deadline is what tokenizing left of the timeout
                left = None if timeout is None else max(0.0, timeout - (time.perf_counter() - started))
                tickets.append(self.batcher.submit(p, left))
            return [await t.future for t in tickets]
        finally:
            for ticket in tickets:
                self.batcher.cancel(ticket)
            if tickets:
                stats.queue_ms = max(t.queue_ms for t in tickets)
                stats.compute_ms = max(t.compute_ms for t in tickets)
