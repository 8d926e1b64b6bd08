"""Text Embeddings Inference (TEI) routes: ``POST /tei/rerank``, ``GET /info`` and ``/tei/info``,
``GET /tei/health``.

Point a TEI client's base URL at ``http://HOST:8000/tei`` and it works unmodified. Errors use
TEI's body, ``{"error": str, "error_type": str}``, with our status codes (which are the more
specific ones: 400 empty input, 413 too long or too many, 503 loading or busy, 504 timeout).
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from rankserve.engine.types import sort_by_score
from rankserve.errors import InvalidInputError, InvalidTextError
from rankserve.server import bodies, scoring
from rankserve.server.errors import APIError, validation_message
from rankserve.server.schemas.tei import TEIError, TEIRank, TEIRerankRequest

router = APIRouter(tags=["tei"])

PREFIX = "/tei"
AUTO_TRUNCATE = True
"""What ``truncate`` means when a request leaves it out (TEI's ``--auto-truncate``). RankServe
always fits documents into its budget, so it reports and applies ``true``."""

DOCKER_LABEL_ENV = "RANKSERVE_DOCKER_LABEL"


def _error_type(exc: APIError) -> str:
    """TEI's ``error_type`` names for our statuses (``Empty``: the engine's text check found an empty input)."""
    status = exc.status
    cause = exc.__cause__
    if isinstance(cause, InvalidTextError) and cause.empty:
        return "Empty"
    if status in (400, 404, 413, 422):
        return "Validation"
    if exc.type == "server_busy":
        return "Overloaded"
    if status == 503:
        return "Unhealthy"
    return "Backend"


def _tei_error(exc: APIError) -> JSONResponse:
    body = TEIError(error=exc.message, error_type=_error_type(exc))
    return JSONResponse(body.model_dump(), status_code=exc.status, headers=exc.headers)


async def _parse(request: Request) -> TEIRerankRequest:
    """The body through the same reader as every route; validation errors as an APIError (TEI's body)."""
    data = await bodies.read_json(request)
    try:
        return bodies.validate(TEIRerankRequest, data)
    except RequestValidationError as exc:
        status, message = validation_message(list(exc.errors()))
        raise APIError(status, message) from exc


_BODY_SCHEMA = TEIRerankRequest.model_json_schema()


@router.post(
    f"{PREFIX}/rerank",
    summary="Rerank (Text Embeddings Inference format)",
    response_model=list[TEIRank],
    response_model_exclude_none=True,
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _BODY_SCHEMA}}}},
)
async def tei_rerank(request: Request) -> Response:
    """TEI's ``/rerank``: results sorted by score; ``raw_scores`` gives logits, ``return_text`` echoes texts."""
    try:
        body = await _parse(request)
        return JSONResponse(await _rerank(request, body))
    except APIError as exc:
        return _tei_error(exc)
    except InvalidInputError as exc:
        return _tei_error(APIError(400, str(exc)))


async def _rerank(request: Request, body: TEIRerankRequest) -> list[dict[str, Any]]:
    state = scoring.app_state(request)
    scoring.check_inputs(state, "query", "texts", [body.query], body.texts)
    truncate = AUTO_TRUNCATE if body.truncate is None else body.truncate
    policy = "tail" if body.truncation_direction.lower() == "left" else "head"
    req = scoring.build_request(state, body.query, body.texts, None, None, policy, raw_scores=body.raw_scores)
    [results] = await scoring.score(request, [req])
    if not truncate:
        cut = [r.index for r in results if r.truncated]
        if cut:
            raise APIError(
                413,
                f"Input validation error: texts{cut[:5]} do not fit the model's budget of "
                f"{state.settings.max_length} tokens per (query, text) pair; send truncate=true to cut them",
            )
    out = []
    for r in sort_by_score(results):
        rank = TEIRank(index=r.index, score=r.score)  # the head's raw value when raw_scores is set
        if body.return_text:
            rank.text = body.texts[r.index]
        out.append(rank.model_dump(exclude_none=True))
    return out


@router.get("/info", summary="The served model, described as Text Embeddings Inference does")
@router.get(f"{PREFIX}/info", include_in_schema=False)
async def info(request: Request) -> dict[str, Any]:
    state = scoring.app_state(request)
    s = state.settings
    reranker = state.reranker
    dtype = str(getattr(reranker, "dtype", s.dtype)).removeprefix("torch.")
    return {
        "model_id": state.model_name,
        "model_sha": None,
        "model_dtype": dtype,
        "model_type": {"reranker": _labels(reranker)},
        "max_concurrent_requests": None,
        "max_input_length": s.max_length,
        "max_batch_tokens": s.max_batch_tokens or getattr(reranker, "max_batch_tokens", None),
        "max_batch_requests": None,
        "max_client_batch_size": s.max_documents,
        "auto_truncate": AUTO_TRUNCATE,
        "tokenization_workers": None,
        "version": request.app.version,
        "sha": None,
        "docker_label": os.environ.get(DOCKER_LABEL_ENV) or None,
        "ready": state.health().status == "ready",
    }


def _labels(reranker: Any) -> dict[str, dict[str, Any]]:
    """One label, as TEI reports for rerankers (a two-label cross-encoder names its own)."""
    config = getattr(reranker, "config", None)
    id2label = getattr(config, "id2label", None) if getattr(reranker, "num_labels", 1) == 2 else None
    id2label = {str(k): str(v) for k, v in (id2label or {0: "LABEL_0"}).items()}
    return {"id2label": id2label, "label2id": {v: int(k) for k, v in id2label.items()}}


@router.get(f"{PREFIX}/health", summary="TEI's health check: 200 once the model is loaded, else 503")
async def health(request: Request) -> Response:
    state = scoring.app_state(request)
    if state.health().status == "ready":
        return Response(status_code=200)
    body = TEIError(error=f"model is {state.health().status}", error_type="Unhealthy")
    return JSONResponse(body.model_dump(), status_code=503, headers={"Retry-After": "5"})
