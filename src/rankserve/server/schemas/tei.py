"""The Text Embeddings Inference (TEI) rerank dialect: ``POST /tei/rerank`` and ``GET /info``.

TEI clients (``tei-client``, LlamaIndex's ``TextEmbeddingInference`` postprocessor, the
``rerankers`` TEI provider) post ``{query, texts, ...}`` and expect a bare list of
``{index, score, text?}`` sorted by score. Our own ``/rerank`` with ``texts`` answers the
simple format instead, so this dialect lives under a path prefix a client's base URL can
point at. Unknown fields (``model``, ``top_n`` sent by some clients) are ignored, as TEI does.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

TruncationDirection = Literal["Right", "Left", "right", "left"]


class TEIRerankRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    query: str
    texts: list[str]
    raw_scores: StrictBool = Field(
        False, description="Return the model head's raw value (a logit) instead of the served score."
    )
    return_text: StrictBool = Field(False, description="Echo each text in its result.")
    truncate: StrictBool | None = Field(
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
