"""A small async client for the RankServe HTTP API, as the UI needs it.

Why the simple ``POST /rerank`` (``texts``) and not ``/v1/rerank``: it returns every
document's score in input order plus the ranks, so the UI gets the *full* ranking in one call
(compare mode needs the rank of documents outside ``top_n``), and it says whether any
document was truncated, which ``/v1/rerank`` does not. Both endpoints rank identically (score
descending, ties in input order); the browser test checks the UI against ``/v1/rerank``.

Neither endpoint says *which* document was truncated, so when a response reports truncation
the client asks once per document (concurrently; the server batches them), which doubles the
work only for requests that actually hit the token budget.

Every HTTP failure is turned into a :class:`~rankserve.ui.messages.FriendlyError`.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from rankserve.ui import messages

DEFAULT_TIMEOUT = httpx.Timeout(900.0, connect=5.0)
PROBE_LIMIT = 200  # more documents than this: report "some truncated" without naming them
PROBE_CONCURRENCY = 8


@dataclass(frozen=True)
class Ranking:
    """One rerank answer in input order, with what the page shows about it."""

    documents: list[str]
    scores: list[float]
    ranks: list[int]
    any_truncated: bool
    truncated: list[bool | None]  # per document; None: unknown
    prompt_tokens: int
    latency_s: float
    model: str
    request_id: str | None = None

    def order(self) -> list[int]:
        """Document indices best first (the server's ranks; ties already in input order)."""
        return sorted(range(len(self.ranks)), key=lambda i: self.ranks[i])


@dataclass(frozen=True)
class Presets:
    names: list[str]
    instructions: dict[str, str]
    default: str | None


@dataclass
class RankServeAPI:
    """Talks to one server. ``transport`` lets the mounted UI call its own app in-process
    (the request still passes the server's auth middleware, with the key the user typed)."""

    base_url: str
    api_key: str | None = None
    transport: httpx.AsyncBaseTransport | None = None
    display_url: str | None = None
    timeout: httpx.Timeout = field(default_factory=lambda: DEFAULT_TIMEOUT)

    @property
    def url(self) -> str:
        return self.display_url or self.base_url

    def _client(self) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        return httpx.AsyncClient(
            base_url=self.base_url, headers=headers, transport=self.transport, timeout=self.timeout
        )

    async def _call(self, client: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await client.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            if isinstance(exc, httpx.ConnectTimeout):
                raise messages.unreachable(self.url) from exc
            raise messages.client_timeout(self.url, self.timeout.read or 0) from exc
        except (httpx.TransportError, OSError) as exc:
            raise messages.unreachable(self.url) from exc
        if response.status_code >= 400:
            raise self._friendly(response, kwargs.get("json"))
        return response

    def _friendly(self, response: httpx.Response, body: Any) -> messages.FriendlyError:
        """The server's error JSON, turned into a sentence that says what to do."""
        status = response.status_code
        try:
            error = response.json().get("error", {})
            detail, kind = str(error.get("message", "")), str(error.get("type", ""))
        except (ValueError, AttributeError):
            return messages.not_rankserve(self.url, status)
        sent = len(body.get("texts", [])) if isinstance(body, dict) else 0
        if status == 401:
            return messages.needs_key(bool(self.api_key))
        if status == 413:
            match = re.search(r"limit (\d+)", detail)
            limit = int(match.group(1)) if match and kind == "too_many_documents" else None
            return messages.too_many_documents(limit, sent)
        if status == 503:
            if kind in ("model_loading", "model_load_failed") or "loading" in detail:
                return messages.loading()
            return messages.busy(response.headers.get("retry-after"))
        if status == 504:
            return messages.server_timeout(detail)
        if status in (400, 404, 422):
            return messages.invalid_request(detail)
        return messages.server_error(status, detail)

    async def presets(self) -> Presets:
        async with self._client() as client:
            data = (await self._call(client, "GET", "/v1/presets")).json()
        items = {str(p["name"]): str(p["instruction"]) for p in data.get("data", [])}
        return Presets(names=list(items), instructions=items, default=data.get("default"))

    async def models(self) -> list[str]:
        async with self._client() as client:
            data = (await self._call(client, "GET", "/v1/models")).json()
        return [str(m["id"]) for m in data.get("data", [])]

    async def rerank(
        self,
        query: str,
        documents: list[str],
        *,
        instruction: str | None = None,
        preset: str | None = None,
        truncation: str | None = None,
        model: str | None = None,
    ) -> Ranking:
        """Score all documents; ``latency_s`` is the main call's wall time as the UI saw it."""
        body: dict[str, Any] = {"query": query, "texts": documents}
        for key, value in (("instruction", instruction), ("preset", preset), ("truncation", truncation)):
            if value:
                body[key] = value
        if model:
            body["model"] = model
        async with self._client() as client:
            started = time.perf_counter()
            response = await self._call(client, "POST", "/rerank", json=body)
            latency = time.perf_counter() - started
            data = response.json()
            any_truncated = bool(data.get("truncated"))
            if not any_truncated or truncation == "chunks":
                truncated: list[bool | None] = [False] * len(documents)
            elif len(documents) == 1:
                truncated = [True]
            else:
                truncated = await self._probe_truncation(client, body, documents)
        return Ranking(
            documents=documents,
            scores=[float(s) for s in data["scores"]],
            ranks=[int(r) for r in data["ranks"]],
            any_truncated=any_truncated,
            truncated=truncated,
            prompt_tokens=int(data.get("usage", {}).get("prompt_tokens", 0)),
            latency_s=latency,
            model=str(data.get("model", "")),
            request_id=response.headers.get("x-request-id"),
        )

    async def _probe_truncation(
        self, client: httpx.AsyncClient, body: dict[str, Any], documents: list[str]
    ) -> list[bool | None]:
        """Which documents were cut: one single-document request each (truncation is per pair)."""
        if len(documents) > PROBE_LIMIT:
            return [None] * len(documents)
        gate = asyncio.Semaphore(PROBE_CONCURRENCY)

        async def probe(doc: str) -> bool | None:
            async with gate:
                try:
                    response = await client.post("/rerank", json={**body, "texts": [doc]})
                    return bool(response.json()["truncated"]) if response.status_code == 200 else None
                except (httpx.HTTPError, ValueError, KeyError):
                    return None

        return list(await asyncio.gather(*(probe(d) for d in documents)))
