"""Truncated cross-encoder pairs are the model card's token ids, and score as the card does.

The cards of bge-reranker-v2-m3 (XLM-R), gte-reranker-modernbert-base (ModernBERT) and the
ms-marco BERT cross-encoders tokenize with ``tokenizer(pairs, padding=True, truncation=True,
max_length=...)``. Tiny random-weight models of the real classes, long documents in several
scripts: with ``head`` every pair's ids (and BERT's token types) must equal that call's, and every
raw score the card's ``AutoModelForSequenceClassification`` forward to 1e-5 in fp32. The other
policies cut the document's own ids (never text decoded and tokenized again).
"""

from __future__ import annotations

import pytest

from rankserve import Reranker
from rankserve.engine import ScoreRequest
from rankserve.engine.pair_template import PairTemplate
from rankserve.truncation import longest_first
from tests.support.official_encoders import card_logits, hf_logits
from tests.support.texts import DOCS, QUERIES

TOL = 1e-5

LONG_DOCS = [
    "Le café crème à Zürich coûte déjà cher ; naïve façade, œuvre complète, São Paulo, Ærøskøbing. " * 40,
    "长文档。服务器CPU使用率持续100%怎么办？检查进程，优化代码，增加服务器。" * 30 + "结论：增加服务器。",
    "Dockerコンテナのメモリ使用量を制限するには --memory オプションを使います。" * 30,
    "كيف أحول ملف PDF إلى نص في بايثون؟ استخدم مكتبة pypdf لاستخراج النص من ملف PDF. " * 30,
    "emoji 🚀🔥 and 👍🏽 👨‍👩‍👧 mixed 中文 English 日本語 العربية ✨ " * 40,
    "def merge(a, b):\n    import heapq\n    return list(heapq.merge(a, b))  # précis\n" * 30,
]
LONG_QUERY = "服务器CPU使用率持续100%怎么办, the quick brown fox jumps over the lazy dog? " * 12
DOCUMENTS = LONG_DOCS + DOCS


@pytest.fixture(scope="module", params=["bert", "xlmr", "modernbert"])
def model_dir(request, tmp_path_factory):
    from rankserve import synthetic

    build = {
        "bert": synthetic.build_tiny_bert_cross_encoder,
        "xlmr": synthetic.build_tiny_xlmr_cross_encoder,
        "modernbert": synthetic.build_tiny_modernbert_cross_encoder,
    }[request.param]
    return build(tmp_path_factory.mktemp(f"tiny-{request.param}-cross-encoder"))


def load(path, max_length: int | None) -> Reranker:
    """The served model; without ``max_length``, at the longest the model takes."""
    return Reranker.from_pretrained(str(path), device="cpu", **({"max_length": max_length} if max_length else {}))


def tokenizer(path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


def raw_scores(reranker: Reranker, query: str, documents: list[str], truncation: str) -> list[float]:
    request = ScoreRequest(query, documents, truncation=truncation, raw_scores=True)
    return [d.score for d in reranker.score_requests([request])[0]]


def assert_close(got: list[float], want: list[float]) -> None:
    assert len(got) == len(want)
    worst = max(abs(a - b) for a, b in zip(got, want))
    assert worst <= TOL, (worst, got, want)


def test_longest_first_follows_the_tokenizers_crate():
    """The table of ``truncate_encodings_longest_first`` in tokenizers' ``src/utils/truncation.rs`` (room 7)."""
    lengths = {"empty": 0, "short": 2, "medium": 4, "long": 8}
    want = {
        ("empty", "empty"): (0, 0), ("empty", "short"): (0, 2), ("empty", "medium"): (0, 4), ("empty", "long"): (0, 7),
        ("short", "empty"): (2, 0), ("short", "short"): (2, 2), ("short", "medium"): (2, 4), ("short", "long"): (2, 5),
        ("medium", "empty"): (4, 0), ("medium", "short"): (4, 2), ("medium", "medium"): (3, 4),
        ("medium", "long"): (3, 4), ("long", "empty"): (7, 0), ("long", "short"): (5, 2), ("long", "medium"): (4, 3),
        ("long", "long"): (3, 4),
    }  # fmt: skip
    for (a, b), kept in want.items():
        assert longest_first(lengths[a], lengths[b], 7) == kept, (a, b)


@pytest.mark.parametrize("max_length", [48, None])
def test_head_gives_the_cards_token_ids(model_dir, max_length):
    reranker = load(model_dir, max_length)
    max_length = reranker.max_length
    tok = tokenizer(model_dir)
    cut_documents = cut_queries = 0
    for query in [*QUERIES, LONG_QUERY]:
        prepared = reranker.prepare(ScoreRequest(query, DOCUMENTS, truncation="head"))
        pairs = {p.doc_index: p for p in prepared.pairs}
        card = tok([query] * len(DOCUMENTS), DOCUMENTS, truncation=True, max_length=max_length)
        query_len = len(tok(query, add_special_tokens=False)["input_ids"])
        short_query = 2 * query_len <= max_length - tok.num_special_tokens_to_add(pair=True)
        if short_query:  # the tokenizer refuses only_second when the query alone is too long
            second_only = tok([query] * len(DOCUMENTS), DOCUMENTS, truncation="only_second", max_length=max_length)
        for i, doc in enumerate(DOCUMENTS):
            pair = pairs[prepared.same_as.get(i, i)]
            assert pair.tokens == card["input_ids"][i], (query[:20], doc[:20])
            assert pair.token_type_ids == (card["token_type_ids"][i] if "token_type_ids" in card else None)
            full = len(tok(query, doc)["input_ids"])
            assert prepared.truncated[i] == (full > max_length)
            cut_documents += full > max_length
            if short_query:  # a short query is never cut
                assert pair.tokens == second_only["input_ids"][i]
            else:
                cut_queries += 1
    assert cut_documents >= len(LONG_DOCS) and cut_queries > 0
    if "token_type_ids" in card:  # BERT: the document's tokens (and the last [SEP]) are type 1
        assert set(pair.token_type_ids) == {0, 1}


@pytest.mark.parametrize("max_length", [48, None])
def test_head_scores_equal_the_cards_forward(model_dir, max_length):
    reranker = load(model_dir, max_length)
    for query in [QUERIES[0], QUERIES[2], LONG_QUERY]:
        got = raw_scores(reranker, query, DOCUMENTS, "head")
        assert_close(got, card_logits(model_dir, query, DOCUMENTS, reranker.max_length))


def test_tail_gives_the_left_truncated_ids(model_dir):
    """``tail`` keeps the document's end: the card's call with ``truncation_side="left"``, query untouched."""
    reranker = Reranker.from_pretrained(str(model_dir), device="cpu", max_length=64)
    tok = tokenizer(model_dir)
    tok.truncation_side = "left"
    room = 64 - tok.num_special_tokens_to_add(pair=True)
    short = [q for q in QUERIES if 2 * len(tok(q, add_special_tokens=False)["input_ids"]) <= room]
    assert short
    for query in short:  # (a longer one is cut as with head, see above)
        prepared = reranker.prepare(ScoreRequest(query, LONG_DOCS, truncation="tail"))
        want = tok([query] * len(LONG_DOCS), LONG_DOCS, truncation="only_second", max_length=64)["input_ids"]
        assert [p.tokens for p in prepared.pairs] == want
        assert all(prepared.truncated)


@pytest.mark.parametrize("policy", ["head_tail", "chunks"])
def test_windows_are_pieces_of_the_documents_own_ids(model_dir, policy):
    reranker = Reranker.from_pretrained(str(model_dir), device="cpu", max_length=48)
    tok = tokenizer(model_dir)
    template = PairTemplate.from_tokenizer(tok)
    query = "capital of France"
    query_ids = tok(query, add_special_tokens=False)["input_ids"]
    assert 2 * len(query_ids) <= 48 - template.num_special  # a query kept whole
    prepared = reranker.prepare(ScoreRequest(query, LONG_DOCS, truncation=policy))
    for index, doc in enumerate(LONG_DOCS):
        doc_ids = tok(doc, add_special_tokens=False)["input_ids"]
        windows = []
        for pair in (p for p in prepared.pairs if p.doc_index == index):
            assert len(pair.tokens) <= 48
            window = pair.tokens[len(template.before) + len(query_ids) + len(template.between) : -len(template.after)]
            assert pair.tokens == template.build(query_ids, window)[0]
            windows.append(window)
        if policy == "head_tail":  # the document's first ids, then its last ones
            (window,) = windows
            n = len(window)
            assert any(window == doc_ids[:h] + doc_ids[len(doc_ids) - (n - h) :] for h in range(1, n))
        else:  # consecutive slices of the ids from the first id to the last
            assert len(windows) > 1
            assert windows[0] == doc_ids[: len(windows[0])] and windows[-1] == doc_ids[-len(windows[-1]) :]
            assert all(any(doc_ids[s : s + len(w)] == w for s in range(len(doc_ids))) for w in windows)
    # each document's score is its (best) window's under the transformers forward on those ids
    per_pair = hf_logits(model_dir, prepared.pairs)
    best = [max(s for p, s in zip(prepared.pairs, per_pair) if p.doc_index == i) for i in range(len(LONG_DOCS))]
    assert_close(raw_scores(reranker, query, LONG_DOCS, policy), best)
