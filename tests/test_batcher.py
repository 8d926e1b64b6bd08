"""The async batcher with the real tiny engine: shared batches, early answers, cancellation,
queue limit, shutdown. Scores must equal the engine's own, however requests are batched."""

from __future__ import annotations

import asyncio

import pytest

from rankserve.batcher import Batcher, BatcherClosedError, QueueFullError
from rankserve.engine import ScoreRequest
from rankserve.errors import InvalidInputError
from rankserve.server.metrics import Metrics

QUERY = "服务器CPU使用率持续100%怎么办"
DOCS = [
    "先用 top 找出占用CPU最高的进程。",
    "今天天气很好。",
    "Check for runaway processes with top.",
    "CPU使用率持续100%通常意味着死循环。",
    "def merge(a, b): return sorted(a + b)",
]
MEDIUM = "CPU usage stays at 100 percent because of a busy loop. " * 4


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


async def test_each_request_answered_when_its_own_pairs_are_scored(tiny_reranker):
    batcher, metrics = await make(tiny_reranker, max_batch_tokens=300)
    small = batcher.submit(await batcher.prepare(ScoreRequest(QUERY, DOCS[:1])))
    big = batcher.submit(await batcher.prepare(ScoreRequest(QUERY, [f"{i} {MEDIUM}" for i in range(12)])))
    result = await small.future
    assert_same(result, tiny_reranker.score(QUERY, DOCS[:1]))
    assert not big.future.done()  # the big request is still being computed
    big_result = await big.future
    assert_same(big_result, tiny_reranker.score(QUERY, [f"{i} {MEDIUM}" for i in range(12)]))
    assert sample(metrics, "rankserve_batch_pairs_count") > 2
    await batcher.close()


async def test_cancelled_request_drops_its_queued_pairs(tiny_reranker):
    batcher, metrics = await make(tiny_reranker, max_batch_tokens=200)
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
    assert_same(await after.future, tiny_reranker.score(QUERY, DOCS))
    unscored = sum(p.score is None for p in ticket.prepared.pairs)
    assert unscored == dropped  # nothing of the cancelled request was computed after cancel
    assert sample(metrics, "rankserve_pairs_scored_total") == len(docs) - dropped + len(DOCS)
    await batcher.close()


async def test_queue_limit_in_tokens(tiny_reranker):
    batcher, metrics = await make(tiny_reranker)
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
    assert_same(await t2.future, tiny_reranker.score(QUERY, DOCS[:3]))
    await batcher.close()


async def test_bad_input_and_shutdown(tiny_reranker):
    batcher, _ = await make(tiny_reranker, max_batch_tokens=100)
    with pytest.raises(InvalidInputError, match="document 1"):
        await batcher.prepare(ScoreRequest(QUERY, ["a", ""]))
    ticket = batcher.submit(await batcher.prepare(ScoreRequest(QUERY, [f"{i} {MEDIUM}" for i in range(10)])))
    await asyncio.sleep(0)
    await batcher.close()
    with pytest.raises((BatcherClosedError, asyncio.CancelledError)):
        await ticket.future
    with pytest.raises(BatcherClosedError):
        batcher.submit(await batcher.prepare(ScoreRequest(QUERY, DOCS)))
