"""vLLM-compatible scoring: ``POST /score`` and ``/v1/score``."""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Request

from rankserve.server import bodies, scoring
from rankserve.server.errors import APIError
from rankserve.server.schemas.vllm import ScoreData, ScoreRequestBody, ScoreResponse, ScoreUsage, pair_up

log = logging.getLogger("rankserve.server")
router = APIRouter(tags=["score"])


EXTRA = {"x-rankserve-body": ["ScoreRequestBody"]}


@router.post("/score", response_model=ScoreResponse, summary="Score pairs (vLLM format)", openapi_extra=EXTRA)
@router.post("/v1/score", response_model=ScoreResponse, summary="Score pairs (vLLM format)", openapi_extra=EXTRA)
async def score(request: Request) -> ScoreResponse:
    data = await bodies.read_json(request)
    unknown = bodies.unknown_fields(ScoreRequestBody, data)
    if unknown:  # vLLM's way: the response is unchanged, the log says what was ignored
        log.warning("request %s: %s", request.state.request_id, bodies.ignored_warning(unknown))
    body = bodies.validate(ScoreRequestBody, data)
    state = scoring.app_state(request)
    state.check_model(body.model)
    try:
        q_name, d_name, left, right = body.sides()
    except ValueError as exc:
        raise APIError(400, str(exc)) from exc
    missing = [name for name, side in ((q_name, body.query_side()), (d_name, body.document_side())) if side is None]
    if missing:
        raise APIError(422, "invalid request: " + "; ".join(f"{name}: Field required" for name in missing))
    cap = body.truncate_prompt_tokens
    if cap is not None and cap != -1 and cap < 1:
        raise APIError(400, f"truncate_prompt_tokens must be >= 1 or -1 (got {cap})")
    cap = None if cap in (None, -1) else cap
    pairs = pair_up(left, right) if left and right else []
    if pairs is None:
        raise APIError(
            400,
            f"{q_name} has {len(left)} items and {d_name} has {len(right)}: give one {q_name} "
            f"(scored against every {d_name}) or lists of equal length (scored pairwise)",
        )
    scoring.check_inputs(state, q_name, d_name, left, [d for _, d in pairs])

    # Pairs sharing a query become one engine request, so the query prefix is computed once.
    groups: dict[str, list[int]] = {}
    for i, (query, _) in enumerate(pairs):
        groups.setdefault(query, []).append(i)
    requests = [
        scoring.build_request(
            state,
            query,
            [pairs[i][1] for i in idx],
            body.instruction,
            body.preset,
            body.truncation,
            cap,
            raw_scores=body.raw_scores,
        )
        for query, idx in groups.items()
    ]
    results = await scoring.score(request, requests)

    scores: list[float] = [0.0] * len(pairs)
    tokens = 0
    for idx, group_results in zip(groups.values(), results, strict=True):
        for i, r in zip(idx, group_results, strict=True):
            scores[i] = r.score
            tokens += r.prompt_tokens
    return ScoreResponse(
        id=f"score-{request.state.request_id}",
        created=int(time.time()),
        model=state.model_name,
        data=[ScoreData(index=i, score=s) for i, s in enumerate(scores)],
        usage=ScoreUsage(prompt_tokens=tokens, total_tokens=tokens),
    )
