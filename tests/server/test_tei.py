"""The Text Embeddings Inference dialect, driven by TEI's real client libraries, unmodified.

A real ``rankserve serve`` (tiny model, free port, API key on) is the server; ``tei-client``,
LlamaIndex's ``TextEmbeddingInference`` postprocessor and the ``rerankers`` TEI provider talk to
it through a base URL ending in ``/tei``, as they would talk to TEI itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import torch

from rankserve.engine.types import ScoreRequest
from tests.support.server import ServerProcess

KEY = "tei-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
QUERY = "What is the capital of France?"
TEXTS = ["Paris is the capital of France.", "Cats sleep a lot.", "Berlin is in Germany.", "法国的首都是巴黎。"]
LONG = " ".join(f"word{i}" for i in range(400))  # far past --max-length 160
MAX_LENGTH = 160


def _start(model: Path, tmp_path_factory, name: str) -> ServerProcess:
    log = tmp_path_factory.mktemp(name) / "serve.log"
    args = ("--max-length", str(MAX_LENGTH))
    return ServerProcess(model, log, *args, env={"RANKSERVE_API_KEY": KEY}).wait_ready()


@pytest.fixture(scope="module")
def server(tiny_qwen_dir, tmp_path_factory) -> Iterator[ServerProcess]:
    proc = _start(tiny_qwen_dir, tmp_path_factory, "tei-qwen")
    yield proc
    assert proc.stop() == 0, proc.log()


@pytest.fixture(scope="module")
def bert_server(tiny_bert_dir, tmp_path_factory) -> Iterator[ServerProcess]:
    proc = _start(tiny_bert_dir, tmp_path_factory, "tei-bert")
    yield proc
    assert proc.stop() == 0, proc.log()


def _logit_tolerance(value: float) -> float:
    """The engine returns the head's float32 value: equal to the recipe's logit to float32 rounding."""
    return 1e-4 * max(1.0, abs(value))


def _simple_scores(url: str, texts: list[str], truncation: str = "head") -> list[float]:
    r = httpx.post(url + "/rerank", json={"query": QUERY, "texts": texts, "truncation": truncation}, headers=AUTH)
    assert r.status_code == 200, r.text
    return r.json()["scores"]


def test_tei_client_info_health_and_rerank(server: ServerProcess) -> None:
    from tei_client import HttpClient, ModelType

    client = HttpClient(server.url + "/tei", headers=AUTH)
    assert client.health()
    info = client.info()
    assert info.server_model_type == ModelType.Reranker
    assert info.max_input_length == MAX_LENGTH
    assert info.server_model_dtype == "float32"

    result = client.rerank(QUERY, TEXTS, return_text=True)
    scores = [r.score for r in result.ranks]
    assert scores == sorted(scores, reverse=True)
    assert sorted(r.index for r in result.ranks) == list(range(len(TEXTS)))
    expected = _simple_scores(server.url, TEXTS)
    for r in result.ranks:
        assert r.text == TEXTS[r.index]
        assert r.score == pytest.approx(expected[r.index], abs=1e-6)

    raw = client.rerank(QUERY, TEXTS, raw_scores=True)
    assert [r.index for r in raw.ranks] == [r.index for r in result.ranks]
    for r in raw.ranks:
        assert r.text is None
        assert r.score == pytest.approx(math.log(expected[r.index] / (1 - expected[r.index])), abs=1e-4)


def test_tei_client_without_key_is_refused(server: ServerProcess) -> None:
    r = httpx.get(server.url + "/info")
    assert r.status_code == 401


def test_raw_scores_are_the_qwen3_yes_minus_no_logit(server: ServerProcess, tiny_qwen_dir: Path) -> None:
    from tests.support.official import OfficialRecipe, format_instruction

    recipe = OfficialRecipe(tiny_qwen_dir, max_length=MAX_LENGTH)
    inputs = recipe.process_inputs([format_instruction(None, QUERY, t) for t in TEXTS])
    with torch.no_grad():
        last = recipe.model(**inputs).logits[:, -1, :]
    want = (last[:, recipe.token_true_id] - last[:, recipe.token_false_id]).tolist()
    r = httpx.post(server.url + "/tei/rerank", json={"query": QUERY, "texts": TEXTS, "raw_scores": True}, headers=AUTH)
    assert r.status_code == 200, r.text
    for item in r.json():
        assert item["score"] == pytest.approx(want[item["index"]], abs=_logit_tolerance(want[item["index"]]))


def test_raw_scores_are_the_cross_encoder_logit(bert_server: ServerProcess, tiny_bert_dir: Path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_bert_dir))
    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_bert_dir)).eval()
    assert model.config.num_labels == 1
    with torch.no_grad():
        enc = tok(
            [QUERY] * len(TEXTS), TEXTS, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt"
        )
        want = model(**enc).logits[:, 0].tolist()
    body = {"query": QUERY, "texts": TEXTS, "raw_scores": True}
    r = httpx.post(bert_server.url + "/tei/rerank", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    got = {item["index"]: item["score"] for item in r.json()}
    for i, w in enumerate(want):
        assert got[i] == pytest.approx(w, abs=_logit_tolerance(w))
    assert sorted(got, key=lambda i: -got[i]) == [item["index"] for item in r.json()]


def test_llamaindex_tei_postprocessor(server: ServerProcess) -> None:
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
    from llama_index.postprocessor.tei_rerank import TextEmbeddingInference

    nodes = [NodeWithScore(node=TextNode(text=t), score=0.0) for t in TEXTS]
    post = TextEmbeddingInference(base_url=server.url + "/tei", top_n=2, auth_token=f"Bearer {KEY}")
    best = post.postprocess_nodes(nodes, query_bundle=QueryBundle(QUERY))
    expected = _simple_scores(server.url, TEXTS)
    order = sorted(range(len(TEXTS)), key=lambda i: -expected[i])[:2]
    assert [n.node.text for n in best] == [TEXTS[i] for i in order]
    assert [n.score for n in best] == pytest.approx([expected[i] for i in order], abs=1e-6)


def test_rerankers_tei_provider(server: ServerProcess) -> None:
    from rerankers import Reranker

    ranker = Reranker("text-embeddings-inference", api_key=KEY, url=server.url + "/tei/rerank", verbose=0)
    ranked = ranker.rank(QUERY, TEXTS)
    expected = _simple_scores(server.url, TEXTS)
    order = sorted(range(len(TEXTS)), key=lambda i: -expected[i])
    assert [r.document.text for r in ranked.results] == [TEXTS[i] for i in order]
    assert [r.score for r in ranked.results] == pytest.approx([expected[i] for i in order], abs=1e-6)


def test_truncate_and_direction(server: ServerProcess, tiny_qwen_dir: Path) -> None:
    from rankserve import Reranker

    url = server.url + "/tei/rerank"
    texts = [LONG, TEXTS[0]]
    refused = httpx.post(url, json={"query": QUERY, "texts": texts, "truncate": False}, headers=AUTH)
    assert refused.status_code == 413
    assert refused.json()["error_type"] == "Validation"
    assert "texts[0]" in refused.json()["error"] and "truncate=true" in refused.json()["error"]

    def scores(**extra) -> dict[int, float]:
        r = httpx.post(url, json={"query": QUERY, "texts": texts, **extra}, headers=AUTH)
        assert r.status_code == 200, r.text
        return {item["index"]: item["score"] for item in r.json()}

    right = scores(truncate=True)
    assert scores() == right  # auto_truncate: true, as /info says
    left = scores(truncate=True, truncation_direction="Left")
    assert left[1] == pytest.approx(right[1], abs=1e-6)  # the short text is not cut either way
    engine = Reranker.from_pretrained(str(tiny_qwen_dir), device="cpu", max_length=MAX_LENGTH)
    [head] = engine.score_requests([ScoreRequest(QUERY, texts, truncation="head")])
    [tail] = engine.score_requests([ScoreRequest(QUERY, texts, truncation="tail")])
    assert right[0] == pytest.approx(head[0].score, abs=1e-5)
    assert left[0] == pytest.approx(tail[0].score, abs=1e-5)
    assert head[0].score != pytest.approx(tail[0].score, abs=1e-5)  # the two ends really differ


def test_info_at_root_and_errors(server: ServerProcess) -> None:
    root = httpx.get(server.url + "/info", headers=AUTH).json()
    assert root == httpx.get(server.url + "/tei/info", headers=AUTH).json()
    assert root["model_type"] == {"reranker": {"id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0}}}
    assert root["auto_truncate"] is True and root["max_client_batch_size"] == 1000
    assert httpx.get(server.url + "/tei/health", headers=AUTH).status_code == 200

    url = server.url + "/tei/rerank"
    empty = httpx.post(url, json={"query": QUERY, "texts": []}, headers=AUTH)
    assert empty.status_code == 400 and empty.json()["error_type"] == "Empty"
    blank = httpx.post(url, json={"query": QUERY, "texts": ["a", " "]}, headers=AUTH)
    assert blank.status_code == 400 and blank.json()["error_type"] == "Empty" and "texts[1]" in blank.json()["error"]
    bad = httpx.post(url, content=b"{nope", headers={**AUTH, "Content-Type": "application/json"})
    assert bad.status_code == 400 and bad.json()["error_type"] == "Validation"
    wrong = httpx.post(url, json={"query": QUERY, "texts": "one"}, headers=AUTH)
    assert wrong.status_code == 422 and "texts" in wrong.json()["error"]
    direction = httpx.post(url, json={"query": QUERY, "texts": TEXTS, "truncation_direction": "Up"}, headers=AUTH)
    assert direction.status_code == 422 and "truncation_direction" in direction.json()["error"]
    assert httpx.get(server.url + "/health").status_code == 200  # still serving
    spec = httpx.get(server.url + "/openapi.json", headers=AUTH).json()
    body = spec["paths"]["/tei/rerank"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    fields = {"query", "texts", "raw_scores", "return_text", "truncate", "truncation_direction"}
    assert fields <= set(body["properties"])
    assert "/info" in spec["paths"]


def test_hostile_bodies_are_400_in_tei_shape(server: ServerProcess) -> None:
    url = server.url + "/tei/rerank"
    headers = {**AUTH, "Content-Type": "application/json"}
    lone = httpx.post(url, content=b'{"query": "q", "texts": ["a", "x\\udfff"]}', headers=headers)
    assert lone.status_code == 400 and "texts[1]" in lone.json()["error"], lone.text
    assert lone.json()["error_type"] == "Validation"
    deep = httpx.post(url, content=b"[" * 100_000 + b"]" * 100_000, headers=headers)
    assert deep.status_code == 400 and "nested too deeply" in deep.json()["error"], deep.text
    assert httpx.get(server.url + "/health").status_code == 200  # still serving
