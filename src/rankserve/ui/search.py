"""The "Search documents" tab: first stage from a ``rankserve index`` directory, then rerank.

The first stage is the pipeline's own ``search(..., reranker=None)`` (BM25, or hybrid when the
index has embeddings); the reranking goes through the same API client as the Rank tab, so
it uses the user's API key, instruction and truncation policy, and the table shows how far
each passage moved from its first-stage rank.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rankserve.ui.api import Ranking, RankServeAPI

log = logging.getLogger("rankserve.ui")

INDEX_ENV = "RANKSERVE_UI_INDEX"


@dataclass(frozen=True)
class SearchResult:
    hits: list[dict[str, Any]]  # the pipeline's hit dicts, first-stage order
    ranking: Ranking  # the reranker's scores of those hits
    first_stage: Ranking  # the hits' first-stage order as a Ranking (for the movement arrows)

    @property
    def sources(self) -> list[str]:
        return [f"{h['source']}" + (f" p.{h['page']}" if h.get("page") else "") for h in self.hits]


def open_index(path: str | Path | None) -> Any | None:
    """The index at ``path`` (or ``$RANKSERVE_UI_INDEX``); None when none is configured.

    Raises the pipeline's FileNotFoundError / ValueError for a bad path, so the CLI can
    report it before serving.
    """
    path = path or os.environ.get(INDEX_ENV) or None
    if not path:
        return None
    from rankserve.pipeline.search import load_index

    index = load_index(path)
    log.info("document search over %s (%d passages)", path, len(index))
    return index


async def search_and_rerank(
    api: RankServeAPI, index: Any, question: str, top_k: int, **rerank_options: Any
) -> SearchResult | None:
    """Retrieve ``top_k`` passages and rerank them all; None when nothing matched."""
    from rankserve.pipeline.search import search

    hits = await asyncio.to_thread(search, index, question, top_k=top_k, top_n=top_k, reranker=None)
    if not hits:
        return None
    texts = [h["text"] for h in hits]
    ranking = await api.rerank(question, texts, **rerank_options)
    n = len(hits)
    first = Ranking(texts, [0.0] * n, list(range(1, n + 1)), False, [False] * n, 0, 0.0, "first stage")
    return SearchResult(hits, ranking, first)
