"""Model loading, packing and scoring. No web imports here.

``Reranker`` (which needs torch) is imported on first use, so that the value types
(:mod:`rankserve.engine.types`) and preprocessing (:mod:`rankserve.engine.prepare`) stay
importable in a process without torch: the batcher, the HTTP server and a CPU-only front end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rankserve.engine.types import (
    DEFAULT_TRUNCATION,
    TRUNCATION_POLICIES,
    DocScore,
    Pair,
    PreparedRequest,
    ScoreRequest,
    sort_by_score,
)

if TYPE_CHECKING:
    from rankserve.engine.reranker import Reranker

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


def __getattr__(name: str) -> Any:
    if name == "Reranker":
        from rankserve.engine.reranker import Reranker

        return Reranker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
