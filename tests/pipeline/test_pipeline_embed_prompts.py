"""Instruction-aware embedders: queries get the model's query prompt, documents its document prompt.

The models are the bundled all-MiniLM-L6-v2 saved again with a ``prompts`` table (or under a
family's name), and every check compares against encoding the prompted strings by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rankserve.pipeline.embed_prompts import QWEN3_EMBEDDING_TASK, resolve_prompts
from rankserve.pipeline.index import build_index
from rankserve.pipeline.retrieval import resolve_dense_model
from rankserve.pipeline.search import load_index, search
from tests.pipeline.test_pipeline_retrieval import dense_model_missing

QWEN3_QUERY = f"Instruct: {QWEN3_EMBEDDING_TASK}\nQuery:"
PASSAGES = {
    "keys.md": "Rotate the API key every 90 days, then revoke the old key.",
    "probes.txt": "Kubernetes liveness probes call the health endpoint.",
    "backup.txt": "Backups run nightly at 2am and are kept for a month.",
}


def test_resolution_order() -> None:
    own = {"query": "search_query: ", "document": "search_document: "}
    assert resolve_prompts("any", own).to_meta() == {
        "query": "search_query: ",
        "document": "search_document: ",
        "source": "model",
    }
    e5_style = resolve_prompts("x", {"query": "query: ", "passage": "passage: ", "corpus": "c: "})
    assert e5_style.document == "passage: "  # encode_document's order: document, passage, corpus
    defaulted = resolve_prompts("x", {"classification": "classify: "}, default_prompt_name="classification")
    assert (defaulted.query, defaulted.document) == ("classify: ", "classify: ")  # what plain encode() applies
    qwen = resolve_prompts("Qwen/Qwen3-Embedding-0.6B", {"query": "", "document": ""})
    assert (qwen.query, qwen.document, qwen.source) == (QWEN3_QUERY, "", "family:qwen3-embedding")
    assert not qwen.query.endswith(" ")  # the card's f'Instruct: {task}\nQuery:{query}': no space
    for name in ("intfloat/e5-base-v2", "intfloat/multilingual-e5-large", "/models/e5-small-v2/"):
        assert (resolve_prompts(name).query, resolve_prompts(name).document) == ("query: ", "passage: ")
    assert resolve_prompts("intfloat/e5-mistral-7b-instruct").source == "none"  # task-specific: not guessed
    bge = resolve_prompts("BAAI/bge-base-en-v1.5")
    assert (bge.query, bge.document) == ("Represent this sentence for searching relevant passages: ", "")
    assert resolve_prompts("BAAI/bge-m3").source == "none"
    assert resolve_prompts("/data/qwen3-embedding-runs/all-MiniLM-L6-v2").source == "none"  # last component only
    shipped = resolve_prompts("intfloat/e5-base-v2", {"query": "q> "})
    assert (shipped.query, shipped.document, shipped.source) == ("q> ", "", "model")  # shipped beats family
    over = resolve_prompts("intfloat/e5-base-v2", query_prompt="")
    assert (over.query, over.document, over.source) == ("", "passage: ", "override+family:e5")


@pytest.fixture(scope="module")
def minilm():
    if reason := dense_model_missing():
        pytest.skip(reason)
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(resolve_dense_model(None), device="cpu")


def save_copy(model, path: Path, prompts: dict[str, str]) -> Path:
    model.prompts = dict(prompts)
    try:
        model.save(str(path))
    finally:
        model.prompts = {}
    return path


def by_hand(model, texts: list[str]) -> np.ndarray:
    """Embeddings of already-prompted strings, with no prompt applied by the library."""
    return np.asarray(model.encode(texts, prompt="", normalize_embeddings=True, convert_to_numpy=True))


@pytest.fixture(scope="module")
def docs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("docs")
    for name, text in PASSAGES.items():
        (root / name).write_text(text)
    return root


def chunk_texts(index_dir: Path) -> list[str]:
    return [c["text"] for c in load_index(index_dir).chunks]


def test_model_prompts_reach_queries_and_documents(minilm, docs: Path, tmp_path: Path) -> None:
    model_dir = save_copy(minilm, tmp_path / "prompted", {"query": "search_query: ", "document": "search_document: "})
    meta = build_index(docs, tmp_path / "idx", dense_model=str(model_dir))
    assert meta["dense_prompts"] == {"query": "search_query: ", "document": "search_document: ", "source": "model"}
    assert json.loads((tmp_path / "idx" / "meta.json").read_text())["dense_prompts"] == meta["dense_prompts"]
    texts = chunk_texts(tmp_path / "idx")
    stored = np.load(tmp_path / "idx" / "dense.npy")
    np.testing.assert_allclose(stored, by_hand(minilm, [f"search_document: {t}" for t in texts]), atol=1e-5)
    assert not np.allclose(stored, by_hand(minilm, texts), atol=1e-3)  # the prompt really changed them

    index = load_index(tmp_path / "idx")
    query = "how often should keys be rotated?"
    hits = search(index, query, top_k=3, top_n=3, first_stage="dense")
    expected = stored @ by_hand(minilm, [f"search_query: {query}"])[0]
    unprompted = stored @ by_hand(minilm, [query])[0]
    for hit in hits:
        assert hit["first_stage_score"] == pytest.approx(float(expected[hit["chunk_id"]]), abs=1e-5)
    assert not np.allclose(expected, unprompted, atol=1e-4)
    assert hits[0]["source"] == "keys.md"


def test_model_without_prompts_is_unchanged(minilm, docs: Path, tmp_path: Path) -> None:
    meta = build_index(docs, tmp_path / "idx", dense_model=str(save_copy(minilm, tmp_path / "plain", {})))
    assert meta["dense_prompts"] == {"query": "", "document": "", "source": "none"}
    assert meta["vector_index"] == {"kind": "exact"}
    texts = chunk_texts(tmp_path / "idx")
    plain = np.asarray(minilm.encode(texts, normalize_embeddings=True, convert_to_numpy=True))
    np.testing.assert_allclose(np.load(tmp_path / "idx" / "dense.npy"), plain, atol=1e-6)
    hit = search(load_index(tmp_path / "idx"), "backup schedule", top_n=1, first_stage="dense")[0]
    q = np.asarray(minilm.encode(["backup schedule"], normalize_embeddings=True, convert_to_numpy=True))[0]
    assert hit["first_stage_score"] == pytest.approx(float(plain[hit["chunk_id"]] @ q), abs=1e-5)


def test_family_prompts_for_a_model_that_ships_none(minilm, docs: Path, tmp_path: Path) -> None:
    model_dir = save_copy(minilm, tmp_path / "Qwen3-Embedding-tiny", {})
    meta = build_index(docs, tmp_path / "idx", dense_model=str(model_dir))
    assert meta["dense_prompts"] == {"query": QWEN3_QUERY, "document": "", "source": "family:qwen3-embedding"}
    index = load_index(tmp_path / "idx")
    dense = index.retriever("dense")
    np.testing.assert_allclose(dense.encode_query("backups"), by_hand(minilm, [QWEN3_QUERY + "backups"])[0], atol=1e-5)
    np.testing.assert_allclose(
        np.load(tmp_path / "idx" / "dense.npy"), by_hand(minilm, chunk_texts(tmp_path / "idx")), atol=1e-5
    )


def test_cli_overrides_and_vector_index(minilm, docs: Path, tmp_path: Path) -> None:
    pytest.importorskip("faiss")
    from typer.testing import CliRunner

    from rankserve.cli import app

    model_dir = save_copy(minilm, tmp_path / "m", {"query": "search_query: "})
    runner = CliRunner()
    out = tmp_path / "idx"
    args = ["index", str(docs), "--out", str(out), "--dense-model", str(model_dir)]
    result = runner.invoke(app, [*args, "--query-prompt", r"Instruct: find\nQuery:", "--vector-index", "ivf"])
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "meta.json").read_text())
    assert meta["dense_prompts"] == {"query": "Instruct: find\nQuery:", "document": "", "source": "override+model"}
    assert meta["vector_index"]["kind"] == "ivf" and (out / "dense.faiss").exists()
    ivf = runner.invoke(app, ["search", str(out), "when do backups run", "--first-stage", "dense", "--json"])
    exact = runner.invoke(
        app, ["search", str(out), "when do backups run", "--first-stage", "dense", "--json", "--vector-index", "exact"]
    )
    assert ivf.exit_code == exact.exit_code == 0, ivf.output + exact.output
    assert [h["chunk_id"] for h in json.loads(ivf.stdout)] == [h["chunk_id"] for h in json.loads(exact.stdout)]
    assert json.loads(ivf.stdout)[0]["source"] == "backup.txt"
    bad = runner.invoke(app, ["search", str(out), "q", "--vector-index", "hnsw"])
    assert bad.exit_code == 2 and "unknown vector index 'hnsw'" in bad.output
    no_dense = runner.invoke(app, ["index", str(docs), "--out", str(tmp_path / "x"), "--query-prompt", "q: "])
    assert no_dense.exit_code == 2 and "add --dense or --dense-model" in no_dense.output


def test_index_from_before_prompts_were_recorded_still_searches(minilm, docs: Path, tmp_path: Path) -> None:
    model_dir = save_copy(minilm, tmp_path / "m", {})
    build_index(docs, tmp_path / "idx", dense_model=str(model_dir))
    meta_path = tmp_path / "idx" / "meta.json"
    meta = json.loads(meta_path.read_text())
    del meta["dense_prompts"], meta["vector_index"]
    meta_path.write_text(json.dumps(meta))
    hit = search(load_index(tmp_path / "idx"), "liveness probe", top_n=1, first_stage="dense")[0]
    assert hit["source"] == "probes.txt"
