"""The vLLM score dialect: ``POST /score`` and ``/v1/score``.

Pairs come as ``text_1``/``text_2`` (vLLM's names) or ``queries``/``documents`` (aliases, side
by side); each side is a string or a list: 1:1 (two strings), 1:N (one query, many documents)
or N:N (two lists of equal length, paired element by element).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from rankserve.server.schemas.common import InstructionFields, Usage, count


class ScoreRequestBody(InstructionFields):
    text_1: str | list[str] | None = Field(None, description="Query or queries (vLLM name).")
    text_2: str | list[str] | None = Field(None, description="Document or documents (vLLM name).")
    queries: str | list[str] | None = Field(None, description="Alias of text_1.")
    documents: str | list[str] | None = Field(None, description="Alias of text_2.")
    truncate_prompt_tokens: count(-1) | None = Field(
        None, description="Cap each (query, document) prompt at this many tokens; -1: the server's."
    )

    def sides(self) -> tuple[str, str, list[str], list[str]]:
        """The field names the caller used (for messages) and both sides as lists.

        Each side is read from whichever of its two names was sent (``text_1`` or ``queries``,
        ``text_2`` or ``documents``); a side sent under neither name is named after the
        other side's spelling. Raises ValueError when one side is sent under both names.
        """
        q_name = _sent_name(self, "text_1", "queries")
        d_name = _sent_name(self, "text_2", "documents")
        if q_name is None:
            q_name = "queries" if d_name == "documents" else "text_1"
        if d_name is None:
            d_name = "documents" if q_name == "queries" else "text_2"

        def as_list(v: str | list[str] | None) -> list[str]:
            return [] if v is None else [v] if isinstance(v, str) else list(v)

        return q_name, d_name, as_list(getattr(self, q_name)), as_list(getattr(self, d_name))

    def query_side(self) -> str | list[str] | None:
        """The query side as sent (None when sent under neither name)."""
        return self.text_1 if self.text_1 is not None else self.queries

    def document_side(self) -> str | list[str] | None:
        """The document side as sent (None when sent under neither name)."""
        return self.text_2 if self.text_2 is not None else self.documents


def _sent_name(body: ScoreRequestBody, name: str, alias: str) -> str | None:
    """Which of two names for one side the caller used; both is an error."""
    if getattr(body, name) is not None and getattr(body, alias) is not None:
        raise ValueError(f"send {name} or {alias}, not both (they are the same field)")
    if getattr(body, alias) is not None:
        return alias
    return name if getattr(body, name) is not None else None


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
