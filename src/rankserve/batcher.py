"""Dynamic batching across concurrent requests (TEI style), independent of HTTP.

Why a batcher: on a GPU, one batch of many short pairs costs about as much as one pair, so
pairs from every in-flight request are packed together. The flow:

1. ``prepare`` validates and tokenizes a request on a dedicated tokenizer thread (the event
   loop never runs CPU-heavy work, and one thread avoids concurrent use of a tokenizer).
2. ``submit`` enqueues the prepared request as a :class:`Ticket`, refusing it when queued work
   plus this request would exceed ``max_queued_tokens`` (the HTTP layer answers 503 +
   Retry-After). A request is always admitted into an empty queue, however large: the limit
   stops work piling up, it must not make one big request impossible.
3. One worker task forms batches of up to ``max_batch_tokens`` by taking pairs round-robin
   across the queued tickets (so a small request is not stuck behind every batch of a big one
   that arrived just before it), and runs ``reranker.score_pairs`` on a single model thread.
   A request's pairs in one batch share its prefix, which is counted once, as the engine does.
   A ticket's future resolves as soon as all of *its* pairs are scored, not when the queue
   drains.
4. A cancelled ticket (client gone, timeout) leaves the queue at once; its unscored pairs are
   never computed.
5. ``close`` fails every unanswered ticket, queued or in the running batch. If the worker
   task ever dies, the crash is logged, pending tickets fail, no more work is accepted, and
   ``on_crash`` tells the owner (the server then reports itself unhealthy).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from rankserve.engine.types import DocScore, Pair, PreparedRequest, ScoreRequest
from rankserve.errors import EngineError

log = logging.getLogger("rankserve.batcher")


class ScoringEngine(Protocol):
    """The part of :class:`rankserve.engine.Reranker` the batcher uses."""

    def prepare(self, request: ScoreRequest) -> PreparedRequest: ...

    def score_pairs(self, pairs: list[Pair]) -> Any: ...


class CounterLike(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class GaugeLike(Protocol):
    def set(self, value: float) -> None: ...


class HistogramLike(Protocol):
    def observe(self, amount: float) -> None: ...


class BatcherMetrics(Protocol):
    """The series the batcher updates (``rankserve.server.metrics.Metrics`` provides them).

    Declared here so the batcher does not depend on the HTTP server.
    """

    @property
    def rejected(self) -> CounterLike: ...
    @property
    def pairs_dropped(self) -> CounterLike: ...
    @property
    def pairs_scored(self) -> CounterLike: ...
    @property
    def tokens(self) -> CounterLike: ...
    @property
    def queue_depth(self) -> GaugeLike: ...
    @property
    def queue_tokens(self) -> GaugeLike: ...
    @property
    def batch_tokens(self) -> HistogramLike: ...
    @property
    def batch_pairs(self) -> HistogramLike: ...
    @property
    def batch_seconds(self) -> HistogramLike: ...


class QueueFullError(Exception):
    """The queue holds too many tokens; the caller should retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NonFiniteScoreError(EngineError):
    """The model produced NaN or an infinite score; it must never reach a client."""


class BatcherClosedError(RuntimeError):
    """The batcher was shut down before the request was scored."""


@dataclass(eq=False)
class Ticket:
    """One queued request: its pairs, how far scheduling got, and timings for the request log."""

    prepared: PreparedRequest
    future: asyncio.Future[list[DocScore]]
    enqueued_at: float = field(default_factory=time.perf_counter)
    cursor: int = 0  # index of the next pair not yet handed to the model
    cancelled: bool = False
    started_at: float | None = None
    compute_s: float = 0.0  # model time of finished batches that held some of its pairs
    batch_started: float | None = None  # set while a batch holding its pairs runs

    @property
    def remaining_tokens(self) -> int:
        return sum(p.num_tokens for p in self.prepared.pairs[self.cursor :])

    @property
    def queue_ms(self) -> float:
        end = self.started_at if self.started_at is not None else time.perf_counter()
        return (end - self.enqueued_at) * 1000.0

    @property
    def compute_ms(self) -> float:
        running = time.perf_counter() - self.batch_started if self.batch_started is not None else 0.0
        return (self.compute_s + running) * 1000.0


class Batcher:
    """Packs pairs from all queued requests into token-budgeted batches for one engine."""

    def __init__(
        self,
        engine: ScoringEngine,
        *,
        max_batch_tokens: int,
        max_queued_tokens: int,
        metrics: BatcherMetrics | None = None,
        on_crash: Callable[[BaseException], None] | None = None,
    ) -> None:
        if max_batch_tokens < 1 or max_queued_tokens < 1:
            raise ValueError("max_batch_tokens and max_queued_tokens must be positive")
        self.engine = engine
        self.max_batch_tokens = max_batch_tokens
        self.max_queued_tokens = max_queued_tokens
        self.metrics = metrics
        self.on_crash = on_crash  # called once if the worker task dies
        self._queue: deque[Ticket] = deque()
        self._queued_tokens = 0
        self._inflight: dict[Ticket, list[Pair]] = {}  # the batch the model is computing now
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._tokens_per_s: float | None = None  # moving average, for Retry-After
        self._model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rankserve-model")
        self._tokenizer_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rankserve-tokenize")
        self._closed = False
        self.crashed: BaseException | None = None  # set if the worker task died

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the worker task on the running event loop."""
        self._wakeup = asyncio.Event()
        self._worker = asyncio.create_task(self._run(), name="rankserve-batcher")
        self._worker.add_done_callback(self._worker_done)

    async def close(self) -> None:
        """Stop the worker and fail every unanswered request (used after HTTP has drained).

        Requests whose pairs are in the batch running now fail too: the worker no longer
        runs to answer them, and a future left pending would hang its caller forever.
        """
        self._closed = True
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
            except Exception:  # already logged by _worker_done
                pass
        self._fail_pending(BatcherClosedError("server is shutting down"))
        self._model_thread.shutdown(wait=False, cancel_futures=True)
        self._tokenizer_thread.shutdown(wait=False, cancel_futures=True)

    def _worker_done(self, task: asyncio.Task[None]) -> None:
        """Done-callback of the worker: anything but a cancel from ``close`` is a crash."""
        if self._closed:
            return
        if task.cancelled():
            error: BaseException = RuntimeError("the batcher's worker task was cancelled")
        else:
            error = task.exception() or RuntimeError("the batcher's worker task returned")
        self.crashed = error
        self._closed = True  # nothing would ever score new work
        log.critical(
            "the batcher's worker crashed; no request can be scored until the server restarts",
            exc_info=(type(error), error, error.__traceback__),
        )
        self._fail_pending(BatcherClosedError(f"the scoring worker crashed ({type(error).__name__}: {error})"))
        if self.on_crash is not None:
            try:
                self.on_crash(error)
            except Exception:
                log.exception("the batcher's on_crash callback failed")

    def _fail_pending(self, error: BatcherClosedError) -> None:
        """Fail every ticket not answered yet: queued ones and those in the running batch."""
        tickets = list(self._inflight) + [t for t in self._queue if t not in self._inflight]
        self._inflight = {}
        self._queue.clear()
        self._queued_tokens = 0
        for ticket in tickets:
            if not ticket.future.done():
                ticket.future.set_exception(error)
            ticket.batch_started = None
        self._update_gauges()

    # -- public API ------------------------------------------------------------------------
    @property
    def queued_tokens(self) -> int:
        return self._queued_tokens

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    async def prepare(self, request: ScoreRequest) -> PreparedRequest:
        """Validate and tokenize off the event loop; raises the engine's InvalidInputError."""
        if self._closed:
            raise BatcherClosedError("the batcher is shut down")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._tokenizer_thread, self.engine.prepare, request)

    def submit(self, prepared: PreparedRequest) -> Ticket:
        """Queue a prepared request; its ``future`` resolves to the request's DocScores.

        Raises :class:`QueueFullError` when work is already queued and this request would take
        the queue over ``max_queued_tokens``; an empty queue admits any request.
        """
        if self._closed or self._wakeup is None:
            raise BatcherClosedError("the batcher is not running")
        tokens = prepared.num_tokens
        if self._queued_tokens > 0 and self._queued_tokens + tokens > self.max_queued_tokens:
            if self.metrics:
                self.metrics.rejected.inc()
            raise QueueFullError(
                f"server is busy: {self._queued_tokens} tokens queued, this request needs {tokens}, "
                f"limit {self.max_queued_tokens} (--max-queued-tokens); retry later",
                self._retry_after(tokens),
            )
        ticket = Ticket(prepared=prepared, future=asyncio.get_running_loop().create_future())
        if not prepared.pairs:  # nothing for the model to do (the worker only handles pairs)
            try:
                ticket.future.set_result(prepared.results())
            except Exception as exc:
                ticket.future.set_exception(exc)
            return ticket
        self._queue.append(ticket)
        self._queued_tokens += tokens
        self._update_gauges()
        self._wakeup.set()
        return ticket

    def cancel(self, ticket: Ticket) -> None:
        """Forget a request: drop its unscored pairs; a batch already running finishes unused."""
        if ticket.cancelled:
            return
        ticket.cancelled = True
        if not ticket.future.done():
            ticket.future.cancel()
        dropped = len(ticket.prepared.pairs) - ticket.cursor
        if dropped and ticket in self._queue:
            self._queue.remove(ticket)
            self._queued_tokens -= ticket.remaining_tokens
            ticket.cursor = len(ticket.prepared.pairs)
            if self.metrics:
                self.metrics.pairs_dropped.inc(dropped)
            self._update_gauges()

    async def score(self, request: ScoreRequest) -> list[DocScore]:
        """Prepare, queue and await one request (for Python callers; HTTP uses the parts)."""
        ticket = self.submit(await self.prepare(request))
        try:
            return await ticket.future
        finally:
            self.cancel(ticket)

    # -- worker ----------------------------------------------------------------------------
    def _take_batch(self) -> dict[Ticket, list[Pair]]:
        """Pairs for the next model call: round-robin across queued tickets, within ``max_batch_tokens``.

        Each round gives every queued ticket its next pair while it fits, so a request that
        arrives behind a big one gets pairs into the very next batch instead of waiting for all
        of the big one's batches. Within a ticket pairs are taken in order. A prefix is counted
        once per batch, as the engine's ``plan_batches`` counts it (it is computed once).
        Tickets that got pairs and still have more move to the back of the queue, so the next
        batch starts with those this batch did not reach. A single pair larger than the budget
        still goes alone (the engine caps pair length).
        """
        batch: dict[Ticket, list[Pair]] = {}
        prefixes: set[tuple[int, ...]] = set()
        budget = self.max_batch_tokens
        active = [t for t in self._queue if not t.cancelled]
        while active:
            still: list[Ticket] = []
            for ticket in active:
                pair = ticket.prepared.pairs[ticket.cursor]
                cost = len(pair.tokens) if pair.prefix in prefixes else pair.num_tokens
                if cost > budget and batch:
                    continue  # does not fit: this ticket waits for the next batch
                batch.setdefault(ticket, []).append(pair)
                prefixes.add(pair.prefix)
                ticket.cursor += 1
                budget -= cost
                self._queued_tokens -= pair.num_tokens
                if ticket.cursor < len(ticket.prepared.pairs):
                    still.append(ticket)
            active = still if budget > 0 else []
        served = [t for t in self._queue if t in batch]
        waiting = [t for t in self._queue if t not in batch and not t.cancelled]
        unfinished = [t for t in served if t.cursor < len(t.prepared.pairs)]
        self._queue = deque(waiting + unfinished)
        return batch

    async def _run(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = self._take_batch()
            if not batch:
                continue
            self._update_gauges()
            pairs = [p for ps in batch.values() for p in ps]
            start = time.perf_counter()
            for ticket in batch:
                ticket.batch_started = start
                if ticket.started_at is None:
                    ticket.started_at = start
            self._inflight = batch
            error: BaseException | None = None
            try:
                await loop.run_in_executor(self._model_thread, self.engine.score_pairs, pairs)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the engine failed this batch: fail its requests only
                log.error("scoring a batch of %d pairs failed: %s", len(pairs), exc)
                error = exc
            elapsed = time.perf_counter() - start
            self._record_batch(pairs, elapsed)
            for ticket, own in batch.items():
                ticket.compute_s += elapsed
                ticket.batch_started = None
                self._settle(ticket, own, error)
            self._inflight = {}

    def _settle(self, ticket: Ticket, own: list[Pair], error: BaseException | None) -> None:
        """Resolve or fail one ticket after a batch that held some of its pairs."""
        if ticket.future.done():
            return
        if error is not None:
            self._fail(ticket, error)
            return
        bad = [p for p in own if p.score is None or not math.isfinite(p.score)]
        if bad:
            p = bad[0]
            self._fail(
                ticket,
                NonFiniteScoreError(
                    f"the model produced a non-finite score ({p.score}) for document {p.doc_index}; "
                    "the checkpoint or dtype is probably broken"
                ),
            )
            return
        if ticket.cursor == len(ticket.prepared.pairs) and ticket.prepared.done:
            try:
                ticket.future.set_result(ticket.prepared.results())
            except Exception as exc:  # folding failed: still answer, never hang the request
                ticket.future.set_exception(exc)

    def _fail(self, ticket: Ticket, error: BaseException) -> None:
        ticket.future.set_exception(error)
        self.cancel(ticket)

    # -- bookkeeping -----------------------------------------------------------------------
    def _record_batch(self, pairs: list[Pair], elapsed: float) -> None:
        tokens = sum(p.num_tokens for p in pairs)
        if elapsed > 0:
            rate = tokens / elapsed
            self._tokens_per_s = rate if self._tokens_per_s is None else 0.8 * self._tokens_per_s + 0.2 * rate
        if self.metrics:
            self.metrics.batch_tokens.observe(tokens)
            self.metrics.batch_pairs.observe(len(pairs))
            self.metrics.batch_seconds.observe(elapsed)
            self.metrics.pairs_scored.inc(len(pairs))
            self.metrics.tokens.inc(tokens)

    def _retry_after(self, tokens: int) -> int:
        """Seconds until the queue has probably drained enough to take ``tokens`` more."""
        if not self._tokens_per_s:
            return 1
        excess = self._queued_tokens + tokens - self.max_queued_tokens
        return max(1, min(60, math.ceil(max(excess, self._queued_tokens) / self._tokens_per_s)))

    def _update_gauges(self) -> None:
        if self.metrics:
            self.metrics.queue_depth.set(len(self._queue))
            self.metrics.queue_tokens.set(self._queued_tokens)
