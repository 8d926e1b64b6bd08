"""The seed dialect: ``POST /rerank`` with ``texts`` -> scores and 1-based ranks in input order."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

from rankserve.server.schemas.common import InstructionFields


class SimpleRerankRequest(InstructionFields):
    query: str = Field(..., examples=["服务器CPU使用率持续100%怎么办"])
    texts: list[str] = Field(..., description="Candidate texts; answers keep this order.")


class SimpleUsage(BaseModel):
    prompt_tokens: int


class SimpleRerankResponse(BaseModel):
    model: str
    scores: list[float] = Field(..., description="Relevance in [0, 1], in input order.")
    ranks: list[int] = Field(..., description="1-based rank of each input (1 = most relevant).")
    truncated: bool = Field(..., description="True when any text was cut to fit the token budget.")
    usage: SimpleUsage
    warnings: list[str] | None = Field(None, description="Present only when something in the request was ignored.")


def compute_ranks(scores: Sequence[float]) -> list[int]:
    """1-based rank of each score, highest first; equal scores rank in input order.

    >>> compute_ranks([0.924, 0.317, 0.881])
    [1, 3, 2]
    """
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    ranks = [0] * len(scores)
    for rank, index in enumerate(order, start=1):
        ranks[index] = rank
    return ranks
