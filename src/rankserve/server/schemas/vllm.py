"""The vLLM score dialect: ``POST /score`` and ``/v1/score``.

Pairs come as ``text_1``/``text_2`` (vLLM's names) or ``queries``/``documents``; each side is
a string or a list: 1:1 (two strings), 1:N (one query, many documents) or N:N (two lists of
equal length, paired element by element).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from rankserve.server.schemas.common import InstructionFields, Usage


class ScoreRequestBody(InstructionFields):
    text_1: str | list[str] | None = Field(None, description="Query or queries (vLLM name).")
    text_2: str | list[str] | None = Field(None, description="Document or documents (vLLM name).")
    queries: str | list[str] | None = Field(None, description="Alias of text_1.")
    documents: str | list[str] | None = Field(None, description="Alias of text_2.")
    truncate_prompt_tokens: int | None = Field(
        None, description="Accepted for compatibility; the server's --max-length budget applies."
    )

    def sides(self) -> tuple[str, str, list[str], list[str]]:
        """Field names used (for messages) and both sides as lists."""
        if self.text_1 is not None or self.text_2 is not None:
            names, left, right = ("text_1", "text_2"), self.text_1, self.text_2
        else:
            names, left, right = ("queries", "documents"), self.queries, self.documents

        def as_list(v: str | list[str] | None) -> list[str]:
            return [] if v is None else [v] if isinstance(v, str) else list(v)

        return names[0], names[1], as_list(left), as_list(right)


class ScoreData(BaseModel):
    index: int
    object: Literal["score"] = "score"
    score: float


class ScoreUsage(Usage):
    completion_tokens: int = 0


class ScoreResponse(BaseModel):
    id: str
    object: Literal["list"] = "list"
    created: int
    model: str
    data: list[ScoreData]
    usage: ScoreUsage


def pair_up(left: list[str], right: list[str]) -> list[tuple[str, str]] | None:
    """(query, document) pairs: 1:N broadcasts the single query, N:N zips; None if lengths clash."""
    if len(left) == 1:
        return [(left[0], doc) for doc in right]
    if len(left) == len(right):
        return list(zip(left, right, strict=True))
    return None
