"""`rankserve search` and the function the web UI's "Search documents" tab calls.

    from rankserve.pipeline.search import load_index, search
    index = load_index("my-index")
    hits = search(index, "how do I rotate the API key?", top_k=100, top_n=5,
                  reranker="http://localhost:8000")      # or a model path, a Reranker, a RerankClient, None

Each hit is a plain dict (JSON-ready): ``rank, text, source, page, start, end, chunk_id,
first_stage_rank, first_stage_score, rerank_score, fallback, fallback_reason``.
``rerank_score`` is ``None`` when no reranker was given or the server fell back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from rankserve.client import RerankClient
from rankserve.pipeline.embed_prompts import EmbeddingPrompts
from rankserve.pipeline.retrieval import BM25Retriever, DenseRetriever, HybridRetriever, Retriever
from rankserve.pipeline.vectors import VectorIndex, choose_kind


@dataclass
class Index:
    """A loaded index: chunks plus their first-stage retriever(s)."""

    path: Path
    meta: dict[str, Any]
    chunks: list[dict[str, Any]]
    bm25: BM25Retriever
    dense_embeddings: np.ndarray | None = None
    vector_index: str | None = None  # overrides the kind stored in meta (exact, flat, ivf)
    _dense: DenseRetriever | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.chunks)

    def retriever(self, first_stage: str = "auto") -> Retriever:
        """``auto`` = hybrid when the index has embeddings, else BM25."""
        if first_stage == "auto":
            first_stage = "hybrid" if self.dense_embeddings is not None else "bm25"
        if first_stage == "bm25":
            return self.bm25
        if self.dense_embeddings is None:
            raise ValueError(f"index {self.path} has no embeddings; rebuild it with --dense-model")
        if self._dense is None:  # loading the embedding model is slow: once per index
            # The prompts the documents were embedded with; an index from before they were recorded used none.
            prompts = EmbeddingPrompts.from_meta(self.meta.get("dense_prompts") or {})
            vectors = VectorIndex.load(
                self.path, self.dense_embeddings, self.meta.get("vector_index"), self.vector_index
            )
            self._dense = DenseRetriever(
                model=self.meta.get("dense_model"),
                embeddings=self.dense_embeddings,
                prompts=prompts,
                vector_index=vectors,
            )
        if first_stage == "dense":
            return self._dense
        if first_stage == "hybrid":
            return HybridRetriever(self.bm25, self._dense)
        raise ValueError(f"unknown first stage {first_stage!r}; use auto, bm25, dense or hybrid")


def load_index(path: str | Path, vector_index: str | None = None) -> Index:
    """Open an index directory written by ``rankserve index``; ``vector_index`` forces a vector
    search kind (``exact`` to check an approximate index against the truth)."""
    if vector_index is not None:
        choose_kind(vector_index, 0)  # unknown kinds and a missing faiss fail here, with one line
    path = Path(path)
    meta_path = path / "meta.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"{path} is not a RankServe index (no meta.json); build one with `rankserve index`")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    with (path / "chunks.jsonl").open(encoding="utf-8") as fh:
        chunks = [json.loads(line) for line in fh if line.strip()]
    dense = np.load(path / "dense.npy") if (path / "dense.npy").exists() else None
    return Index(path, meta, chunks, BM25Retriever.load(path / "bm25", size=len(chunks)), dense, vector_index)


@lru_cache(maxsize=4)
def _client(url: str) -> RerankClient:
    return RerankClient(url, timeout=10.0)


@lru_cache(maxsize=2)
def _engine(model: str) -> Any:
    from rankserve.engine import Reranker  # torch: only when a local model is asked for

    return Reranker.from_pretrained(model)


def _rerank(
    reranker: Any, question: str, texts: Sequence[str], instruction: str | None
) -> tuple[list[float | None], bool, str | None]:
    """Scores in input order (None where unavailable), whether it fell back, and why."""
    if isinstance(reranker, str):
        reranker = _client(reranker) if reranker.startswith(("http://", "https://")) else _engine(reranker)
    if isinstance(reranker, RerankClient):
        response = reranker.rerank(question, list(texts), instruction=instruction)
        scores: list[float | None] = [None] * len(texts)
        for r in response.results:
            scores[r.index] = r.relevance_score
        return scores, response.fallback, response.fallback_reason
    results = reranker.score(question, list(texts), instruction=instruction)  # the engine's Reranker
    return [float(getattr(r, "score", r)) for r in results], False, None


def search(
    index: Index,
    question: str,
    top_k: int = 100,
    top_n: int = 5,
    reranker: Any = None,
    instruction: str | None = None,
    first_stage: str = "auto",
) -> list[dict[str, Any]]:
    """Retrieve ``top_k`` chunks, rerank them (if a reranker is given) and return the best
    ``top_n`` as plain dicts. ``reranker``: ``None``, a server URL, a local model path or id,
    a ``rankserve.engine.Reranker`` or a :class:`RerankClient`. A server that times out or
    fails leaves the first-stage order, with ``fallback`` set on every hit."""
    if not question.strip():
        raise ValueError("question is empty")
    hits = index.retriever(first_stage).search(question, top_k)
    scores: list[float | None] = [None] * len(hits)
    fallback, reason = False, None
    if reranker is not None and hits:
        texts = [index.chunks[i]["text"] for i, _ in hits]
        scores, fallback, reason = _rerank(reranker, question, texts, instruction)
    order = list(range(len(hits)))
    if reranker is not None and not fallback:
        order.sort(key=lambda i: -(scores[i] if scores[i] is not None else float("-inf")))
    out = []
    for rank, i in enumerate(order[:top_n], 1):
        chunk = index.chunks[hits[i][0]]
        out.append(
            {
                "rank": rank,
                "text": chunk["text"],
                "source": chunk["source"],
                "page": chunk.get("page"),
                "start": chunk["start"],
                "end": chunk["end"],
                "chunk_id": chunk["id"],
                "first_stage_rank": i + 1,
                "first_stage_score": hits[i][1],
                "rerank_score": scores[i],
                "fallback": fallback,
                "fallback_reason": reason,
            }
        )
    return out
