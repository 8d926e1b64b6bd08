"""Encoder cross-encoders on the packed runners (XLM-R: bge-reranker-v2-m3; ModernBERT: gte-reranker-modernbert-base).

Tiny random-weight models of the real transformers classes, loaded through ``Reranker.from_pretrained``;
every score is checked against the model card's code (``AutoModelForSequenceClassification`` in fp32 on
the padded batch the tokenizer builds) and against RankServe's generic padded forward.
"""

from __future__ import annotations

import pytest
import torch

from rankserve import Reranker
from rankserve.engine import ScoreRequest, attention
from rankserve.engine.layout import SeqLayout
from rankserve.engine.modernbert import ModernBertScorer
from rankserve.engine.xlmr import XLMRobertaScorer
from tests.support.official_encoders import card_logits, hf_logits
from tests.support.texts import DOCS, QUERIES

TOL = 1e-5


def raw(reranker: Reranker, requests: list[tuple[str, list[str]]], truncation: str = "head") -> list[list[float]]:
    """Raw scores (logits) of several requests scored together, so their pairs share batches."""
    batch = [ScoreRequest(q, docs, truncation=truncation, raw_scores=True) for q, docs in requests]
    return [[d.score for d in result] for result in reranker.score_requests(batch)]


class Calls:
    """Counts forward calls of a module (a hook on the real module: nothing of ours is replaced)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.count = 0
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, *_) -> None:
        self.count += 1


def assert_close(got: list[float], want: list[float], tol: float = TOL) -> None:
    assert len(got) == len(want)
    worst = max(abs(a - b) for a, b in zip(got, want))
    assert worst <= tol, (worst, got, want)


@pytest.fixture(scope="module")
def xlmr_dir(tmp_path_factory):
    from rankserve.synthetic import build_tiny_xlmr_cross_encoder

    return build_tiny_xlmr_cross_encoder(tmp_path_factory.mktemp("tiny-bge-reranker-v2-m3"))


MODERNBERT_VARIANTS = {
    "cls-global-last": {},  # the last layer (global) runs for each pair's first token alone
    "cls-sliding-last": {"num_hidden_layers": 5},
    "mean": {"classifier_pooling": "mean"},
    "biases": {"attention_bias": True, "mlp_bias": True, "norm_bias": True, "classifier_bias": True},
}


@pytest.fixture(scope="module", params=list(MODERNBERT_VARIANTS))
def modernbert_dir(request, tmp_path_factory):
    from rankserve.synthetic import build_tiny_modernbert_cross_encoder

    path = tmp_path_factory.mktemp(f"tiny-gte-reranker-modernbert-{request.param}")
    return build_tiny_modernbert_cross_encoder(path, **MODERNBERT_VARIANTS[request.param])


# Documents of very different lengths (1 to ~900 tokens: the longest are cut at the tiny models' limit),
# and a literal "<pad>" (XLM-R numbers positions past padding ids, which it does not count).
REQUESTS = [
    (QUERIES[1], DOCS),
    ("capital of France", ["Paris is the capital of France.", "x", "A long document. " * 40]),
    ("pad inside", ["a <pad> token in the text", "The quick brown fox jumps over the lazy dog."]),
]


def check_against_card_and_generic(path, cls) -> Reranker:
    reranker = Reranker.from_pretrained(str(path), device="cpu")
    assert isinstance(reranker.encoder, cls)
    hf_calls, packed_calls = Calls(reranker.hf_model), Calls(reranker.encoder)
    got = raw(reranker, REQUESTS)
    assert hf_calls.count == 0 and packed_calls.count == 1  # every request's pairs in one packed pass
    prepared = [reranker.prepare(ScoreRequest(q, d, truncation="head")) for q, d in REQUESTS]
    assert any(any(p.truncated) for p in prepared)  # the long documents were cut
    for (query, docs), scores, prep in zip(REQUESTS, got, prepared):
        assert_close(scores, hf_logits(path, prep.pairs))  # the same token ids, padded, through transformers
        whole = [i for i, cut in enumerate(prep.truncated) if not cut]  # the card end to end where nothing is cut
        card = card_logits(path, query, [docs[i] for i in whole], reranker.max_length)
        assert_close([scores[i] for i in whole], card)
    # the same pairs through the generic padded forward, in small batches
    generic = Reranker.from_pretrained(str(path), device="cpu", max_batch_tokens=200)
    generic.encoder = None
    assert_close(sum(raw(generic, REQUESTS), []), sum(got, []))
    assert max(sum(got, [])) - min(sum(got, [])) > 0.5  # the scores tell documents apart
    return reranker


def test_xlmr_packed_matches_the_card_and_the_generic_forward(xlmr_dir):
    reranker = check_against_card_and_generic(xlmr_dir, XLMRobertaScorer)
    assert reranker.max_length == 128  # 130 positions, less the two the padding index takes
    served = reranker.score(*REQUESTS[2])  # the served score: the card's sigmoid (nothing cut here)
    logits = card_logits(xlmr_dir, *REQUESTS[2], 128)
    assert_close([d.score for d in served], torch.sigmoid(torch.tensor(logits)).tolist())


def test_modernbert_packed_matches_the_card_and_the_generic_forward(modernbert_dir):
    check_against_card_and_generic(modernbert_dir, ModernBertScorer)


def test_modernbert_sliding_window_changes_scores(tmp_path):
    """The tiny model's local window (±4) matters on these documents: a runner that ignored it would fail above."""
    from rankserve.synthetic import build_tiny_modernbert_cross_encoder

    local = build_tiny_modernbert_cross_encoder(tmp_path / "local")
    wide = build_tiny_modernbert_cross_encoder(tmp_path / "wide", local_attention=512)  # same weights, no window
    query, docs = REQUESTS[0]
    diff = [abs(a - b) for a, b in zip(card_logits(local, query, docs, 256), card_logits(wide, query, docs, 256))]
    assert max(diff) > 1e-2


def test_batch_budget_and_order_do_not_change_scores(xlmr_dir):
    one = Reranker.from_pretrained(str(xlmr_dir), device="cpu")
    many = Reranker.from_pretrained(str(xlmr_dir), device="cpu", max_batch_tokens=64)
    calls = Calls(many.encoder)
    assert_close(sum(raw(many, REQUESTS), []), sum(raw(one, REQUESTS), []))
    assert calls.count > 3
    alone = raw(one, [(REQUESTS[1][0], [REQUESTS[1][1][0]])])[0]
    assert_close(alone, raw(one, REQUESTS)[1][:1])


def test_two_label_xlmr_uses_softmax(tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rankserve.synthetic import build_tiny_xlmr_cross_encoder

    path = build_tiny_xlmr_cross_encoder(tmp_path / "two", num_labels=2)
    reranker = Reranker.from_pretrained(str(path), device="cpu")
    assert isinstance(reranker.encoder, XLMRobertaScorer)
    tok = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForSequenceClassification.from_pretrained(str(path)).eval()
    query, docs = REQUESTS[2]
    with torch.no_grad():
        logits = model(**tok([query] * len(docs), docs, padding=True, return_tensors="pt")).logits
    assert_close([d.score for d in reranker.score(query, docs)], torch.softmax(logits, -1)[:, 1].tolist())


def test_other_encoders_stay_on_the_generic_forward(tiny_bert_dir, tmp_path):
    assert Reranker.from_pretrained(str(tiny_bert_dir), device="cpu").encoder is None
    from rankserve.synthetic import build_tiny_modernbert_cross_encoder

    # a rotary scaling the packed runner does not compute: the generic forward, scores still the card's
    path = build_tiny_modernbert_cross_encoder(tmp_path / "scaled", rope_scaling={"rope_type": "linear", "factor": 2.0})
    reranker = Reranker.from_pretrained(str(path), device="cpu")
    assert reranker.encoder is None
    query, docs = REQUESTS[1]
    assert_close(raw(reranker, [REQUESTS[1]])[0], card_logits(path, query, docs, reranker.max_length))


def _dense_reference(q, k, v, lens_q, lens_k, causal, window, scale):
    """Each sequence on its own, with its mask written out (aligned bottom-right)."""
    out, sq, sk = [], 0, 0
    for lq, lk in zip(lens_q, lens_k):
        i = torch.arange(lq)[:, None] + (lk - lq)
        j = torch.arange(lk)[None, :]
        mask = torch.ones(lq, lk, dtype=torch.bool)
        if causal:
            mask &= j <= i
        if window is not None:
            mask &= (j - i).abs() <= window
        qs, ks, vs = (t.transpose(0, 1) for t in (q[sq : sq + lq], k[sk : sk + lk], v[sk : sk + lk]))
        o = torch.nn.functional.scaled_dot_product_attention(qs, ks, vs, attn_mask=mask, scale=scale)
        out.append(o.transpose(0, 1))
        sq, sk = sq + lq, sk + lk
    return torch.cat(out)


@pytest.mark.parametrize(("causal", "window"), [(False, None), (False, 3), (True, 3), (True, None)])
def test_attention_options_match_a_dense_reference(causal, window):
    torch.manual_seed(0)
    lens = [5, 1, 17, 9]
    cu = torch.tensor([0, *torch.tensor(lens).cumsum(0).tolist()], dtype=torch.int32)
    q, k, v = (torch.randn(sum(lens), 2, 16) for _ in range(3))
    layout = SeqLayout(cu, cu, max(lens), max(lens))
    got = attention.attention(q, k, v, layout, 0.25, causal=causal, window=window)
    assert torch.allclose(got, _dense_reference(q, k, v, lens, lens, causal, window, 0.25), atol=1e-6)
    # one query per sequence (its first token) reading all of its keys, as the encoders' last layer does
    if not causal and window is None:
        first = cu[:-1].long()
        one = SeqLayout(torch.arange(len(lens) + 1, dtype=torch.int32), cu, 1, max(lens))
        got = attention.attention(q[first], k, v, one, 0.25, causal=False)
        want = _dense_reference(q, k, v, lens, lens, False, None, 0.25)[first]
        assert torch.allclose(got, want, atol=1e-6)


def test_bidirectional_attention_never_reaches_the_causal_triton_kernel(tiny_qwen_dir):
    """Under Triton's interpreter the causal kernel takes CPU tensors; a bidirectional call must still go to SDPA."""
    import os
    import subprocess
    import sys

    from tests.support.paths import REPO

    pytest.importorskip("triton", reason="Triton is not installed (the dev extras install it on Linux x86-64)")
    script = """
import torch
from rankserve.engine import attention
from rankserve.engine.packing import pack
from rankserve.engine.types import Pair
batch = pack([Pair(0, 0, (1, 2, 3), [4, 5]), Pair(1, 0, (1, 2, 3), [6])], torch.device("cpu"))
q = k = v = torch.randn(int(batch.ids.shape[0]), 2, 16)
attention.set_backend("triton")
assert attention.kernel_for(q, batch.layout, k, v) == "triton"
assert attention.kernel_for(q, batch.layout, k, v, causal=False) == "sdpa"
print("ok")
"""
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env, cwd=REPO
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]
