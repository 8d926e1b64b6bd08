"""RerankClient / AsyncRerankClient against real HTTP servers.

A small stub server (FastAPI + uvicorn in a thread, the Cohere/Jina ``/v1/rerank`` shape) plays a
healthy, a slow, a failing and a rejecting reranker, chosen by the query's prefix; the fallback
and circuit-breaker behaviour is about HTTP, so it is tested over real sockets. One test runs
against the real ``rankserve serve``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from rankserve.client import (
    AsyncRerankClient,
    CircuitBreaker,
    RerankClient,
    RerankRequestError,
    RerankUnavailableError,
)
from tests.support.stub_reranker import DOCS, SLOW_SECONDS, TIMEOUT, StubServer


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    server = StubServer().start()
    yield server
    server.stop()


@pytest.fixture
def stopped_url() -> str:
    """The URL of a server that ran and was stopped: nothing listens there any more."""
    server = StubServer().start()
    server.stop()
    return server.url


def test_rerank_orders_and_attaches_documents(stub: StubServer) -> None:
    with RerankClient(stub.url, timeout=TIMEOUT) as client:
        response = client.rerank("capital of france paris", DOCS, top_n=2)
    assert not response.fallback and response.model == "stub"
    assert [r.index for r in response.results] == [1, 2]
    assert response.results[0].document == DOCS[1]
    assert response.results[0].relevance_score == pytest.approx(1.0)


def test_empty_document_list_answers_locally(stub: StubServer) -> None:
    before = len(stub.calls)
    assert RerankClient(stub.url).rerank("q", []).results == []
    assert len(stub.calls) == before


def test_slow_server_falls_back_to_input_order_within_timeout(stub: StubServer) -> None:
    client = RerankClient(stub.url, timeout=TIMEOUT)
    started = time.perf_counter()
    response = client.rerank("slow: capital of france paris", DOCS, top_n=2)
    elapsed = time.perf_counter() - started
    assert response.fallback and "timeout" in response.fallback_reason
    assert [r.index for r in response.results] == [0, 1]
    assert all(r.relevance_score is None for r in response.results)
    assert elapsed < SLOW_SECONDS, "the client must not wait for the slow answer"


def test_bm25_fallback_order_on_5xx(stub: StubServer) -> None:
    client = RerankClient(stub.url, timeout=TIMEOUT, fallback="bm25")
    response = client.rerank("fail500: paris france capital", DOCS)
    assert response.fallback and "500" in response.fallback_reason and "boom" in response.fallback_reason
    assert [r.index for r in response.results] == [2, 1, 0]


def test_stopped_server_falls_back(stopped_url: str) -> None:
    response = RerankClient(stopped_url, timeout=TIMEOUT).rerank("paris", DOCS)
    assert response.fallback and "connection error" in response.fallback_reason
    assert [r.document for r in response.results] == DOCS


def test_4xx_raises_with_server_message(stub: StubServer) -> None:
    client = RerankClient(stub.url, timeout=TIMEOUT)
    with pytest.raises(RerankRequestError) as err:
        client.rerank("bad400: x", DOCS)
    assert err.value.status_code == 400 and "cannot be empty" in str(err.value)
    with pytest.raises(RerankRequestError, match="invalid API key") as err:
        RerankClient(stub.url, api_key="wrong").rerank("paris", DOCS)
    assert err.value.status_code == 401
    assert client.breaker.state == "closed", "a 4xx proves the server is alive"


def test_fallback_disabled_raises(stopped_url: str) -> None:
    with pytest.raises(RerankUnavailableError, match="connection error"):
        RerankClient(stopped_url, timeout=TIMEOUT, fallback=None).rerank("paris", DOCS)


def test_circuit_breaker_stops_hammering_then_recovers(stub: StubServer) -> None:
    client = RerankClient(stub.url, timeout=TIMEOUT, failure_threshold=2, reset_timeout=0.3)
    for _ in range(2):
        assert client.rerank("fail500: paris", DOCS).fallback
    assert client.breaker.state == "open"
    before = len(stub.calls)
    started = time.perf_counter()
    response = client.rerank("paris", DOCS)
    assert response.fallback and "circuit open" in response.fallback_reason
    assert len(stub.calls) == before, "an open circuit must not send requests"
    assert time.perf_counter() - started < 0.1
    time.sleep(0.35)  # half-open: one trial goes through and closes the circuit
    response = client.rerank("paris", DOCS)
    assert not response.fallback and client.breaker.state == "closed"
    assert len(stub.calls) == before + 1


def test_breaker_state_machine_with_fake_clock() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout=10, clock=lambda: now[0])
    for _ in range(2):
        breaker.record_failure()
    assert breaker.state == "closed" and breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
    now[0] = 10.0
    assert breaker.state == "half_open"
    assert breaker.allow() and not breaker.allow(), "only one trial in half-open"
    breaker.record_failure()  # failed trial: open for a full period again
    now[0] = 15.0
    assert not breaker.allow()
    now[0] = 20.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.allow()


async def test_async_client_ok_timeout_and_4xx(stub: StubServer) -> None:
    async with AsyncRerankClient(stub.url, timeout=TIMEOUT) as client:
        ok, slow = await asyncio.gather(
            client.rerank("capital of france paris", DOCS, top_n=1),
            client.rerank("slow: capital of france paris", DOCS),
        )
        assert not ok.fallback and [r.index for r in ok.results] == [1]
        assert slow.fallback and "timeout" in slow.fallback_reason
        with pytest.raises(RerankRequestError):
            await client.rerank("bad400: x", DOCS)


async def test_async_client_stopped_server(stopped_url: str) -> None:
    async with AsyncRerankClient(stopped_url, timeout=TIMEOUT, fallback="bm25") as client:
        response = await client.rerank("paris france capital", DOCS)
    assert response.fallback and [r.index for r in response.results] == [2, 1, 0]


async def test_cancelled_trial_call_gives_no_verdict(stub: StubServer) -> None:
    async with AsyncRerankClient(stub.url, timeout=5.0, failure_threshold=1, reset_timeout=0.0) as client:
        assert (await client.rerank("fail500: paris", DOCS)).fallback
        trial = asyncio.create_task(client.rerank("slow: paris", DOCS))  # the half-open trial call
        await asyncio.sleep(0.2)
        trial.cancel()
        with pytest.raises(asyncio.CancelledError):
            await trial
        response = await client.rerank("paris", DOCS)  # the trial slot was freed, not kept forever
        assert not response.fallback and client.breaker.state == "closed"
