"""Rerank routes: ``/rerank`` (simple or Jina/Cohere v1 shape, chosen by the body), ``/v1/rerank``
and ``/v2/rerank`` (Cohere v2)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from rankserve.engine.types import sort_by_score
from rankserve.server import scoring
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
)
from rankserve.server.schemas.common import Usage
from rankserve.server.schemas.simple import (
    SimpleRerankRequest,
    SimpleRerankResponse,
    SimpleUsage,
    compute_ranks,
)

router = APIRouter(tags=["rerank"])

RERANK_BODY_DOC = """Two formats, chosen by the body:

* with `texts`: the simple format -> `scores` and 1-based `ranks` in input order;
* with `documents`: the Jina / Cohere v1 / vLLM format -> `results` sorted by score, cut to `top_n`.
"""


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise APIError(400, f"malformed JSON body: {exc}") from exc


def _validate(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from exc


@router.post(
    "/rerank",
    summary="Rerank (simple `texts` format or Jina/Cohere `documents` format)",
    description=RERANK_BODY_DOC,
    openapi_extra={"x-rankserve-body": ["SimpleRerankRequest", "RerankRequest"]},
    responses={200: {"description": "SimpleRerankResponse or RerankResponse"}},
)
async def rerank(request: Request) -> JSONResponse:
    data = await _json_body(request)
    if isinstance(data, dict) and "texts" in data:
        return await simple_rerank(request, _validate(SimpleRerankRequest, data))
    if isinstance(data, dict) and "documents" in data:
        return _json(await jina_rerank(request, _validate(RerankRequest, data)))
    raise APIError(
        422,
        'invalid request: body must be an object with "texts" (simple format) or "documents" (Jina/Cohere)',
    )


async def simple_rerank(request: Request, body: SimpleRerankRequest) -> JSONResponse:
    state = scoring.app_state(request)
    state.check_model(body.model)
    scoring.check_inputs(state, "query", "texts", [body.query], body.texts)
    req = scoring.build_request(
        state, body.query, body.texts, body.instruction, body.preset, body.truncation, body.raw_scores
    )
    [results] = await scoring.score(request, [req])
    scores = [r.score for r in results]
    response = SimpleRerankResponse(
        model=state.model_name,
        scores=scores,
        ranks=compute_ranks(scores),
        truncated=any(r.truncated for r in results),
        usage=SimpleUsage(prompt_tokens=sum(r.prompt_tokens for r in results)),
    )
    return _json(response)


async def _ranked(request: Request, body: RerankRequest) -> tuple[list[RerankResult], int]:
    """Score a documents-style request: results sorted desc and cut to top_n, and prompt tokens."""
    state = scoring.app_state(request)
    state.check_model(body.model)
    if body.top_n is not None and body.top_n < 1:
        raise APIError(400, f"top_n must be >= 1 (got {body.top_n})")
    texts = body.texts()
    scoring.check_inputs(state, "query", "documents", [body.query], texts)
    req = scoring.build_request(
        state, body.query, texts, body.instruction, body.preset, body.truncation, body.raw_scores
    )
    [results] = await scoring.score(request, [req])
    ranked = sort_by_score(results, body.top_n)
    out = [
        RerankResult(
            index=r.index,
            relevance_score=r.score,
            document=DocumentText(text=texts[r.index]) if body.return_documents else None,
        )
        for r in ranked
    ]
    return out, sum(r.prompt_tokens for r in results)


async def jina_rerank(request: Request, body: RerankRequest) -> RerankResponse:
    results, tokens = await _ranked(request, body)
    return RerankResponse(
        id=request.state.request_id,
        model=scoring.app_state(request).model_name,
        usage=Usage(prompt_tokens=tokens, total_tokens=tokens),
        results=results,
    )


@router.post(
    "/v1/rerank",
    response_model=RerankResponse,
    response_model_exclude_none=True,
    summary="Rerank (Jina / Cohere v1 / vLLM format)",
)
async def v1_rerank(request: Request, body: RerankRequest) -> RerankResponse:
    return await jina_rerank(request, body)


@router.post(
    "/v2/rerank",
    response_model=CohereV2Response,
    response_model_exclude_none=True,
    summary="Rerank (Cohere v2 format)",
)
async def v2_rerank(request: Request, body: CohereV2Request) -> CohereV2Response:
    results, tokens = await _ranked(request, body)
    return CohereV2Response(
        id=request.state.request_id,
        model=scoring.app_state(request).model_name,
        results=results,
        meta=CohereMeta(tokens=Tokens(input_tokens=tokens)),
    )


def _json(model: BaseModel) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json", exclude_none=True))
