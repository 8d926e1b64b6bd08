"""Shared fixtures, and the skips that depend on the machine.

Fixtures: tiny random-weight checkpoints built with real ``transformers`` classes. Nothing can be
downloaded in CI, so each fixture saves a tiny model with ``save_pretrained`` and tests load it
with ``Reranker.from_pretrained(path)`` — the path a user's checkpoint takes.

Markers (registered in pyproject.toml): ``gpu`` tests are skipped where no CUDA device is present
(``gpu(hopper=True)``: where it is not a Hopper GPU) and ``browser`` tests where no Chromium is
found, each with a reason that says where to run them. ``slow`` only labels; nothing deselects it
by default (``pytest -m "not slow"`` does).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.browser import find_chromium
from tests.support.paths import SHARED

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

GPU_RUN = "run `pytest -m gpu` on a GPU machine"
BROWSER_RUN = "install Debian's `chromium` (scripts/test.sh does) or set RANKSERVE_CHROMIUM, then `pytest -m browser`"


def _cuda_capability() -> tuple[int, int] | None:
    """The first CUDA device's compute capability, or ``None`` without one (torch imported only when asked)."""
    import torch

    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_capability()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip what this machine cannot run, saying what to run where."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    capability = _cuda_capability() if gpu_items else None
    for item in gpu_items:
        marker = item.get_closest_marker("gpu")
        if capability is None:
            item.add_marker(pytest.mark.skip(reason=f"needs a CUDA GPU: {GPU_RUN}"))
        elif marker.kwargs.get("hopper") and not (9, 0) <= capability < (10, 0):
            item.add_marker(
                pytest.mark.skip(reason=f"needs a Hopper GPU (sm_90; this one is sm_{capability[0]}{capability[1]}): "
                                 f"{GPU_RUN} with an H100 or H200")
            )  # fmt: skip
    browser_items = [item for item in items if item.get_closest_marker("browser")]
    if browser_items and find_chromium() is None:
        for item in browser_items:
            item.add_marker(pytest.mark.skip(reason=f"needs a Chromium browser: {BROWSER_RUN}"))


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
def tiny_gemma_dir(tmp_path_factory) -> Path:
    """A tiny GemmaForCausalLM bge-reranker-v2-gemma: one key/value head of 256, as Gemma-2B."""
    from rankserve.synthetic import build_tiny_gemma_reranker

    return build_tiny_gemma_reranker(tmp_path_factory.mktemp("m") / "bge-reranker-v2-gemma-tiny")


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
