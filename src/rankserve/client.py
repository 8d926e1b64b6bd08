"""Python client for a RankServe (or any Cohere/Jina-compatible ``/v1/rerank``) server.

A reranker sits on the hot path of search, so the client is built to *degrade*, not fail:
on a timeout, a connection error or a 5xx it returns the caller's own order (or a BM25 order
of the documents) marked ``fallback=True``, and a circuit breaker stops sending requests to a
server that keeps failing, so a dead reranker costs nothing instead of ``timeout`` seconds per
search. Caller mistakes (4xx: bad input, bad API key, too many documents) are never hidden:
they raise :class:`RerankRequestError`, because falling back would mask a bug forever.

    from rankserve.client import RerankClient
    client = RerankClient("http://localhost:8000", timeout=2.0, fallback="bm25")
    response = client.rerank("what is BM25?", docs, top_n=5)
    for r in response.results: print(r.index, r.relevance_score, r.document)
    if response.fallback: print("degraded:", response.fallback_reason)
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from rankserve.errors import RankServeError

logger = logging.getLogger("rankserve.client")

FallbackMode = Literal["input", "bm25"]


class RerankError(RankServeError):
    """Base class of the client's errors."""


class RerankRequestError(RerankError, ValueError):
    """The server rejected the request (HTTP 4xx). Fix the request; retrying will not help."""

    def __init__(self, status_code: int, message: str, body: Any = None) -> None:
        super().__init__(f"HTTP {status_code}: {message}")
        self.status_code, self.message, self.body = status_code, message, body


class RerankUnavailableError(RerankError, RuntimeError):
    """The server could not answer (timeout, connection error, 5xx, circuit open) and fallback
    is disabled."""


@dataclass(frozen=True)
class RerankResult:
    """One document of the answer. ``relevance_score`` is ``None`` in a fallback answer: there
    is no reranker score, and a made-up one would look real downstream."""

    index: int
    relevance_score: float | None
    document: str | None = None


@dataclass(frozen=True)
class RerankResponse:
    results: list[RerankResult]
    model: str | None = None
    fallback: bool = False
    fallback_reason: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    id: str | None = None
    latency_s: float = 0.0


class CircuitBreaker:
    """Closed → (``failure_threshold`` consecutive failures) → open: calls are refused at once
    for ``reset_timeout`` s → half-open: one trial call; success closes, failure re-opens.

    Thread-safe; shared by the sync and async clients (it never blocks for long)."""

    def __init__(
        self,
        failure_threshold: int = 3,
        reset_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        self.failure_threshold, self.reset_timeout, self._clock = failure_threshold, reset_timeout, clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> str:
        with self._lock:
            if self._opened_at is None:
                return "closed"
            return "half_open" if self._clock() - self._opened_at >= self.reset_timeout else "open"

    def allow(self) -> bool:
        """May a request go out now? In half-open state only one trial request may."""
        with self._lock:
            if self._opened_at is None:
                return True
            if self._clock() - self._opened_at < self.reset_timeout or self._trial_in_flight:
                return False
            self._trial_in_flight = True
            return True

    def record_success(self) -> None:
        with self._lock:
            self._failures, self._opened_at, self._trial_in_flight = 0, None, False

    def abandon(self) -> None:
        """A call ended without a verdict (cancelled, interrupted): free the trial slot."""
        with self._lock:
            self._trial_in_flight = False

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            self._trial_in_flight = False
            if self._opened_at is not None or self._failures >= self.failure_threshold:
                self._opened_at = self._clock()  # (re-)open: a failed trial waits a full period again


class _ServerFailure(Exception):
    """Internal: the server could not answer; carries the reason for ``fallback_reason``."""


@dataclass(frozen=True)
class _Call:
    """Internal: one ``rerank`` call on its way: what to send, and what a fallback needs."""

    query: str
    documents: Sequence[str]
    top_n: int | None
    payload: dict[str, Any]
    started: float


def _error_message(response: httpx.Response) -> tuple[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return (response.text.strip()[:300] or response.reason_phrase), response.text
    if isinstance(body, dict):
        err = body.get("error", body.get("detail", body.get("message")))
        if isinstance(err, dict):
            return str(err.get("message", err)), body
        if err is not None:
            return str(err), body
    return str(body)[:300], body


class _ClientBase:
    """Everything but the I/O, shared by the sync and async clients: building the request,
    reading the answer or the error, the circuit breaker's books and the fallback. A subclass's
    ``rerank`` is ``_start``, the POST, then ``_on_response`` (or ``_on_error`` if it raised)."""

    _http_class: type[httpx.Client] | type[httpx.AsyncClient]  # made when no ``http_client`` is given
    _timeout_errors: tuple[type[BaseException], ...] = (httpx.TimeoutException,)

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 2.0,
        *,
        model: str | None = None,
        fallback: FallbackMode | bool | None = "input",
        failure_threshold: int = 3,
        reset_timeout: float = 30.0,
        path: str = "/v1/rerank",
        breaker: CircuitBreaker | None = None,
        http_client: httpx.Client | httpx.AsyncClient | None = None,
    ) -> None:
        if fallback is True:
            fallback = "input"
        if fallback not in ("input", "bm25", None, False):
            raise ValueError("fallback must be 'input', 'bm25', True or None/False")
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + path
        self.timeout = timeout
        self.model = model
        self.fallback: FallbackMode | None = fallback or None
        self.breaker = breaker or CircuitBreaker(failure_threshold, reset_timeout)
        api_key = api_key if api_key is not None else os.environ.get("RANKSERVE_API_KEY")
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = http_client or self._http_class(timeout=httpx.Timeout(timeout))

    def _payload(self, query: str, documents: Sequence[str], top_n: int | None, instruction: str | None) -> dict:
        body: dict[str, Any] = {"query": query, "documents": list(documents), "return_documents": False}
        if top_n is not None:
            body["top_n"] = top_n
        if instruction is not None:
            body["instruction"] = instruction
        if self.model is not None:
            body["model"] = self.model
        return body

    def _parse(self, response: httpx.Response, documents: Sequence[str], started: float) -> RerankResponse:
        """Turn an HTTP answer into a response, a :class:`RerankRequestError` (4xx) or a
        :class:`_ServerFailure` (5xx or a 2xx body that is not a rerank answer)."""
        if 400 <= response.status_code < 500:
            message, body = _error_message(response)
            raise RerankRequestError(response.status_code, message, body)
        if response.status_code >= 500:
            message, _ = _error_message(response)
            raise _ServerFailure(f"server error {response.status_code}: {message}")
        try:
            body = response.json()
            results = [
                RerankResult(int(r["index"]), float(r["relevance_score"]), documents[int(r["index"])])
                for r in body["results"]
            ]
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise _ServerFailure(f"malformed response from {self.url}: {exc!r}") from None
        return RerankResponse(
            results=results,
            model=body.get("model"),
            usage=body.get("usage") or {},
            id=body.get("id"),
            latency_s=time.perf_counter() - started,
        )

    def _fallback(self, call: _Call, reason: str) -> RerankResponse:
        if self.fallback is None:
            raise RerankUnavailableError(reason)
        logger.warning("rerank fallback (%s order): %s", self.fallback, reason)
        order = list(range(len(call.documents)))
        if self.fallback == "bm25":
            order = bm25_order(call.query, call.documents)
        if call.top_n is not None:
            order = order[: call.top_n]
        return RerankResponse(
            results=[RerankResult(i, None, call.documents[i]) for i in order],
            model=None,
            fallback=True,
            fallback_reason=reason,
            latency_s=time.perf_counter() - call.started,
        )

    def _start(
        self, query: str, documents: Sequence[str], top_n: int | None, instruction: str | None
    ) -> _Call | RerankResponse:
        """The request to send, or the answer when there is none to send: an empty list (answered
        locally instead of provoking a 400) or an open circuit (fallback at once)."""
        call = _Call(query, documents, top_n, self._payload(query, documents, top_n, instruction), time.perf_counter())
        if len(documents) == 0:
            return RerankResponse(results=[], model=self.model)
        if not self.breaker.allow():
            return self._fallback(call, "circuit open: server failed repeatedly")
        return call

    def _on_response(self, call: _Call, response: httpx.Response) -> RerankResponse:
        """The server answered: its results, a 4xx raised as :class:`RerankRequestError` (the
        server is alive, so the breaker counts a success either way), or a fallback on a 5xx or
        an answer that is not a rerank answer."""
        try:
            result = self._parse(response, call.documents, call.started)
        except RerankRequestError:
            self.breaker.record_success()  # the server is alive; the request was wrong
            raise
        except _ServerFailure as failure:
            return self._failed(call, str(failure))
        except BaseException:  # no verdict on the server
            self.breaker.abandon()
            raise
        self.breaker.record_success()
        return result

    def _on_error(self, call: _Call, exc: BaseException) -> RerankResponse:
        """The POST raised ``exc``: a timeout or a connection error falls back; anything else
        (cancelled, interrupted) gives no verdict on the server, frees the breaker's trial slot
        and is re-raised."""
        if isinstance(exc, self._timeout_errors):
            return self._failed(call, f"timeout after {self.timeout}s")
        if isinstance(exc, httpx.TransportError):
            return self._failed(call, f"connection error: {exc!r}")
        self.breaker.abandon()
        raise exc

    def _failed(self, call: _Call, reason: str) -> RerankResponse:
        self.breaker.record_failure()
        return self._fallback(call, reason)


def bm25_order(query: str, documents: Sequence[str]) -> list[int]:
    """Positions of ``documents`` by BM25 against ``query`` (ties keep input order).

    Never raises: it runs exactly when the server is down, so when BM25 cannot rank (no
    document has an indexable token, say only stop words or punctuation) or returns an
    incomplete order, the caller's input order is the answer.
    """
    n = len(documents)
    try:
        from rankserve.pipeline.retrieval import BM25Retriever

        ranked = [i for i, _ in BM25Retriever(list(documents)).search(query, n, range(n))]
    except Exception as exc:  # noqa: BLE001 - the fallback of the fallback is the input order
        logger.warning("BM25 fallback could not rank (%s: %s); keeping the input order", type(exc).__name__, exc)
        return list(range(n))
    seen = set(ranked)
    if len(seen) != len(ranked) or not seen <= set(range(n)):
        return list(range(n))
    return ranked + [i for i in range(n) if i not in seen]


class RerankClient(_ClientBase):
    """Synchronous client. ``timeout`` (seconds) bounds each phase of the HTTP exchange
    (connect, send, wait for the answer). ``fallback``: ``"input"`` (default, the caller's order),
    ``"bm25"``, or ``None`` to raise :class:`RerankUnavailableError` instead."""

    _http_class = httpx.Client

    def rerank(
        self, query: str, documents: Sequence[str], top_n: int | None = None, instruction: str | None = None
    ) -> RerankResponse:
        call = self._start(query, documents, top_n, instruction)
        if isinstance(call, RerankResponse):
            return call
        try:
            response = self._http.post(self.url, json=call.payload, headers=self.headers)
        except BaseException as exc:  # judged by _on_error: fallback, or re-raised
            return self._on_error(call, exc)
        return self._on_response(call, response)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RerankClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncRerankClient(_ClientBase):
    """Asyncio client with the same behaviour; here ``timeout`` is a hard deadline for the
    whole call (``asyncio.wait_for``), so a slowly trickling answer cannot stretch it."""

    _http_class = httpx.AsyncClient
    _timeout_errors = (httpx.TimeoutException, asyncio.TimeoutError)  # asyncio's: the wait_for deadline

    async def rerank(
        self, query: str, documents: Sequence[str], top_n: int | None = None, instruction: str | None = None
    ) -> RerankResponse:
        call = self._start(query, documents, top_n, instruction)
        if isinstance(call, RerankResponse):
            return call
        try:
            response = await asyncio.wait_for(
                self._http.post(self.url, json=call.payload, headers=self.headers), timeout=self.timeout
            )
        except BaseException as exc:  # judged by _on_error: fallback, or re-raised
            return self._on_error(call, exc)
        return self._on_response(call, response)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncRerankClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
