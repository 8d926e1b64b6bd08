"""The Text Embeddings Inference (TEI) rerank dialect: ``POST /tei/rerank`` and ``GET /info``.

TEI clients (``tei-client``, LlamaIndex's ``TextEmbeddingInference`` postprocessor, the
``rerankers`` TEI provider) post ``{query, texts, ...}`` and expect a bare list of
``{index, score, text?}`` sorted by score. Our own ``/rerank`` with ``texts`` answers the
simple format instead, so this dialect lives under a path prefix a client's base URL can
point at. Unknown fields (``model``, ``top_n`` sent by some clients) are ignored, as TEI does.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

TruncationDirection = Literal["Right", "Left", "right", "left"]

FLOAT32_ONE_BELOW = 1.0 - 2.0**-24
"""The largest float32 below 1: the engine's sigmoid runs in float32, so a probability of
exactly 1.0 means "at least this"; its logit (about 16.6) is what ``raw_scores`` reports then."""

FLOAT32_TINY = 2.0**-149
"""The smallest positive float32 (a probability of exactly 0 reports this one's logit, about -103)."""


class TEIRerankRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    query: str
    texts: list[str]
    raw_scores: bool = Field(False, description="Return the model's logit instead of the probability.")
    return_text: bool = Field(False, description="Echo each text in its result.")
    truncate: bool | None = Field(
        None,
        description="Cut over-long texts (default: the server's auto_truncate, true); false answers 413 instead.",
    )
    truncation_direction: TruncationDirection = Field(
        "Right", description="Right keeps a text's start, Left keeps its end (the query is never cut)."
    )


class TEIRank(BaseModel):
    index: int
    score: float
    text: str | None = None


class TEIError(BaseModel):
    error: str
    error_type: str


def logit(probability: float) -> float:
    """``log(p / (1 - p))``: the inverse of the sigmoid every engine path ends with.

    For Qwen3 rerankers the engine's score is ``sigmoid(logit_yes - logit_no)`` (the yes/no
    softmax), for single-label cross-encoders ``sigmoid(logit)``, so this recovers the model's
    logit, to float32 precision (best for |logit| < 10; 1.0 and 0.0 are clamped, see above).
    """
    p = min(max(probability, FLOAT32_TINY), FLOAT32_ONE_BELOW)
    return math.log(p) - math.log1p(-p)
