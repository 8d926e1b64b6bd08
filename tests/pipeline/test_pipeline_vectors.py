"""Vector search behind the dense first stage: exact numpy, FAISS flat (exact) and IVF (approximate)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest

from rankserve.extras import MissingExtraError
from rankserve.pipeline.retrieval import _top_k
from rankserve.pipeline.vectors import ANN_THRESHOLD, VectorIndex, choose_kind

pytest.importorskip("faiss")

IVF_RECALL_FLOOR = 0.9  # measured 1.0 on this corpus with the default nprobe (64 of 512 lists)


def clustered(n: int, dim: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around 200 centres (embeddings cluster by topic) and 50 queries near corpus rows."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((200, dim), dtype=np.float32)
    corpus = centres[rng.integers(0, 200, n)] + 0.5 * rng.standard_normal((n, dim), dtype=np.float32)
    corpus /= np.linalg.norm(corpus, axis=1, keepdims=True)
    queries = corpus[rng.integers(0, n, 50)] + 0.3 * rng.standard_normal((50, dim), dtype=np.float32)
    return corpus, queries / np.linalg.norm(queries, axis=1, keepdims=True)


def test_flat_equals_exact_numpy() -> None:
    corpus, queries = clustered(5000)
    flat, exact = VectorIndex(corpus, "flat"), VectorIndex(corpus, "exact")
    assert exact.faiss_index is None and flat.faiss_index is not None
    for q in queries:
        want, got = exact.search(q, 10), flat.search(q, 10)
        assert [i for i, _ in got] == [i for i, _ in want] == [i for i, _ in _top_k(corpus @ q, 10, None)]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=1e-5)


def test_ivf_recall_at_10_against_exact() -> None:
    corpus, queries = clustered(20_000)
    ivf = VectorIndex(corpus, "ivf")
    assert ivf.kind == "ivf" and ivf.faiss_index.nlist == min(int(4 * np.sqrt(len(corpus))), len(corpus) // 39)
    recalls = []
    for q in queries:
        truth = {i for i, _ in _top_k(corpus @ q, 10, None)}
        recalls.append(len(truth & {i for i, _ in ivf.search(q, 10)}) / 10)
    assert np.mean(recalls) >= IVF_RECALL_FLOOR, np.mean(recalls)
    one = VectorIndex(corpus, "ivf", nprobe=1)  # the knob is real: one probed cluster loses recall
    worse = np.mean(
        [len({i for i, _ in _top_k(corpus @ q, 10, None)} & {i for i, _ in one.search(q, 10)}) for q in queries]
    )
    assert worse / 10 < np.mean(recalls)


@pytest.mark.parametrize("kind", ["flat", "ivf", "exact"])
def test_saved_and_loaded_index_gives_the_same_results(kind: str, tmp_path: Path) -> None:
    corpus, queries = clustered(3000)
    built = VectorIndex(corpus, kind)
    entry = built.save(tmp_path)
    assert entry["kind"] == kind and ((tmp_path / "dense.faiss").exists() == (kind != "exact"))
    loaded = VectorIndex.load(tmp_path, corpus, entry)
    assert loaded.kind == kind
    for q in queries[:10]:
        assert loaded.search(q, 20) == built.search(q, 20)
    assert VectorIndex.load(tmp_path, corpus, entry, kind="exact").kind == "exact"  # forcing exact always works


def test_auto_picks_by_size_and_unknown_kinds_fail() -> None:
    assert choose_kind("auto", ANN_THRESHOLD - 1) == "exact"
    assert choose_kind("auto", ANN_THRESHOLD) == "ivf"
    with pytest.raises(ValueError, match="unknown vector index 'hnsw'"):
        choose_kind("hnsw", 10)


def test_without_faiss_forced_kinds_fail_and_auto_falls_back(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "faiss", None)  # simulate "not installed"
    with pytest.raises(MissingExtraError, match=r"pip install 'rankserve\[dense\]'"):
        choose_kind("ivf", 10)
    with caplog.at_level(logging.WARNING, logger="rankserve.pipeline.vectors"):
        assert choose_kind("auto", ANN_THRESHOLD) == "exact"
    assert "FAISS not installed" in caplog.text
    assert choose_kind("exact", ANN_THRESHOLD) == "exact"
