"""The async batcher: shared batches, early answers, cancellation, queue limit, fair scheduling,
shutdown, worker crash. Scores must equal the engine's own, however requests are batched.

The first test runs the real tiny engine; the others run :class:`FakeEngine` (same contract, the
engine's own validation, no model), whose batches take time in proportion to their tokens."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from prometheus_client import CollectorRegistry, Histogram

from rankserve.batcher import Batcher, BatcherClosedError, QueueFullError
from rankserve.engine import ScoreRequest
from rankserve.errors import InvalidInputError
from rankserve.server.metrics import Metrics
from tests.support.fake_engine import FakeEngine

QUERY = "服务器CPU使用率持续100%怎么办"
DOCS = [
    "先用 top 找出占用CPU最高的进程。",
    "今天天气很好。",
    "Check for runaway processes with top.",
    "CPU使用率持续100%通常意味着死循环。",
    "def merge(a, b): return sorted(a + b)",
]
MEDIUM = "CPU usage stays at 100 percent because of a busy loop. " * 4


@pytest.fixture
def fake() -> FakeEngine:
    return FakeEngine(seconds_per_token=5e-5)  # a 400-token batch takes 20 ms


def sample(metrics: Metrics, name: str) -> float:
    return metrics.registry.get_sample_value(name) or 0.0


def assert_same(results, engine_results):
    assert [r.index for r in results] == [r.index for r in engine_results]
    assert max(abs(a.score - b.score) for a, b in zip(results, engine_results, strict=True)) <= 1e-5
    assert [r.prompt_tokens for r in results] == [r.prompt_tokens for r in engine_results]


async def make(engine, **kw) -> tuple[Batcher, Metrics]:
    metrics = Metrics()
    kw.setdefault("max_batch_tokens", 1 << 20)
    kw.setdefault("max_queued_tokens", 1 << 22)
    batcher = Batcher(engine, metrics=metrics, **kw)
    await batcher.start()
    return batcher, metrics


async def test_requests_share_one_batch(tiny_reranker):
    """With the real engine: three requests, one model call, each answer equal to the engine's own."""
    batcher, metrics = await make(tiny_reranker)
    requests = [ScoreRequest(QUERY, DOCS), ScoreRequest("merge sorted lists", DOCS[2:]), ScoreRequest("q", DOCS[:1])]
    prepared = [await batcher.prepare(r) for r in requests]
    tickets = [batcher.submit(p) for p in prepared]  # all queued before the worker runs
    results = await asyncio.gather(*(t.future for t in tickets))
    for req, res in zip(requests, results, strict=True):
        assert_same(res, tiny_reranker.score(req.query, req.documents))
    assert sample(metrics, "rankserve_batch_pairs_count") == 1  # one model call for all three
    assert sample(metrics, "rankserve_batch_pairs_sum") == len(DOCS) + 3 + 1
    assert batcher.queued_tokens == 0
    await batcher.close()


async def test_each_request_answered_when_its_own_pairs_are_scored(fake):
    batcher, metrics = await make(fake, max_batch_tokens=300)
    small = batcher.submit(await batcher.prepare(ScoreRequest(QUERY, DOCS[:1])))
    big = batcher.submit(await batcher.prepare(ScoreRequest(QUERY, [f"{i} {MEDIUM}" for i in range(12)])))
    result = await small.future
    assert_same(result, fake.score(QUERY, DOCS[:1]))
    assert not big.future.done()  # the big request is still being computed
    big_result = await big.future
    assert_same(big_result, fake.score(QUERY, [f"{i} {MEDIUM}" for i in range(12)]))
    assert sample(metrics, "rankserve_batch_pairs_count") > 2
    await batcher.close()


async def test_cancelled_request_drops_its_queued_pairs(fake):
    batcher, metrics = await make(fake, max_batch_tokens=200)
    docs = [f"{i} {MEDIUM}" for i in range(30)]
    ticket = batcher.submit(await batcher.prepare(ScoreRequest(QUERY, docs)))
    while sample(metrics, "rankserve_pairs_scored_total") == 0:
        await asyncio.sleep(0.005)
    batcher.cancel(ticket)
    assert ticket.future.cancelled()
    assert batcher.queued_tokens == 0 and batcher.queue_depth == 0
    dropped = sample(metrics, "rankserve_pairs_dropped_total")
    assert dropped > 0
    after = batcher.submit(await batcher.prepare(ScoreRequest(QUERY, DOCS)))
    assert_same(await after.future, fake.score(QUERY, DOCS))
    unscored = sum(s is None for s in ticket.scores)
    assert unscored == dropped  # nothing of the cancelled request was computed after cancel
    assert sample(metrics, "rankserve_pairs_scored_total") == len(docs) - dropped + len(DOCS)
    await batcher.close()


async def test_queue_limit_in_tokens(fake):
    batcher, metrics = await make(fake)
    first = await batcher.prepare(ScoreRequest(QUERY, DOCS[:2]))
    second = await batcher.prepare(ScoreRequest(QUERY, DOCS[:3]))
    batcher.max_queued_tokens = first.num_tokens + second.num_tokens - 1  # room for one, not both
    t1 = batcher.submit(first)
    with pytest.raises(QueueFullError, match="--max-queued-tokens") as info:
        batcher.submit(second)
    assert info.value.retry_after >= 1
    assert sample(metrics, "rankserve_rejected_total") == 1
    await t1.future
    assert batcher.queued_tokens == 0
    t2 = batcher.submit(second)  # room again once the queue drained
    assert_same(await t2.future, fake.score(QUERY, DOCS[:3]))
    await batcher.close()


async def test_bad_input_and_shutdown(fake):
    batcher, _ = await make(fake, max_batch_tokens=100)
    with pytest.raises(InvalidInputError, match="document 1"):
        await batcher.prepare(ScoreRequest(QUERY, ["a", ""]))
    ticket = batcher.submit(await batcher.prepare(ScoreRequest(QUERY, [f"{i} {MEDIUM}" for i in range(10)])))
    await asyncio.sleep(0)
    await batcher.close()
    with pytest.raises(BatcherClosedError):
        await ticket.future
    with pytest.raises(BatcherClosedError):
        batcher.submit(await batcher.prepare(ScoreRequest(QUERY, DOCS)))


async def test_one_request_over_the_queue_limit_runs_on_an_idle_batcher(fake):
    """The limit stops work piling up; it must not make one big request impossible."""
    batcher, metrics = await make(fake)
    docs = [f"{i} {MEDIUM}" for i in range(6)]
    big = await batcher.prepare(ScoreRequest(QUERY, docs))
    small = await batcher.prepare(ScoreRequest(QUERY, DOCS[:1]))
    batcher.max_queued_tokens = big.num_tokens // 3
    ticket = batcher.submit(big)  # nothing else queued: admitted although over the limit
    with pytest.raises(QueueFullError, match="--max-queued-tokens"):
        batcher.submit(small)  # queued work + this request > limit
    assert_same(await ticket.future, fake.score(QUERY, docs))
    assert sample(metrics, "rankserve_rejected_total") == 1
    assert_same(await batcher.submit(small).future, fake.score(QUERY, DOCS[:1]))
    await batcher.close()


async def test_small_request_is_not_stuck_behind_a_big_one(fake):
    """Round-robin batches: a 1-document request arriving just after a 200-document one is
    answered within a couple of batches, long before the big one finishes."""
    budget = 400  # a handful of these pairs per batch: the big request needs ~25 batches
    batcher, metrics = await make(fake, max_batch_tokens=budget)
    big_docs = [f"{i} {MEDIUM}" for i in range(200)]
    big_prepared = await batcher.prepare(ScoreRequest(QUERY, big_docs))
    small_prepared = await batcher.prepare(ScoreRequest("merge sorted lists", DOCS[4:5]))
    finished: list[str] = []

    started = time.perf_counter()
    big = batcher.submit(big_prepared)
    big.future.add_done_callback(lambda _: finished.append("big"))
    while big.started_at is None:  # the big request's first batch is running
        await asyncio.sleep(0.001)
    small_submitted = time.perf_counter()
    small = batcher.submit(small_prepared)
    small.future.add_done_callback(lambda _: finished.append("small"))

    small_result = await small.future
    small_latency = time.perf_counter() - small_submitted
    big_scored = big.scored
    assert not big.future.done()
    assert big_scored <= len(big_docs) // 4, f"{big_scored} big pairs scored before the small request's one"
    big_result = await big.future
    big_latency = time.perf_counter() - started

    assert finished == ["small", "big"]
    assert small_latency < big_latency / 3, (small_latency, big_latency)
    assert_same(small_result, fake.score("merge sorted lists", DOCS[4:5]))
    assert_same(big_result, fake.score(QUERY, big_docs))
    assert sample(metrics, "rankserve_batch_tokens_count") > 20
    await batcher.close()


async def test_round_robin_keeps_the_token_budget_and_counts_a_prefix_once(fake):
    budget = 700
    batcher, _ = await make(fake, max_batch_tokens=budget)
    a = await batcher.prepare(ScoreRequest(QUERY, [f"{i} {MEDIUM}" for i in range(8)]))
    b = await batcher.prepare(ScoreRequest("merge sorted lists", DOCS))
    c = await batcher.prepare(ScoreRequest("q", DOCS[:2]))
    tickets = [batcher.submit(p) for p in (a, b, c)]  # all queued before the worker runs
    batches = []
    while batcher.queue_depth:
        batches.append(batcher._take_batch())  # form batches without running them
    for batch in batches:
        pairs = [p for own in batch.values() for p in own]
        prefixes = {p.prefix for p in pairs}
        packed = sum(len(p.tokens) for p in pairs) + sum(len(x) for x in prefixes)
        assert packed <= budget or len(pairs) == 1
    first = batches[0]
    assert set(first) == set(tickets)  # every queued request gets pairs into the first batch
    for ticket in tickets:  # each request's pairs in order, none twice, none lost
        taken = [p for batch in batches for p in batch.get(ticket, [])]
        assert taken == ticket.prepared.pairs
    assert batcher.queued_tokens == 0
    await batcher.close()


async def test_close_fails_requests_whose_pairs_are_all_in_the_running_batch(fake):
    batcher, _ = await make(fake)  # one batch holds the whole request
    ticket = batcher.submit(await batcher.prepare(ScoreRequest(QUERY, [f"{i} {MEDIUM}" for i in range(100)])))
    while ticket.batch_started is None:
        await asyncio.sleep(0.001)
    assert batcher.queue_depth == 0  # nothing of it is queued any more: it is all in flight
    await batcher.close()
    with pytest.raises(BatcherClosedError, match="shutting down"):
        await asyncio.wait_for(ticket.future, timeout=5)


class LabelledBatchHistogramMetrics(Metrics):
    """Real metrics, misconfigured: ``batch_seconds`` has a label the batcher never sets, so
    prometheus raises in the worker after the first model call (a bug that kills the worker)."""

    def __init__(self) -> None:
        super().__init__()
        self.batch_seconds = Histogram("bad_batch_seconds", "x", ["model"], registry=CollectorRegistry())


async def test_worker_crash_is_logged_fails_pending_requests_and_is_reported(fake, caplog):
    crashes: list[BaseException] = []
    batcher = Batcher(
        fake,
        max_batch_tokens=300,
        max_queued_tokens=1 << 22,
        metrics=LabelledBatchHistogramMetrics(),
        on_crash=crashes.append,
    )
    await batcher.start()
    first = await batcher.prepare(ScoreRequest(QUERY, DOCS[:1]))
    second = await batcher.prepare(ScoreRequest(QUERY, [f"{i} {MEDIUM}" for i in range(6)]))
    with caplog.at_level(logging.ERROR, logger="rankserve.batcher"):
        in_flight = batcher.submit(first)  # the first batch holds only this one (budget 300)
        queued = batcher.submit(second)
        for ticket in (in_flight, queued):
            with pytest.raises(BatcherClosedError, match="worker crashed"):
                await asyncio.wait_for(ticket.future, timeout=10)
    assert len(crashes) == 1 and isinstance(crashes[0], ValueError)
    assert batcher.crashed is crashes[0]
    crash_logs = [r for r in caplog.records if "worker crashed" in r.getMessage()]
    assert len(crash_logs) == 1 and crash_logs[0].exc_info is not None
    with pytest.raises(BatcherClosedError):
        batcher.submit(in_flight.prepared)  # no new work is accepted by a dead worker
    await batcher.close()
    assert len(crashes) == 1
