"""vLLM-compatible scoring: ``POST /score`` and ``/v1/score``."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request

from rankserve.server import scoring
from rankserve.server.errors import APIError
from rankserve.server.schemas.vllm import ScoreData, ScoreRequestBody, ScoreResponse, ScoreUsage, pair_up

router = APIRouter(tags=["score"])


@router.post("/score", response_model=ScoreResponse, summary="Score pairs (vLLM format)")
@router.post("/v1/score", response_model=ScoreResponse, summary="Score pairs (vLLM format)")
async def score(request: Request, body: ScoreRequestBody) -> ScoreResponse:
    state = scoring.app_state(request)
    state.check_model(body.model)
    try:
        q_name, d_name, left, right = body.sides()
    except ValueError as exc:
        raise APIError(400, str(exc)) from exc
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
            state, query, [pairs[i][1] for i in idx], body.instruction, body.preset, body.truncation, body.raw_scores
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
