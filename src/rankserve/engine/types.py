"""Plain data passed between the prompt builder, the engine and the batcher.

The split matters for batching: a request is *prepared* once (validated and tokenized),
which turns it into independent :class:`Pair` objects. Pairs from many requests can then be
packed into one model batch; each pair points back at its request so the request can be
answered as soon as its own pairs are scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rankserve.truncation import DEFAULT_TRUNCATION, TRUNCATION_POLICIES

__all__ = [
    "DEFAULT_TRUNCATION",
    "TRUNCATION_POLICIES",
    "DocScore",
    "Pair",
    "PreparedRequest",
    "ScoreRequest",
    "sort_by_score",
]


@dataclass(frozen=True)
class ScoreRequest:
    """One query against many documents, as a caller states it."""

    query: str
    documents: Sequence[str]
    instruction: str | None = None
    truncation: str = DEFAULT_TRUNCATION
    # A caller's own cap on each (query, document) prompt, in tokens; the engine's max_length
    # still applies when it is smaller. None: the engine's max_length alone.
    max_length: int | None = None


@dataclass(frozen=True)
class DocScore:
    """The engine's answer for one document.

    ``prompt_tokens`` counts every token the model read for this document (prefix included,
    all windows added up in ``chunks`` mode). ``window`` is the winning window in ``chunks``
    mode and ``None`` otherwise.
    """

    index: int
    score: float
    prompt_tokens: int
    truncated: bool
    window: int | None = None
    windows: int = 1


@dataclass(eq=False)
class Pair:
    """One model input: a shared prefix (per request) followed by this pair's own tokens.

    For Qwen3 rerankers ``prefix`` holds system prompt + instruction + query and ``tokens``
    holds the document (or one window of it) plus the assistant suffix; the engine computes
    each distinct prefix once per batch. Encoder cross-encoders use an empty prefix.
    """

    owner: PreparedRequest
    doc_index: int
    window: int
    prefix: tuple[int, ...]
    tokens: list[int]
    token_type_ids: list[int] | None = None
    score: float | None = None

    @property
    def num_tokens(self) -> int:
        return len(self.prefix) + len(self.tokens)


@dataclass(eq=False)
class PreparedRequest:
    """A validated, tokenized request: its pairs and how to fold their scores back."""

    request: ScoreRequest
    pairs: list[Pair] = field(default_factory=list)
    truncated: list[bool] = field(default_factory=list)  # one flag per document
    # document index -> index of its first identical copy; duplicates get no pairs of their own,
    # so identical documents always get identical scores (and tie, ranked by input order)
    same_as: dict[int, int] = field(default_factory=dict)

    @property
    def num_tokens(self) -> int:
        return sum(p.num_tokens for p in self.pairs)

    @property
    def done(self) -> bool:
        return all(p.score is not None for p in self.pairs)

    def results(self) -> list[DocScore]:
        """Fold pair scores into one :class:`DocScore` per document, in input order.

        In ``chunks`` mode a document has several windows; its score is the best window's.
        """
        by_doc: dict[int, list[Pair]] = {}
        for pair in self.pairs:
            if pair.score is None:
                raise RuntimeError("results() called before every pair was scored")
            by_doc.setdefault(pair.doc_index, []).append(pair)
        out = []
        for index in range(len(self.request.documents)):
            windows = by_doc[self.same_as.get(index, index)]
            best = max(windows, key=lambda p: p.score)
            out.append(
                DocScore(
                    index=index,
                    score=float(best.score),
                    prompt_tokens=sum(p.num_tokens for p in windows),
                    truncated=self.truncated[index],
                    window=best.window if len(windows) > 1 else None,
                    windows=len(windows),
                )
            )
        return out


def sort_by_score(results: Sequence[DocScore], top_n: int | None = None) -> list[DocScore]:
    """Highest score first; ties keep input order (Python's sort is stable)."""
    ranked = sorted(results, key=lambda r: -r.score)
    return ranked if top_n is None else ranked[:top_n]
