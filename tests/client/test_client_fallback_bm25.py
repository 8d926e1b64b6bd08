"""The client's BM25 fallback never raises, even when BM25 cannot index a single token."""

from __future__ import annotations

import pytest

from rankserve.client import AsyncRerankClient, RerankClient
from tests.support.server import free_port

UNINDEXABLE = [["it is", "the a"], ["!!!", "???"], ["a", ""], ["the"]]


@pytest.mark.parametrize("documents", UNINDEXABLE)
def test_bm25_fallback_with_nothing_to_index_keeps_input_order(documents):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens: the server is down
    with RerankClient(url, timeout=1.0, fallback="bm25") as client:
        response = client.rerank("what is it", documents)
    assert response.fallback and [r.index for r in response.results] == list(range(len(documents)))


async def test_async_bm25_fallback_with_nothing_to_index():
    url = f"http://127.0.0.1:{free_port()}"
    async with AsyncRerankClient(url, timeout=1.0, fallback="bm25") as client:
        response = await client.rerank("the", ["!!!", "???"], top_n=1)
    assert response.fallback and [r.index for r in response.results] == [0]


def test_bm25_fallback_still_ranks_when_it_can():
    url = f"http://127.0.0.1:{free_port()}"
    with RerankClient(url, timeout=1.0, fallback="bm25") as client:
        response = client.rerank("kubernetes gpu", ["apple pie", "gpu scheduling in kubernetes"])
    assert [r.index for r in response.results] == [1, 0]
