"""A fast stand-in for the engine, for batcher and server unit tests (no model, no tokenizer, no torch).

It implements :class:`rankserve.batcher.ScoringEngine` — ``prepare`` (validate, tokenize into
value-typed pairs) and ``score_pairs`` (pairs in, raw scores out) — the way the real engine does
where the batcher can tell: the engine's own validation and error messages, a prefix shared by a
request's pairs, duplicate documents folded onto their first copy, a per-pair token cap. Its
"tokens" are words hashed to ids and its score is a word-overlap logit, so a test can know which
document should win; ``seconds_per_token`` makes a batch take time the way a forward pass does.

Every model call is recorded in ``calls``, so tests check how the batcher batched. The real tiny
engine stays covered end to end (tests/engine, tests/server, one batcher test).
"""

from __future__ import annotations

import math
import threading
import time
import zlib
from collections.abc import Sequence

from rankserve.engine.prepare import first_copies, validate
from rankserve.engine.types import DocScore, Pair, PreparedRequest, ScoreRequest

SYSTEM = (1, 2, 3)  # the "system prompt" every prefix starts with
SUFFIX = [4]  # the "assistant suffix" every pair ends with
VOCAB = 50_000


def word_id(word: str) -> int:
    """A stable id per lower-cased word (not Python's salted ``hash``)."""
    return 10 + zlib.crc32(word.lower().encode()) % VOCAB


class FakeEngine:
    """Deterministic scoring with the engine's contract; see the module docstring."""

    def __init__(self, max_length: int = 512, seconds_per_token: float = 0.0, nan_word: str | None = None) -> None:
        self.max_length = max_length
        self.seconds_per_token = seconds_per_token
        self.nan_word = word_id(nan_word) if nan_word else None  # a document with this word scores NaN
        self.calls: list[list[Pair]] = []
        self._lock = threading.Lock()
        self.model_name = "fake-reranker"

    def prepare(self, request: ScoreRequest) -> PreparedRequest:
        validate(request)
        header = [word_id(w) for w in f"{request.instruction or ''} {request.query}".split()]
        prefix = SYSTEM + tuple(header)
        cap = min(self.max_length, request.max_length or self.max_length)
        budget = max(1, cap - len(prefix) - len(SUFFIX))
        docs = list(request.documents)
        distinct, same_as = first_copies(docs)
        prepared = PreparedRequest(request, same_as=same_as)
        truncated: dict[int, bool] = {}
        for index in distinct:
            ids = [word_id(w) for w in docs[index].split()]
            truncated[index] = len(ids) > budget
            prepared.pairs.append(Pair(index, 0, prefix, ids[:budget] + SUFFIX))
        prepared.truncated = [truncated[same_as.get(i, i)] for i in range(len(docs))]
        return prepared

    def score_pairs(self, pairs: Sequence[Pair]) -> list[float]:
        """Raw logits: 4 x (share of the query's words found in the document) - 2, plus a small
        per-document term so that no two different documents tie (a misrouted score shows)."""
        with self._lock:
            self.calls.append(list(pairs))
        if self.seconds_per_token:
            time.sleep(self.seconds_per_token * sum(p.num_tokens for p in pairs))
        return [self._logit(p) for p in pairs]

    def _logit(self, pair: Pair) -> float:
        query = set(pair.prefix[len(SYSTEM) :])
        words = set(pair.tokens[: -len(SUFFIX)])
        if self.nan_word is not None and self.nan_word in words:
            return math.nan
        spread = zlib.crc32(repr(pair.tokens).encode()) % 1000 / 1000
        return 4.0 * len(query & words) / max(1, len(query)) - 2.0 + spread

    def score(self, query: str, documents: Sequence[str], instruction: str | None = None) -> list[DocScore]:
        """One request scored in one call, without a batcher: what a batched answer must equal."""
        prepared = self.prepare(ScoreRequest(query, documents, instruction))
        return prepared.results(self.score_pairs(prepared.pairs))
