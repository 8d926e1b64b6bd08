"""RankServe: a self-hosted reranking service for Qwen3-Reranker and cross-encoder models.

``from rankserve import Reranker`` works, but is resolved lazily so that light modules
(``rankserve.client``) can be imported without loading torch.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["DocScore", "Reranker", "ScoreRequest", "__version__"]


def __getattr__(name: str):
    if name in ("DocScore", "Reranker", "ScoreRequest"):
        from rankserve import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'rankserve' has no attribute {name!r}")
