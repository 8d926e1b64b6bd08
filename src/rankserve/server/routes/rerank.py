"""Rerank routes: ``/rerank`` (simple or Jina/Cohere v1 shape, chosen by the body), ``/v1/rerank``
and ``/v2/rerank`` (Cohere v2)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from rankserve.engine.types import sort_by_score
from rankserve.server import bodies, scoring
from rankserve.server.errors import APIError
from rankserve.server.schemas.cohere import (
    CohereMeta,
    CohereV2Request,
    CohereV2Response,
    DocumentText,
    RerankRequest,
    RerankResponse,
    RerankResult,
    Tokens,
    Warnings,
)
from rankserve.server.schemas.common import Usage
from rankserve.server.schemas.simple import (
    SimpleRerankRequest,
    SimpleRerankResponse,
    SimpleUsage,
    compute_ranks,
)

log = logging.getLogger("rankserve.server")
router = APIRouter(tags=["rerank"])

RERANK_BODY_DOC = """Two formats, chosen by the body:

* with `texts`: the simple format -> `scores` and 1-based `ranks` in input order;
* with `documents`: the Jina / Cohere v1 / vLLM format -> `results` sorted by score, cut to `top_n`.
"""


@router.post(
    "/rerank",
    summary="Rerank (simple `texts` format or Jina/Cohere `documents` format)",
    description=RERANK_BODY_DOC,
    openapi_extra={"x-rankserve-body": ["SimpleRerankRequest", "RerankRequest"]},
    responses={200: {"description": "SimpleRerankResponse or RerankResponse"}},
)
async def rerank(request: Request) -> JSONResponse:
    data = await bodies.read_json(request)
    if isinstance(data, dict) and "texts" in data and "documents" in data:
        raise APIError(400, 'send "texts" (simple format) or "documents" (Jina/Cohere), not both')
    if isinstance(data, dict) and "texts" in data:
        warnings = _warnings(request, SimpleRerankRequest, data)
        return await simple_rerank(request, bodies.validate(SimpleRerankRequest, data), warnings)
    if isinstance(data, dict) and "documents" in data:
        warnings = _warnings(request, RerankRequest, data)
        return _json(await jina_rerank(request, bodies.validate(RerankRequest, data), warnings))
    raise APIError(
        422,
        'invalid request: body must be an object with "texts" (simple format) or "documents" (Jina/Cohere)',
    )


def _warnings(request: Request, model: type[BaseModel], data: Any) -> list[str]:
    """Unknown fields, as response warnings and one log line (a user must learn a parameter did nothing)."""
    unknown = bodies.unknown_fields(model, data)
    if not unknown:
        return []
    message = bodies.ignored_warning(unknown)
    log.warning("request %s: %s", request.state.request_id, message)
    return [message]


async def simple_rerank(request: Request, body: SimpleRerankRequest, warnings: list[str]) -> JSONResponse:
    state = scoring.app_state(request)
    state.check_model(body.model)
    scoring.check_inputs(state, "query", "texts", [body.query], body.texts)
    req = scoring.build_request(
        state, body.query, body.texts, body.instruction, body.preset, body.truncation, raw_scores=body.raw_scores
    )
    [results] = await scoring.score(request, [req])
    scores = [r.score for r in results]
    response = SimpleRerankResponse(
        model=state.model_name,
        scores=scores,
        ranks=compute_ranks(scores),
        truncated=any(r.truncated for r in results),
        usage=SimpleUsage(prompt_tokens=sum(r.prompt_tokens for r in results)),
        warnings=warnings or None,
    )
    return _json(response)


def _token_cap(body: RerankRequest) -> int | None:
    """The caller's per-pair token cap: Cohere v2's ``max_tokens_per_doc`` or vLLM's ``truncate_prompt_tokens``."""
    cap = getattr(body, "max_tokens_per_doc", None)
    vllm = body.truncate_prompt_tokens
    if vllm is not None and vllm != -1:
        if vllm < 1:
            raise APIError(400, f"truncate_prompt_tokens must be >= 1 or -1 (got {vllm})")
        cap = vllm if cap is None else min(cap, vllm)
    return cap


async def _ranked(request: Request, body: RerankRequest) -> tuple[list[RerankResult], int]:
    """Score a documents-style request: results sorted desc and cut to top_n, and prompt tokens."""
    state = scoring.app_state(request)
    state.check_model(body.model)
    texts = body.texts()
    scoring.check_inputs(state, "query", "documents", [body.query], texts)
    req = scoring.build_request(
        state,
        body.query,
        texts,
        body.instruction,
        body.preset,
        body.truncation,
        _token_cap(body),
        raw_scores=body.raw_scores,
    )
    [results] = await scoring.score(request, [req])
    ranked = sort_by_score(results, body.top_n or None)  # top_n 0: every result, as vLLM reads it
    out = [
        RerankResult(
            index=r.index,
            relevance_score=r.score,
            document=DocumentText(text=texts[r.index]) if body.return_documents else None,
        )
        for r in ranked
    ]
    return out, sum(r.prompt_tokens for r in results)


async def jina_rerank(request: Request, body: RerankRequest, warnings: list[str]) -> RerankResponse:
    results, tokens = await _ranked(request, body)
    return RerankResponse(
        id=request.state.request_id,
        model=scoring.app_state(request).model_name,
        usage=Usage(prompt_tokens=tokens, total_tokens=tokens),
        results=results,
        meta=Warnings(warnings=warnings) if warnings else None,
    )


@router.post(
    "/v1/rerank",
    response_model=RerankResponse,
    response_model_exclude_none=True,
    summary="Rerank (Jina / Cohere v1 / vLLM format)",
    openapi_extra={"x-rankserve-body": ["RerankRequest"]},
)
async def v1_rerank(request: Request) -> RerankResponse:
    data = await bodies.read_json(request)
    warnings = _warnings(request, RerankRequest, data)
    return await jina_rerank(request, bodies.validate(RerankRequest, data), warnings)


@router.post(
    "/v2/rerank",
    response_model=CohereV2Response,
    response_model_exclude_none=True,
    summary="Rerank (Cohere v2 format)",
    openapi_extra={"x-rankserve-body": ["CohereV2Request"]},
)
async def v2_rerank(request: Request) -> CohereV2Response:
    data = await bodies.read_json(request)
    warnings = _warnings(request, CohereV2Request, data)
    body = bodies.validate(CohereV2Request, data)
    results, tokens = await _ranked(request, body)
    return CohereV2Response(
        id=request.state.request_id,
        model=scoring.app_state(request).model_name,
        results=results,
        meta=CohereMeta(tokens=Tokens(input_tokens=tokens), warnings=warnings or None),
    )


def _json(model: BaseModel) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json", exclude_none=True))
