"""Run scoring work for one HTTP request: validation, batching, timeout, disconnects.

Every dialect (simple, Cohere/Jina, vLLM) ends up here with a list of engine
``ScoreRequest``s, so overload, timeouts and client disconnects behave the same on every
route. The request log fields (docs, tokens, queue and compute time) are filled in here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from fastapi import Request

from rankserve.batcher import NonFiniteScoreError, QueueFullError
from rankserve.engine.types import DEFAULT_TRUNCATION, DocScore, ScoreRequest
from rankserve.engine.validation import check_texts
from rankserve.errors import (
    DeadlineExceededError,
    EngineError,
    InvalidInputError,
    InvalidTextError,
    RequestTooLargeError,
    UnavailableError,
)
from rankserve.server.backend import RequestStats
from rankserve.server.errors import APIError
from rankserve.server.presets import resolve_instruction
from rankserve.server.state import AppState

log = logging.getLogger("rankserve.server")


CANCEL_WAIT_S = 2.0
"""How long an answered-early request (timeout, disconnect) waits for its backend work to be cancelled."""


class ClientDisconnected(Exception):
    """The client went away before its answer was ready; nothing is sent."""


def app_state(request: Request) -> AppState:
    return request.app.state.rankserve


def check_inputs(
    state: AppState, query_field: str, docs_field: str, queries: Sequence[str], documents: Sequence[str]
) -> None:
    """The engine's text checks, before tokenizing, in this dialect's field names; then ``--max-documents``."""
    try:
        check_texts(queries, documents)
    except InvalidTextError as exc:
        raise APIError(400, renamed(exc, query_field, docs_field)) from exc
    limit = state.settings.max_documents
    if len(documents) > limit:
        raise APIError(
            413,
            f"too many {docs_field}: {len(documents)} > limit {limit} (--max-documents)",
            "too_many_documents",
        )


def renamed(exc: InvalidTextError, query_field: str, docs_field: str) -> str:
    """The engine's message with the dialect's field names: ``document 2 is empty`` -> ``texts[2] is empty``.

    An empty or blank query or an empty list is one message naming both fields, as the API has always said.
    """
    message = str(exc)
    if exc.index is not None:
        return f"{docs_field}[{exc.index}]" + message.removeprefix(f"document {exc.index}")
    if exc.empty:
        return f"{query_field} and {docs_field} cannot be empty"
    return (query_field if exc.field == "query" else docs_field) + message.removeprefix(exc.field)


def build_request(
    state: AppState,
    query: str,
    documents: Sequence[str],
    instruction: str | None,
    preset: str | None,
    truncation: str | None,
    max_length: int | None = None,
    raw_scores: bool = False,
) -> ScoreRequest:
    """The engine request; ``max_length`` is the caller's own cap on each pair's tokens (None: the server's)."""
    return ScoreRequest(
        query=query,
        documents=list(documents),
        instruction=resolve_instruction(state.presets, instruction, preset),
        truncation=truncation or DEFAULT_TRUNCATION,
        max_length=max_length,
        raw_scores=raw_scores,
    )


CHARS_PER_TOKEN_CEILING = 16
"""No tokenizer averages more characters per token over a real document; used to refuse huge
chunked inputs before spending CPU on tokenizing them."""


def check_request_size(state: AppState, score_requests: Sequence[ScoreRequest]) -> None:
    """413 before tokenizing when the text is so long it cannot fit ``--max-request-tokens``.

    Only chunked documents can grow past one pair's budget, so only they can be judged by
    their length; the backend counts the exact tokens after tokenizing, before queueing.
    """
    limit = state.settings.max_request_tokens
    if limit <= 0:
        return
    chars = sum(len(d) for r in score_requests if r.truncation == "chunks" for d in r.documents)
    if chars > limit * CHARS_PER_TOKEN_CEILING:
        raise APIError(
            413,
            f"documents are {chars} characters long with truncation 'chunks': far over the limit of {limit} "
            f"tokens per request (--max-request-tokens); split them or use truncation 'head_tail'",
            "request_too_large",
        )


async def _wait_for_disconnect(request: Request) -> None:
    """Returns when the client closes the connection (the body has already been read)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def score(request: Request, score_requests: Sequence[ScoreRequest]) -> list[list[DocScore]]:
    """Score every ScoreRequest through the backend; one DocScore list each, in input order.

    Raises APIError for overload (503), timeout (504), non-finite scores and engine failures
    (500), and ClientDisconnected when the client leaves first; in every case the backend's
    work for the request is cancelled (its queued pairs are dropped).
    """
    state = app_state(request)
    backend = state.require_backend()
    ctx = request.state
    ctx.docs = sum(len(r.documents) for r in score_requests)
    stats = RequestStats()
    check_request_size(state, score_requests)
    timeout = state.settings.deadline
    # the token ceiling is checked after tokenizing, before anything is queued: a refused request costs no model time
    ceiling = max(0, state.settings.max_request_tokens)
    work_task = asyncio.create_task(backend.score(score_requests, timeout, stats, max_tokens=ceiling))
    disconnect_task = asyncio.create_task(_wait_for_disconnect(request))
    try:
        done, _ = await asyncio.wait({work_task, disconnect_task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if work_task in done:
            return _unwrap(work_task, state, ctx, timeout)
        if disconnect_task in done:
            raise ClientDisconnected()
        raise APIError(504, f"request took longer than {timeout:g} s (--request-timeout)")
    finally:
        for task in (work_task, disconnect_task):
            if not task.done():
                task.cancel()
        if not work_task.done():  # let the backend drop the request's queued work before we answer
            await asyncio.wait({work_task}, timeout=CANCEL_WAIT_S)
        ctx.tokens = stats.tokens
        if stats.queue_ms is not None:
            ctx.queue_ms = stats.queue_ms
        if stats.compute_ms is not None:
            ctx.compute_ms = stats.compute_ms


def _unwrap(
    task: asyncio.Task[list[list[DocScore]]], state: AppState, ctx: object, timeout: float | None
) -> list[list[DocScore]]:
    """The task's result, with batcher/engine failures turned into HTTP errors.

    Every failure becomes an :class:`APIError` here, inside the request path, so the JSON
    error carries ``X-Request-Id`` and is logged once, with the request id.
    """
    try:
        results = task.result()
    except APIError:
        raise
    except RequestTooLargeError as exc:
        raise APIError(
            413,
            f"request is {exc.tokens} tokens (every document window counted), over the limit of {exc.limit} "
            f"tokens per request (--max-request-tokens)",
            "request_too_large",
        ) from exc
    except QueueFullError as exc:
        raise APIError(503, str(exc), "server_busy", {"Retry-After": str(exc.retry_after)}) from exc
    except UnavailableError as exc:  # shutting down, worker gone, no replica reachable
        raise APIError(503, str(exc), "service_unavailable", {"Retry-After": str(exc.retry_after)}) from exc
    except DeadlineExceededError as exc:
        limit = f"{timeout:g} s" if timeout is not None else "its deadline"
        raise APIError(504, f"request cannot finish within {limit} (--request-timeout): {exc}") from exc
    except NonFiniteScoreError as exc:
        log.error("request %s: %s", getattr(ctx, "request_id", "-"), exc)
        raise APIError(500, str(exc), "non_finite_score") from exc
    except EngineError as exc:
        log.error("request %s: scoring failed: %s", getattr(ctx, "request_id", "-"), exc)
        raise APIError(500, f"scoring failed: {exc}") from exc
    except InvalidInputError:
        raise  # the caller's input, found while tokenizing: a 400 from its handler
    except Exception as exc:  # an engine bug or broken checkpoint: one log line with the request id
        log.error(
            "request %s: scoring failed unexpectedly: %s: %s",
            getattr(ctx, "request_id", "-"),
            type(exc).__name__,
            exc,
            exc_info=exc,
        )
        raise APIError(500, f"scoring failed: internal error ({type(exc).__name__}); see the server log") from exc
    state.metrics.truncations.inc(sum(r.truncated for rs in results for r in rs))
    return results
