"""Plain data passed between the prompt builder, the engine and the batcher.

The split matters for batching: a request is *prepared* once (validated and tokenized),
which turns it into independent :class:`Pair` values. Pairs from many requests can then be
packed into one model batch. The engine's contract is value-typed: a list of pairs in, a list
of scores (same order) out. Nothing is written into the pairs and no pair knows its request,
so every object here pickles and can cross a process boundary (a replica in another process
or on another host); whoever batched the pairs keeps track of which scores are whose.

This module (like :mod:`rankserve.engine.prepare`) imports no torch, so a CPU-only front end
can validate and tokenize.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rankserve.engine.families import SIGMOID, Activation
from rankserve.truncation import DEFAULT_TRUNCATION, TRUNCATION_POLICIES

__all__ = [
    "DEFAULT_TRUNCATION",
    "TRUNCATION_POLICIES",
    "DocScore",
    "ListGroup",
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
    raw_scores: bool = False  # the head's raw value (a logit) instead of the family's served score


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


@dataclass(frozen=True)
class ListGroup:
    """Pairs that are scored together or not at all: every document of one listwise request.

    A listwise model (:mod:`rankserve.engine.listwise`) reads a window of documents in one sequence
    and merges the query's embedding over all windows, so no document's score exists without the
    others. ``key`` is unique per prepared request; ``size`` counts its pairs. The batcher takes a
    group whole and the engine refuses an incomplete one.
    """

    key: str
    size: int


@dataclass(eq=False)
class Pair:
    """One model input: a shared prefix (per request) followed by this pair's own tokens.

    For Qwen3 rerankers ``prefix`` holds system prompt + instruction + query and ``tokens``
    holds the document (or one window of it) plus the assistant suffix; the engine computes
    each distinct prefix once per batch. Encoder cross-encoders use an empty prefix.
    A plain value: it holds no score and no link to its request.

    Listwise pairs (``group`` set) have no prefix: ``tokens`` is this document's slice of its
    window's token ids, and a window is its pairs' tokens concatenated in document order.
    """

    doc_index: int
    window: int
    prefix: tuple[int, ...]
    tokens: list[int]
    token_type_ids: list[int] | None = None
    group: ListGroup | None = None

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
    # how the engine's raw pair scores become served ones (the model family's, see engine.families)
    activation: Activation = SIGMOID

    @property
    def num_tokens(self) -> int:
        return sum(p.num_tokens for p in self.pairs)

    def results(self, scores: Sequence[float | None]) -> list[DocScore]:
        """Fold raw pair scores (``scores[i]`` belongs to ``pairs[i]``) into one :class:`DocScore` per document.

        Input order. In ``chunks`` mode a document has several windows; its score is the best window's
        (activations are increasing, so the best raw window is the best served one). The family's
        activation is applied unless the request asked for raw scores.
        """
        if len(scores) != len(self.pairs) or any(s is None for s in scores):
            raise RuntimeError("results() called before every pair was scored")
        by_doc: dict[int, list[tuple[Pair, float]]] = {}
        for pair, score in zip(self.pairs, scores):
            by_doc.setdefault(pair.doc_index, []).append((pair, float(score)))  # type: ignore[arg-type]
        out = []
        for index in range(len(self.request.documents)):
            windows = by_doc[self.same_as.get(index, index)]
            best, best_score = max(windows, key=lambda ps: ps[1])
            if not self.request.raw_scores:
                best_score = self.activation(best_score)
            out.append(
                DocScore(
                    index=index,
                    score=best_score,
                    prompt_tokens=sum(p.num_tokens for p, _ in windows),
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
