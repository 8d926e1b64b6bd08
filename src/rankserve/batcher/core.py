"""The batcher: admission, scheduling and the model thread composed around one engine.

Flow of one request:

1. ``prepare`` validates and tokenizes on a dedicated tokenizer thread (the event loop never
   runs CPU-heavy work, and one thread avoids concurrent use of a tokenizer).
2. ``submit`` asks :mod:`~rankserve.batcher.admission` (token limit, deadline) and queues a
   :class:`~rankserve.batcher.ticket.Ticket`.
3. One worker task asks :mod:`~rankserve.batcher.scheduler` for the next batch and runs the
   engine's ``score_pairs`` (pairs in, scores out) on a single model thread. A ticket's future
   resolves as soon as all of *its* pairs are scored, not when the queue drains.
4. A cancelled ticket (client gone, timeout) leaves the queue at once; its unscored pairs are
   never computed. A ticket that cannot meet its deadline is dropped before it costs model time.
5. ``close(drain=True)`` stops admitting and lets queued work finish (up to ``timeout``);
   then, or with ``drain=False``, every unanswered ticket fails with :class:`BatcherClosedError`.
   If the worker task ever dies, the crash is logged, pending tickets fail, no more work is
   accepted, and ``on_crash`` tells the owner (the server then reports itself unhealthy).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from rankserve.batcher.admission import Admission, Throughput
from rankserve.batcher.metrics import BatcherMetrics
from rankserve.batcher.scheduler import take_batch
from rankserve.batcher.ticket import Ticket
from rankserve.engine.types import DocScore, Pair, PreparedRequest, ScoreRequest
from rankserve.errors import DeadlineExceededError, EngineError, UnavailableError

log = logging.getLogger("rankserve.batcher")


class ScoringEngine(Protocol):
    """The part of :class:`rankserve.engine.Reranker` the batcher uses: a value-typed contract."""

    def prepare(self, request: ScoreRequest) -> PreparedRequest: ...

    def score_pairs(self, pairs: Sequence[Pair]) -> list[float]: ...


class NonFiniteScoreError(EngineError):
    """The model produced NaN or an infinite score; it must never reach a client."""


class BatcherClosedError(UnavailableError):
    """The batcher was shut down (or its worker died) before the request was scored."""


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
        self.throughput = Throughput()
        self.admission = Admission(max_queued_tokens, self.throughput)
        self.metrics = metrics
        self.on_crash = on_crash  # called once if the worker task dies
        self._queue: deque[Ticket] = deque()
        self._queued_tokens = 0
        self._inflight: dict[Ticket, list[Pair]] = {}  # the batch the model is computing now
        self._wakeup: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None  # set while nothing is queued or running
        self._worker: asyncio.Task[None] | None = None
        self._model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rankserve-model")
        self._tokenizer_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rankserve-tokenize")
        self._closed = False  # no new work (closing, draining, or the worker died)
        self.crashed: BaseException | None = None  # set if the worker task died

    @property
    def max_queued_tokens(self) -> int:
        return self.admission.max_queued_tokens

    @max_queued_tokens.setter
    def max_queued_tokens(self, value: int) -> None:
        self.admission.max_queued_tokens = value

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the worker task on the running event loop."""
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._worker = asyncio.create_task(self._run(), name="rankserve-batcher")
        self._worker.add_done_callback(self._worker_done)

    async def close(self, drain: bool = False, timeout: float | None = None) -> None:
        """Stop the worker; with ``drain``, first let queued and running work finish (up to ``timeout`` s).

        Whatever is still unanswered then fails with :class:`BatcherClosedError`, including
        requests whose pairs are in the batch running now: the worker no longer runs to answer
        them, and a future left pending would hang its caller forever.
        """
        was_running = not self._closed and self._worker is not None and not self._worker.done()
        self._closed = True
        if drain and was_running and self._idle is not None and not self._idle.is_set():
            try:
                await asyncio.wait_for(self._idle.wait(), timeout)
            except TimeoutError:
                log.warning("drain timed out after %s s; failing %d unfinished requests", timeout, self.queue_depth)
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
        if self._closed and task.cancelled():
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

    def _fail_pending(self, error: BaseException) -> None:
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

    @property
    def tokens_per_s(self) -> float | None:
        """Measured throughput (moving average), ``None`` before the first batch."""
        return self.throughput.tokens_per_s

    async def prepare(self, request: ScoreRequest) -> PreparedRequest:
        """Validate and tokenize off the event loop; raises the engine's InvalidInputError."""
        if self._closed:
            raise BatcherClosedError("the batcher is shut down")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._tokenizer_thread, self.engine.prepare, request)

    def submit(self, prepared: PreparedRequest, timeout: float | None = None) -> Ticket:
        """Queue a prepared request; its ``future`` resolves to the request's DocScores.

        ``timeout``: seconds the caller will wait for the answer (its deadline). Raises
        :class:`QueueFullError` when admission refuses the request (see :mod:`.admission`).
        """
        if self._closed or self._wakeup is None:
            raise BatcherClosedError("the batcher is not running" if not self._closed else "server is shutting down")
        tokens = prepared.num_tokens
        try:
            self.admission.check(tokens, self._queued_tokens, self._queue, timeout)
        except Exception:
            if self.metrics:
                self.metrics.rejected.inc()
            raise
        deadline = time.perf_counter() + timeout if timeout is not None else None
        ticket = Ticket(prepared=prepared, future=asyncio.get_running_loop().create_future(), deadline=deadline)
        if not prepared.pairs:  # nothing for the model to do (the worker only handles pairs)
            try:
                ticket.future.set_result(prepared.results([]))
            except Exception as exc:
                ticket.future.set_exception(exc)
            return ticket
        self._queue.append(ticket)
        self._queued_tokens += tokens
        self._update_gauges()
        assert self._idle is not None
        self._idle.clear()
        self._wakeup.set()
        return ticket

    def cancel(self, ticket: Ticket) -> None:
        """Forget a request: drop its unscored pairs; a batch already running finishes unused."""
        if ticket.cancelled:
            return
        ticket.cancelled = True
        if not ticket.future.done():
            ticket.future.cancel()
        self._drop(ticket)

    def _drop(self, ticket: Ticket) -> None:
        """Take a ticket's unscheduled pairs out of the queue (counted as dropped)."""
        dropped = len(ticket.prepared.pairs) - ticket.cursor
        if dropped and ticket in self._queue:
            self._queue.remove(ticket)
            self._queued_tokens -= ticket.remaining_tokens
            ticket.remaining_tokens = 0
            ticket.cursor = len(ticket.prepared.pairs)
            if self.metrics:
                self.metrics.pairs_dropped.inc(dropped)
            self._update_gauges()

    async def score(self, request: ScoreRequest, timeout: float | None = None) -> list[DocScore]:
        """Prepare, queue and await one request (for Python callers; HTTP uses the parts)."""
        ticket = self.submit(await self.prepare(request), timeout)
        try:
            return await ticket.future
        finally:
            self.cancel(ticket)

    # -- scheduling and execution ----------------------------------------------------------
    def _take_batch(self) -> dict[Ticket, list[Pair]]:
        """The next batch from the scheduler; tickets that cannot meet their deadline fail here (504)."""
        plan = take_batch(self._queue, self.max_batch_tokens, time.perf_counter(), self.tokens_per_s)
        self._queued_tokens -= sum(p.num_tokens for p in plan.pairs)
        self._queue = plan.queue
        for ticket in plan.expired:
            self._queue.append(ticket)  # so that _drop finds and counts it
            self._drop(ticket)
            if not ticket.future.done():
                ticket.future.set_exception(
                    DeadlineExceededError("the request cannot be answered before its deadline (--request-timeout)")
                )
        return plan.batch

    async def _run(self) -> None:
        assert self._wakeup is not None and self._idle is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = self._take_batch()
            self._update_gauges()
            if not batch:
                continue
            starts = {ticket: ticket.cursor - len(own) for ticket, own in batch.items()}
            pairs = [p for ps in batch.values() for p in ps]
            start = time.perf_counter()
            for ticket in batch:
                ticket.batch_started = start
                if ticket.started_at is None:
                    ticket.started_at = start
            self._inflight = batch
            error: BaseException | None = None
            scores: list[float] = []
            try:
                scores = await loop.run_in_executor(self._model_thread, self.engine.score_pairs, pairs)
                if len(scores) != len(pairs):
                    raise EngineError(f"the engine returned {len(scores)} scores for {len(pairs)} pairs")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the engine failed this batch: fail its requests only
                log.error("scoring a batch of %d pairs failed: %s", len(pairs), exc)
                error = exc
            elapsed = time.perf_counter() - start
            self._record_batch(pairs, elapsed)
            offset = 0
            for ticket, own in batch.items():
                ticket.compute_s += elapsed
                ticket.batch_started = None
                if error is None:
                    ticket.scores[starts[ticket] : starts[ticket] + len(own)] = scores[offset : offset + len(own)]
                offset += len(own)
                self._settle(ticket, error)
            self._inflight = {}

    def _settle(self, ticket: Ticket, error: BaseException | None) -> None:
        """Resolve or fail one ticket after a batch that held some of its pairs."""
        if ticket.future.done():
            return
        if error is not None:
            self._fail(ticket, error)
            return
        bad = [i for i, s in enumerate(ticket.scores[: ticket.cursor]) if s is None or not math.isfinite(s)]
        if bad:
            i = bad[0]
            self._fail(
                ticket,
                NonFiniteScoreError(
                    f"the model produced a non-finite score ({ticket.scores[i]}) for document "
                    f"{ticket.prepared.pairs[i].doc_index}; the checkpoint or dtype is probably broken"
                ),
            )
            return
        if ticket.cursor == len(ticket.prepared.pairs):
            try:
                ticket.future.set_result(ticket.prepared.results(ticket.scores))
            except Exception as exc:  # folding failed: still answer, never hang the request
                ticket.future.set_exception(exc)

    def _fail(self, ticket: Ticket, error: BaseException) -> None:
        ticket.future.set_exception(error)
        self.cancel(ticket)

    # -- bookkeeping -----------------------------------------------------------------------
    def _record_batch(self, pairs: list[Pair], elapsed: float) -> None:
        tokens = sum(p.num_tokens for p in pairs)
        self.throughput.record(tokens, elapsed)
        if self.metrics:
            self.metrics.batch_tokens.observe(tokens)
            self.metrics.batch_pairs.observe(len(pairs))
            self.metrics.batch_seconds.observe(elapsed)
            self.metrics.pairs_scored.inc(len(pairs))
            self.metrics.tokens.inc(tokens)

    def _update_gauges(self) -> None:
        if self.metrics:
            self.metrics.queue_depth.set(len(self._queue))
            self.metrics.queue_tokens.set(self._queued_tokens)
