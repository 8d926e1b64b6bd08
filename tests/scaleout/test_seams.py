"""The seams a second process needs: values and errors that pickle, imports without torch,
a backend the HTTP layer talks to, and a batcher that drains instead of failing queued work."""

from __future__ import annotations

import asyncio
import pickle
import subprocess
import sys

import pytest

from rankserve.batcher import Batcher, BatcherClosedError, NonFiniteScoreError, QueueFullError
from rankserve.engine import ScoreRequest
from rankserve.errors import (
    DeadlineExceededError,
    EngineError,
    InvalidInputError,
    InvalidTextError,
    ModelLoadError,
    UnavailableError,
)
from rankserve.server.backend import LocalBackend, RequestStats

DOCS = ["Paris is the capital of France.", "Berlin is in Germany.", "Paris is the capital of France."]


@pytest.mark.parametrize(
    "error",
    [
        QueueFullError("busy: 10 tokens queued", 7),
        BatcherClosedError("server is shutting down"),
        UnavailableError("no replica", 3),
        NonFiniteScoreError("nan for document 2"),
        InvalidInputError("unknown preset"),
        InvalidTextError("document 1 is empty", "documents", 1, empty=True),
        ModelLoadError("no such model"),
        EngineError("out of memory"),
        DeadlineExceededError("too late"),
    ],
)
def test_errors_survive_pickling(error):
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error) and str(back) == str(error)
    assert vars(back) == vars(error)  # retry_after, field, index...


def test_prepared_values_pickle_and_scores_come_back_as_values(tiny_reranker):
    request = ScoreRequest("capital of France", DOCS)
    prepared = tiny_reranker.prepare(request)
    copy = pickle.loads(pickle.dumps(prepared))
    assert [p.tokens for p in copy.pairs] == [p.tokens for p in prepared.pairs]
    scores = tiny_reranker.score_pairs(copy.pairs)
    assert len(scores) == len(copy.pairs) and not hasattr(copy.pairs[0], "score")
    results = pickle.loads(pickle.dumps(copy.results(scores)))
    want = tiny_reranker.score(request.query, request.documents)
    assert [r.index for r in results] == [0, 1, 2]
    assert max(abs(a.score - b.score) for a, b in zip(results, want)) < 1e-6
    assert results[0].score == results[2].score  # the duplicate folds onto its first copy


def test_batcher_server_and_preprocessing_import_without_torch(tmp_path):
    code = (
        "import sys\n"
        "import rankserve.batcher, rankserve.engine.prepare, rankserve.engine.validation\n"
        "import rankserve.server.app, rankserve.server.backend\n"
        "import rankserve.server.cli\n"
        "heavy = [m for m in ('torch', 'ray') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


async def test_close_with_drain_finishes_queued_work(tiny_reranker):
    batcher = Batcher(tiny_reranker, max_batch_tokens=300, max_queued_tokens=1 << 22)
    await batcher.start()
    requests = [ScoreRequest(f"query {i}", [f"{j} document about CPUs" for j in range(6)]) for i in range(4)]
    tickets = [batcher.submit(await batcher.prepare(r)) for r in requests]
    await batcher.close(drain=True, timeout=60)
    for request, ticket in zip(requests, tickets):
        got = ticket.future.result()  # answered, not failed
        want = tiny_reranker.score(request.query, request.documents)
        assert max(abs(a.score - b.score) for a, b in zip(got, want)) < 1e-5
    with pytest.raises(BatcherClosedError):
        batcher.submit(await asyncio.to_thread(tiny_reranker.prepare, requests[0]))


async def test_drain_timeout_fails_the_rest(tiny_reranker):
    batcher = Batcher(tiny_reranker, max_batch_tokens=100, max_queued_tokens=1 << 22)
    await batcher.start()
    big = ScoreRequest("q", [f"{j} " + "a long document about processors " * 8 for j in range(200)])
    ticket = batcher.submit(await batcher.prepare(big))
    await batcher.close(drain=True, timeout=0.05)
    with pytest.raises(BatcherClosedError, match="shutting down"):
        ticket.future.result()


async def test_local_backend_scores_and_fills_stats(tiny_reranker):
    batcher = Batcher(tiny_reranker, max_batch_tokens=4096, max_queued_tokens=1 << 22)
    backend = LocalBackend(tiny_reranker, batcher)
    await backend.start()
    assert backend.health().status == "ready" and backend.health().ready == 1
    stats = RequestStats()
    requests = [ScoreRequest("capital", DOCS), ScoreRequest("germany", DOCS[1:2])]
    results = await backend.score(requests, None, stats)
    assert [len(r) for r in results] == [3, 1]
    assert stats.tokens > 0 and stats.compute_ms is not None and stats.compute_ms > 0
    await backend.close(drain=True, timeout=5)
