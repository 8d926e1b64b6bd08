"""Truncation: prefix and suffix intact, budget respected, flags exact, head == official."""

from __future__ import annotations

import pytest

from rankserve import Reranker, prompts
from rankserve.engine import ScoreRequest
from rankserve.truncation import chunk_overlap, fit
from tests.support.official import OfficialRecipe, format_instruction
from tests.support.texts import DOCS

MAX_LEN = 160
LONG = ["word " * 300 + "THE END", "中文内容。" * 120 + "结论", "short doc"]


@pytest.fixture(scope="module")
def small(tiny_qwen_dir):
    return Reranker.from_pretrained(str(tiny_qwen_dir), device="cpu", max_length=MAX_LEN)


def test_fit_policies_unit():
    ids = list(range(100))
    assert fit(ids, 100, "head").windows == [ids] and not fit(ids, 100, "head").truncated
    head = fit(ids, 40, "head")
    assert head.windows == [ids[:40]] and head.truncated
    ht = fit(ids, 40, "head_tail", tail_tokens=10)
    assert ht.windows == [ids[:30] + ids[-10:]] and ht.truncated
    assert fit(ids, 40, "head_tail", tail_tokens=35).windows == [ids[:20] + ids[-20:]]  # tail <= half
    ch = fit(ids, 40, "chunks")
    assert not ch.truncated and all(len(w) == 40 for w in ch.windows)
    assert sorted({t for w in ch.windows for t in w}) == ids
    starts = [w[0] for w in ch.windows]
    assert all(b - a <= 40 - chunk_overlap(40) for a, b in zip(starts, starts[1:]))


@pytest.mark.parametrize("policy", ["head", "head_tail", "tail", "chunks"])
def test_prefix_and_suffix_intact_and_budget_respected(small, policy):
    builder = small.builder
    prepared = small.prepare(ScoreRequest("a query", LONG + DOCS, truncation=policy))
    for pair in prepared.pairs:
        ids = list(pair.prefix) + pair.tokens
        assert len(ids) <= MAX_LEN
        assert ids[: len(builder.system_ids)] == builder.system_ids
        assert ids[-len(builder.suffix_ids) :] == builder.suffix_ids
    doc_budget = builder.body_budget - (len(prepared.pairs[0].prefix) - len(builder.system_ids))
    full = builder.encode([prompts.document_part(d) for d in LONG + DOCS])
    for index, ids in enumerate(full):
        expected = len(ids) > doc_budget and policy != "chunks"
        assert prepared.truncated[index] == expected, index


def test_head_equals_official_truncation_token_for_token(small, tiny_qwen_dir):
    ref = OfficialRecipe(tiny_qwen_dir, max_length=MAX_LEN)
    docs = LONG + DOCS
    official = ref.process_inputs([format_instruction(None, "a query", d) for d in docs])
    prepared = small.prepare(ScoreRequest("a query", docs, truncation="head"))
    for row, pair in zip(official["input_ids"], prepared.pairs):
        mask = row != ref.tokenizer.pad_token_id
        assert row[mask].tolist() == list(pair.prefix) + pair.tokens
    got = [r.score for r in small.score("a query", docs, truncation="head")]
    want = ref.scores("a query", docs)
    assert max(abs(a - b) for a, b in zip(got, want)) <= 1e-5


def test_head_tail_keeps_the_conclusion(small):
    prepared = small.prepare(ScoreRequest("a query", [LONG[0]], truncation="head_tail"))
    text = small.tokenizer.decode(prepared.pairs[0].tokens)
    assert "THE END" in text and prepared.truncated == [True]
    head = small.prepare(ScoreRequest("a query", [LONG[0]], truncation="head"))
    assert "THE END" not in small.tokenizer.decode(head.pairs[0].tokens)


def test_chunks_cover_every_token_and_report_the_best_window(small):
    builder = small.builder
    # distinct words so each window's position in the document is unambiguous
    docs = [" ".join(f"w{i}" for i in range(400)), "short doc"]
    prepared = small.prepare(ScoreRequest("a query", docs, truncation="chunks"))
    suffix = len(builder.suffix_ids)
    for index, doc in enumerate(docs):
        full = builder.encode([prompts.document_part(doc)])[0]
        windows = [p for p in prepared.pairs if p.doc_index == index]
        covered = []
        for w in windows:
            body = w.tokens[:-suffix]
            start = next(s for s in range(len(full)) if full[s : s + len(body)] == body)
            covered.extend(range(start, start + len(body)))
        assert set(covered) == set(range(len(full)))
    results = small.score("a query", LONG, truncation="chunks")
    assert results[0].windows > 1 and results[2].windows == 1
    assert not any(r.truncated for r in results)
    window_scores = small.score("a query", [LONG[0]], truncation="chunks")[0]
    assert 0 <= window_scores.window < window_scores.windows


def test_over_long_query_is_cut_to_a_share_of_the_budget(small):
    builder = small.builder
    query = "very long query " * 200
    prepared = small.prepare(ScoreRequest(query, ["doc one", "doc two"]))
    header = len(prepared.pairs[0].prefix) - len(builder.system_ids)
    assert header <= builder.body_budget * 0.5
    assert prepared.truncated == [True, True]
    assert all(p.num_tokens <= MAX_LEN for p in prepared.pairs)


def test_tail_keeps_the_last_tokens() -> None:
    from rankserve.truncation import fit

    assert fit(list(range(10)), 4, "tail").windows == [[6, 7, 8, 9]]
    assert fit(list(range(10)), 4, "tail").truncated
    assert fit(list(range(3)), 4, "tail").windows == [[0, 1, 2]]
