"""The real server answering /rerank with a listwise (jina-reranker-v3) checkpoint: the card's scores over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.official_jina import build_tiny_jina, official_scores
from tests.support.server import ServerProcess

QUERY = "What are the health benefits of green tea?"
DOCS = ["Green tea contains catechins.", "Basketball is popular.", "绿茶富含儿茶素", "Le thé vert est riche."]


@pytest.fixture(scope="module")
def jina_server(shared_dir, tmp_path_factory) -> Iterator[tuple[ServerProcess, object, object]]:
    path = tmp_path_factory.mktemp("jina-srv") / "jina-reranker-v3-tiny"
    model, tokenizer = build_tiny_jina(path, shared_dir / "qwen3-tokenizer", model_max_length=2300)
    proc = ServerProcess(path, path.parent / "server.log").wait_ready()
    try:
        yield proc, model, tokenizer
    finally:
        proc.stop()


def test_rerank_answers_the_card_scores(jina_server):
    proc, model, tokenizer = jina_server
    r = httpx.post(proc.url + "/rerank", json={"query": QUERY, "texts": DOCS}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["scores"] == pytest.approx(official_scores(model, tokenizer, QUERY, DOCS), abs=1e-5)
    # several windows (a 2,300-token context), one request: still the card's merged scores
    docs = [f"{d} More words to make the passage longer, number {i}." for i, d in enumerate(DOCS * 4)]
    r = httpx.post(proc.url + "/rerank", json={"query": QUERY, "texts": docs}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["scores"] == pytest.approx(official_scores(model, tokenizer, QUERY, docs), abs=1e-5)
    models = httpx.get(proc.url + "/v1/models", timeout=10).json()
    assert "jina-reranker-v3" in str(models)


def test_bad_input_is_a_400_and_the_server_keeps_serving(jina_server):
    proc, _, _ = jina_server
    r = httpx.post(proc.url + "/rerank", json={"query": QUERY, "texts": ["ok", ""]}, timeout=30)
    assert r.status_code == 400 and "texts[1]" in r.text
    r = httpx.post(proc.url + "/rerank", json={"query": QUERY, "texts": DOCS}, timeout=60)
    assert r.status_code == 200
