"""Health, model list, presets and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from rankserve.server import scoring
from rankserve.server.errors import APIError
from rankserve.server.presets import DEFAULT_PRESET

router = APIRouter(tags=["info"])


@router.get("/health", summary="Readiness: 200 once the model is loaded, 503 while loading")
async def health(request: Request) -> JSONResponse:
    state = scoring.app_state(request)
    health = state.health()
    body: dict = {"status": "healthy" if health.status == "ready" else health.status, "model": state.model_name}
    if health.error and health.status != "ready":
        body["error"] = health.error
    body.update(health.details)  # replicated backends: {"replicas": {"ready": r, "total": n}, ...}
    if health.status == "ready":
        return JSONResponse(body)
    return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})


def _model_card(request: Request) -> dict:
    state = scoring.app_state(request)
    return {
        "id": state.model_name,
        "object": "model",
        "created": state.created,
        "owned_by": "rankserve",
        "root": state.settings.model,
        "max_model_len": state.settings.max_length,
        "ready": state.health().status == "ready",
        "scores": _scores(state),
    }


@router.get("/v1/models", summary="Served models (OpenAI list format)")
async def models(request: Request) -> dict:
    return {"object": "list", "data": [_model_card(request)]}


@router.get("/v1/models/{model_id:path}", summary="One served model (OpenAI `models.retrieve`)")
async def model(request: Request, model_id: str) -> dict:
    card = _model_card(request)
    if model_id != card["id"]:
        raise APIError(404, f"no model {model_id!r}: this server serves {card['id']!r}", "not_found_error")
    return card


@router.get("/v1/presets", summary="Instruction presets selectable with `preset`")
async def presets(request: Request) -> dict:
    state = scoring.app_state(request)
    return {
        "object": "list",
        "default": DEFAULT_PRESET if DEFAULT_PRESET in state.presets else None,
        "data": [{"name": name, "instruction": text} for name, text in state.presets.items()],
    }


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    state = scoring.app_state(request)
    return Response(state.render_metrics(), media_type=state.metrics.content_type)


def _scores(state) -> dict | None:
    """What the served scores mean (family, probability or raw logit, formula, licence); None before loading."""
    describe = getattr(state.reranker, "describe_scores", None)
    return describe() if describe else None
