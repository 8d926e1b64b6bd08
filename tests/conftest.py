"""Shared fixtures: tiny random-weight checkpoints built with real ``transformers`` classes.

Nothing can be downloaded in CI, so each fixture saves a tiny model with ``save_pretrained``
and tests load it with ``Reranker.from_pretrained(path)`` — the path a user's checkpoint takes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is not present (only CI and developer machines have it)")
    return SHARED


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory) -> Path:
    from rankserve.synthetic import build_tiny_qwen_reranker

    return build_tiny_qwen_reranker(tmp_path_factory.mktemp("tiny-qwen3-reranker"))


@pytest.fixture(scope="session")
def tiny_seqcls_dir(tiny_qwen_dir, tmp_path_factory) -> Path:
    from rankserve.synthetic import convert_to_seq_cls

    return convert_to_seq_cls(tiny_qwen_dir, tmp_path_factory.mktemp("tiny-qwen3-seq-cls"))


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    from rankserve.synthetic import build_tiny_bert_cross_encoder

    return build_tiny_bert_cross_encoder(tmp_path_factory.mktemp("tiny-bert-ce"))


@pytest.fixture(scope="session")
def real_tokenizer_qwen_dir(shared_dir, tmp_path_factory) -> Path:
    """A tiny Qwen3 reranker that uses the real Qwen3 tokenizer from ../shared."""
    from rankserve.synthetic import build_tiny_qwen_reranker

    tok = shared_dir / "qwen3-tokenizer"
    if not tok.is_dir():
        pytest.skip("../shared/qwen3-tokenizer is not present")
    return build_tiny_qwen_reranker(tmp_path_factory.mktemp("tiny-qwen3-realtok"), tokenizer_dir=tok)


@pytest.fixture(scope="session")
def tiny_reranker(tiny_qwen_dir):
    from rankserve import Reranker

    return Reranker.from_pretrained(str(tiny_qwen_dir), device="cpu")
