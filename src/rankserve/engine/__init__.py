"""Model loading, packing and scoring. No web imports here."""

from rankserve.engine.reranker import Reranker
from rankserve.engine.types import (
    DEFAULT_TRUNCATION,
    TRUNCATION_POLICIES,
    DocScore,
    Pair,
    PreparedRequest,
    ScoreRequest,
    sort_by_score,
)

__all__ = [
    "DEFAULT_TRUNCATION",
    "TRUNCATION_POLICIES",
    "DocScore",
    "Pair",
    "PreparedRequest",
    "Reranker",
    "ScoreRequest",
    "sort_by_score",
]
