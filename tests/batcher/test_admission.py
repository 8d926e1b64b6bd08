"""Admission by deadline: with a measured throughput, work that cannot finish before its
deadline is refused at once (503 + Retry-After) and work whose deadline can no longer be met
is dropped before it costs model time (504). Real tiny engine, real batcher, real server."""

from __future__ import annotations

import asyncio
import math
from collections import deque

import httpx
import pytest

from rankserve.batcher import Batcher, QueueFullError
from rankserve.batcher.scheduler import take_batch
from rankserve.batcher.ticket import Ticket
from rankserve.engine import ScoreRequest
from rankserve.errors import DeadlineExceededError
from rankserve.server.metrics import Metrics

DOC = "CPU usage stays at 100 percent because of a busy loop. " * 4


def sample(metrics: Metrics, name: str) -> float:
    return metrics.registry.get_sample_value(name) or 0.0


async def measured_batcher(engine, **kw) -> tuple[Batcher, Metrics]:
    metrics = Metrics()
    batcher = Batcher(
        engine, max_batch_tokens=kw.pop("max_batch_tokens", 400), max_queued_tokens=1 << 22, metrics=metrics
    )
    await batcher.start()
    await batcher.score(ScoreRequest("warm", [f"{i} {DOC}" for i in range(8)]))  # a throughput to go by
    assert batcher.tokens_per_s
    return batcher, metrics


async def test_request_that_cannot_finish_in_time_is_refused_at_once(tiny_reranker):
    batcher, metrics = await measured_batcher(tiny_reranker)
    backlog = await batcher.prepare(ScoreRequest("backlog", [f"{i} {DOC}" for i in range(150)]))
    behind = batcher.submit(backlog)  # no deadline: seconds of work for the tiny model
    late = await batcher.prepare(ScoreRequest("late", [f"{i} {DOC}" for i in range(40)]))
    need = (min(backlog.num_tokens, late.num_tokens) + late.num_tokens) / batcher.tokens_per_s
    with pytest.raises(QueueFullError, match="--request-timeout") as info:
        batcher.submit(late, timeout=need / 4)
    assert 1 <= info.value.retry_after <= 60
    assert sample(metrics, "rankserve_rejected_total") == 1
    small = await batcher.prepare(ScoreRequest("small", ["one short document"]))
    ok = batcher.submit(small, timeout=60)  # a generous deadline is admitted behind the same backlog
    assert len(await ok.future) == 1
    batcher.cancel(behind)
    await batcher.close()


async def test_idle_batcher_admits_whatever_the_deadline(tiny_reranker):
    batcher, _ = await measured_batcher(tiny_reranker)
    request = await batcher.prepare(ScoreRequest("q", [f"{i} {DOC}" for i in range(20)]))
    ticket = batcher.submit(request, timeout=0.001)  # nothing queued: admitted (the scheduler decides next)
    with pytest.raises(DeadlineExceededError):
        await ticket.future
    await batcher.close()


async def test_expired_work_is_dropped_before_it_costs_model_time(tiny_reranker):
    batcher, metrics = await measured_batcher(tiny_reranker, max_batch_tokens=300)
    scored_before = sample(metrics, "rankserve_pairs_scored_total")
    first = batcher.submit(await batcher.prepare(ScoreRequest("first", [f"{i} {DOC}" for i in range(30)])))
    doomed_req = await batcher.prepare(ScoreRequest("doomed", [f"{i} {DOC}" for i in range(10)]))
    batcher.throughput.tokens_per_s = 1e15  # admission lets it in; its deadline passes while it waits
    doomed = batcher.submit(doomed_req, timeout=1e-6)
    with pytest.raises(DeadlineExceededError):
        await doomed.future
    await first.future
    scored = sample(metrics, "rankserve_pairs_scored_total") - scored_before
    assert scored == len(first.prepared.pairs)  # not one pair of the doomed request was computed
    assert sample(metrics, "rankserve_pairs_dropped_total") == len(doomed_req.pairs)
    assert batcher.queued_tokens == 0
    await batcher.close()


def test_scheduler_expires_only_what_cannot_finish(tiny_reranker):
    loop = asyncio.new_event_loop()
    try:
        prepared = tiny_reranker.prepare(ScoreRequest("q", [f"{i} {DOC}" for i in range(4)]))
        tokens = prepared.num_tokens
        make = lambda deadline: Ticket(prepared, loop.create_future(), deadline=deadline)  # noqa: E731
        now = 100.0
        fine, tight, past = make(now + 2 * tokens / 1000), make(now + 0.5 * tokens / 1000), make(now - 1)
        plan = take_batch(deque([fine, tight, past]), 1 << 20, now, tokens_per_s=1000)
        assert plan.expired == [tight, past]
        assert list(plan.batch) == [fine] and not plan.queue
        no_rate = take_batch(deque([make(now + 0.001)]), 1 << 20, now, tokens_per_s=None)
        assert not no_rate.expired  # nothing measured yet: only a passed deadline expires
    finally:
        loop.close()


def test_server_refuses_early_instead_of_timing_out(tiny_qwen_dir, tmp_path):
    """Many big requests against a short --request-timeout: the ones that could not finish get
    503 + Retry-After at once (or 504), never a 500, and the server keeps answering."""
    from tests.support.server import ServerProcess

    server = ServerProcess(
        tiny_qwen_dir, tmp_path / "server.log", "--request-timeout", "3", "--max-batch-tokens", "2000"
    )
    try:
        server.wait_ready()
        docs = [f"{i} {DOC}" for i in range(30)]

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                await client.post("/rerank", json={"query": "warm", "texts": docs})
                one = await client.post("/rerank", json={"query": "one", "texts": docs})
                # enough work for ~4 timeouts on this host, however fast it is today
                count = min(60, max(8, math.ceil(12 / one.elapsed.total_seconds())))
                calls = [client.post("/rerank", json={"query": f"q{i}", "texts": docs}) for i in range(count)]
                return await asyncio.gather(*calls)

        responses = asyncio.run(burst())
        codes = [r.status_code for r in responses]
        assert set(codes) <= {200, 503, 504}, codes
        refused = [r for r in responses if r.status_code == 503]
        assert refused, [(r.status_code, r.text[:200]) for r in responses[:3]]  # some were refused early
        for r in refused:
            assert int(r.headers["Retry-After"]) >= 1 and "--request-timeout" in r.json()["error"]["message"]
        assert all(r.elapsed.total_seconds() < 3 for r in refused)
        assert httpx.get(server.url + "/health").status_code == 200
    finally:
        assert server.stop() == 0
