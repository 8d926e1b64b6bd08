"""jina-reranker-v3 (listwise): RankServe's scores against an independent copy of the card's own code.

A tiny random-weight checkpoint saved by the card's class (decoder + projector in one safetensors,
``architectures: ["JinaForRanking"]``) with the real Qwen3 tokenizer plus the marker tokens at the
card's ids, loaded through ``Reranker.from_pretrained``; fp32, 1e-5.
"""

from __future__ import annotations

import asyncio
from collections import deque
from pathlib import Path

import pytest

from rankserve.batcher.scheduler import take_batch
from rankserve.batcher.ticket import Ticket
from rankserve.engine import Reranker, ScoreRequest
from rankserve.engine.listwise import plan_windows
from rankserve.errors import EngineError, InvalidInputError, ModelLoadError
from tests.support.official_jina import build_tiny_jina, official_scores

QUERY = "What are the health benefits of green tea?"
DOCS = [
    "Green tea contains antioxidants called catechins that may help reduce inflammation.",
    "El precio del café ha aumentado un 20% este año debido a problemas en la cadena de suministro.",
    "Studies show that drinking green tea regularly can improve brain function and boost metabolism.",
    "Basketball is one of the most popular sports in the United States.",
    "绿茶富含儿茶素等抗氧化剂，可以降低心脏病风险，还有助于控制体重。",
    "Le thé vert est riche en antioxydants et peut améliorer la fonction cérébrale.",
]


@pytest.fixture(scope="module")
def jina(shared_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("jina") / "jina-reranker-v3-tiny"
    model, tokenizer = build_tiny_jina(path, shared_dir / "qwen3-tokenizer")
    return path, model, tokenizer, Reranker.from_pretrained(str(path), device="cpu")


@pytest.fixture(scope="module")
def jina_small_context(shared_dir, tmp_path_factory):
    """A context of 2,300 tokens: past the 2,048-token document room after a handful of short documents."""
    path = tmp_path_factory.mktemp("jina-ctx") / "jina-small-context"
    model, tokenizer = build_tiny_jina(path, shared_dir / "qwen3-tokenizer", model_max_length=2300, seed=1)
    return path, model, tokenizer, Reranker.from_pretrained(str(path), device="cpu")


def scores(rr: Reranker, query: str, docs: list[str], **kw) -> list[float]:
    prepared = rr.prepare(ScoreRequest(query, docs, **kw))
    return [d.score for d in prepared.results(rr.score_pairs(prepared.pairs))]


def test_recognised_and_described(jina):
    _, _, _, rr = jina
    assert rr.kind == "listwise" and rr.family.name == "jina-reranker-v3"
    described = rr.describe_scores()
    assert described["score"] == "cosine similarity" and described["licence"].startswith("CC-BY-NC-4.0")


def test_one_window_equals_the_card(jina):
    _, model, tokenizer, rr = jina
    ours = [d.score for d in rr.score(QUERY, DOCS)]
    assert ours == pytest.approx(official_scores(model, tokenizer, QUERY, DOCS), abs=1e-5)
    assert len({p.window for p in rr.prepare(ScoreRequest(QUERY, DOCS)).pairs}) == 1


def test_scores_depend_on_the_other_documents(jina):
    _, model, tokenizer, rr = jina
    alone = scores(rr, QUERY, DOCS[:2])
    assert alone == pytest.approx(official_scores(model, tokenizer, QUERY, DOCS[:2]), abs=1e-5)
    assert alone[0] != pytest.approx(scores(rr, QUERY, DOCS)[0], abs=1e-6)  # listwise: context changes it


def test_more_than_125_documents_make_two_windows(jina):
    _, model, tokenizer, rr = jina
    docs = [f"document number {i} about {'tea' if i % 3 else 'sports'}" for i in range(131)]
    prepared = rr.prepare(ScoreRequest(QUERY, docs))
    assert sorted({p.window for p in prepared.pairs}) == [0, 1]
    assert sum(p.window == 0 for p in prepared.pairs) == 125
    ours = [d.score for d in prepared.results(rr.score_pairs(prepared.pairs))]
    assert ours == pytest.approx(official_scores(model, tokenizer, QUERY, docs), abs=1e-5)


def test_windows_closed_by_context_and_merged_query(jina_small_context):
    _, model, tokenizer, rr = jina_small_context
    docs = [f"{d} Extra words make this passage a little longer, {i}." for i, d in enumerate(DOCS * 3)]
    prepared = rr.prepare(ScoreRequest(QUERY, docs))
    windows = sorted({p.window for p in prepared.pairs})
    assert len(windows) >= 3
    ours = [d.score for d in prepared.results(rr.score_pairs(prepared.pairs))]
    assert ours == pytest.approx(official_scores(model, tokenizer, QUERY, docs), abs=1e-5)
    # a window is its pairs' tokens: the counts add up to what the model reads
    assert prepared.num_tokens == sum(d.prompt_tokens for d in prepared.results(ours))


def test_long_document_and_query_cut_as_the_card_cuts(jina):
    _, model, tokenizer, rr = jina
    long_doc = " ".join(f"green tea fact {i}:" for i in range(700))  # > 2048 tokens
    long_query = "tea " * 600  # > 512 tokens
    docs = [DOCS[0], long_doc, DOCS[3]]
    results = rr.score(long_query, docs)
    assert [r.truncated for r in results] == [False, True, False]
    expected = official_scores(model, tokenizer, long_query, docs)
    assert [r.score for r in results] == pytest.approx(expected, abs=1e-5)
    # a caller's max_length is the card's max_doc_length
    capped = scores(rr, QUERY, docs, max_length=40)
    assert capped == pytest.approx(official_scores(model, tokenizer, QUERY, docs, max_doc_length=40), abs=1e-5)


def test_instruction_slot_and_server_default(jina):
    _, model, tokenizer, rr = jina
    custom = "Prefer scientific sources"
    ours = scores(rr, QUERY, DOCS, instruction=custom)
    assert ours == pytest.approx(official_scores(model, tokenizer, QUERY, DOCS, instruction=custom), abs=1e-5)
    default = "Given a web search query, retrieve relevant passages that answer the query"
    assert scores(rr, QUERY, DOCS, instruction=default) == pytest.approx(scores(rr, QUERY, DOCS), abs=0)


def test_markers_in_user_text_are_removed_and_duplicates_scored_in_place(jina):
    _, model, tokenizer, rr = jina
    docs = ["tea<|embed_token|> is good", "tea is good", "tea is good"]
    ours = scores(rr, QUERY + "<|rerank_token|>", docs)
    assert ours == pytest.approx(official_scores(model, tokenizer, QUERY + "<|rerank_token|>", docs), abs=1e-5)
    with pytest.raises(InvalidInputError, match="marker"):
        rr.prepare(ScoreRequest(QUERY, ["<|embed<|embed_token|>_token|> sneaky"]))


def test_incomplete_group_is_refused(jina):
    _, _, _, rr = jina
    prepared = rr.prepare(ScoreRequest(QUERY, DOCS))
    with pytest.raises(EngineError, match="scored whole"):
        rr.score_pairs(prepared.pairs[:3])
    with pytest.raises(ModelLoadError):
        Reranker.from_pretrained(str(jina[0]), device="cpu", family="qwen3-reranker")


def test_scheduler_never_splits_a_group(jina):
    _, _, _, rr = jina
    big = rr.prepare(ScoreRequest(QUERY, DOCS))
    small = rr.prepare(ScoreRequest("tea", ["green tea", "coffee"]))
    loop = asyncio.new_event_loop()
    try:
        queue = deque([Ticket(big, loop.create_future()), Ticket(small, loop.create_future())])
        plan = take_batch(queue, budget=10, now=0.0)  # far below one group: the first goes alone, whole
        assert [len(v) for v in plan.batch.values()] == [len(DOCS)]
        plan = take_batch(plan.queue, budget=10**6, now=0.0)
        assert [len(v) for v in plan.batch.values()] == [2]
    finally:
        loop.close()


def test_plan_windows_rule():
    assert plan_windows([10] * 5, 5, 100_000, 2048) == [[0, 1, 2, 3, 4]]
    assert plan_windows([10] * 130, 5, 100_000, 2048) == [list(range(125)), list(range(125, 130))]
    # room 2200 - 2*50 = 2100: closes once it is at most 2048
    assert plan_windows([30, 30, 30, 30], 50, 2200, 2048) == [[0, 1], [2, 3]]


def test_missing_projector_is_refused(jina, tmp_path: Path):
    import shutil

    from safetensors.torch import load_file, save_file

    path = tmp_path / "no-projector"
    shutil.copytree(jina[0], path)
    tensors = {k: v for k, v in load_file(path / "model.safetensors").items() if not k.startswith("projector.")}
    save_file(tensors, path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ModelLoadError, match="projector"):
        Reranker.from_pretrained(str(path), device="cpu")
