"""First stage: CJK tokenization, BM25, RRF fusion, dense retrieval with a real small model."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from rankserve.pipeline.retrieval import (
    BM25Retriever,
    DenseRetriever,
    HybridRetriever,
    _top_k,
    resolve_dense_model,
    rrf_fuse,
)
from rankserve.pipeline.text import tokenize

PASSAGES = [
    "The server restarted after the kernel update finished.",
    "数据库连接池耗尽时，应该检查慢查询和连接泄漏。",
    "服务器CPU使用率持续100%时，先用top命令找到占用最高的进程，再分析线程堆栈。",
    "東京タワーの高さは333メートルです。",
    "How to reset a forgotten password in the admin console.",
    "CPU fans are loud when the temperature rises.",
]


def test_tokenize_cjk_bigrams_and_mixed_text() -> None:
    assert tokenize("服务器CPU使用率") == ["服务", "务器", "cpu", "使用", "用率"]
    assert tokenize("東京タワー") == ["東京", "京タ", "タワ", "ワー"]
    assert tokenize("The Café is OPEN") == ["café", "open"]  # stopwords dropped, casefolded
    assert tokenize("中 and 文") == ["中", "文"]  # isolated CJK characters stay unigrams
    assert tokenize("ｃｐｕ１００") == ["cpu100"]  # full-width forms normalised (NFKC)


def test_bm25_finds_the_chinese_passage() -> None:
    bm25 = BM25Retriever(PASSAGES)
    hits = bm25.search("服务器CPU使用率持续100%怎么办", k=3)
    assert hits[0][0] == 2
    assert bm25.search("数据库慢查询", k=1)[0][0] == 1
    assert bm25.search("東京タワーの高さ", k=1)[0][0] == 3
    assert bm25.search("完全无关的词语", k=3) == []  # no shared term: nothing is returned


def test_bm25_candidate_pool_ranks_every_candidate() -> None:
    bm25 = BM25Retriever(PASSAGES)
    hits = bm25.search("reset password", k=3, candidates=[0, 4, 5])
    assert [i for i, _ in hits] == [4, 0, 5]  # zero-score candidates kept, in pool order


def test_top_k_is_deterministic_on_ties() -> None:
    scores = np.array([0.0, 1.0, 1.0, 3.0, 1.0, 0.0, 2.0])
    assert _top_k(scores, 3, None) == [(3, 3.0), (6, 2.0), (1, 1.0)]
    assert [i for i, _ in _top_k(scores, 5, None)] == [3, 6, 1, 2, 4]
    assert [i for i, _ in _top_k(scores, 10, None, positive_only=True)] == [3, 6, 1, 2, 4]


def test_rrf_fuse_known_values() -> None:
    fused = rrf_fuse([[(1, 9.0), (2, 8.0), (3, 7.0)], [(3, 0.9), (1, 0.8)]], k=60)
    assert [d for d, _ in fused] == [1, 3, 2]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[1][1] == pytest.approx(1 / 63 + 1 / 61)
    assert rrf_fuse([[(5, 1.0)], [(6, 1.0)]], limit=1) == [(5, pytest.approx(1 / 61))]  # tie: first list wins


@functools.cache
def dense_model_missing() -> str | None:
    """Why the default embedding model cannot load here, or ``None`` when it can.

    Only a missing ``sentence-transformers`` (ImportError) or a missing offline copy of the model
    with no network (OSError) is a reason to skip; the dense tests then run the real code outside
    any ``try``, so any other error fails them instead of turning into a skip."""
    path = resolve_dense_model(None)
    try:
        from sentence_transformers import SentenceTransformer

        SentenceTransformer(path, device="cpu")
    except (ImportError, OSError) as exc:
        return f"cannot load the embedding model {path!r} offline: {exc}"
    return None


@pytest.fixture(scope="module")
def dense() -> DenseRetriever:
    if reason := dense_model_missing():
        pytest.skip(reason)
    return DenseRetriever(PASSAGES, model=resolve_dense_model(None))


def test_dense_first_stage_with_real_model(dense: DenseRetriever) -> None:
    assert dense.embeddings.shape == (len(PASSAGES), 384)
    assert np.allclose(np.linalg.norm(dense.embeddings, axis=1), 1.0, atol=1e-5)
    hits = dense.search("I forgot my login credentials", k=2)
    assert hits[0][0] == 4  # no word overlap with the passage: only a dense model gets this
    assert [i for i, _ in dense.search("password", k=2, candidates=[0, 4])] == [4, 0]


def test_hybrid_fuses_bm25_and_dense(dense: DenseRetriever) -> None:
    hybrid = HybridRetriever(BM25Retriever(PASSAGES), dense)
    hits = hybrid.search("reset forgotten password", k=3)
    assert hits[0][0] == 4 and len(hits) == 3
