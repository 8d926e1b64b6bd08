"""Engine scores equal the official Qwen3-Reranker recipe (fp32, 1e-5) however they are batched."""

from __future__ import annotations

import math
import threading

import pytest
import torch

from rankserve import Reranker
from rankserve.engine import ScoreRequest, qwen3
from rankserve.errors import InvalidInputError, ModelLoadError
from tests.support.official import OfficialRecipe
from tests.support.texts import DOCS, QUERIES

TOL = 1e-5


@pytest.fixture(scope="module")
def official(tiny_qwen_dir):
    return OfficialRecipe(tiny_qwen_dir)


def scores(results):
    return [r.score for r in results]


def assert_close(got, want, tol=TOL):
    assert len(got) == len(want)
    diff = max(abs(a - b) for a, b in zip(got, want))
    assert diff <= tol, f"max |Δ| = {diff:.2e}"


@pytest.mark.parametrize("prefix_reuse", [True, False])
@pytest.mark.parametrize("query", QUERIES)
def test_matches_official_recipe(tiny_qwen_dir, official, query, prefix_reuse):
    rr = Reranker.from_pretrained(str(tiny_qwen_dir), device="cpu", prefix_reuse=prefix_reuse)
    got = scores(rr.score(query, DOCS))
    want = official.scores(query, DOCS)
    assert_close(got, want)
    assert len(set(round(s, 3) for s in got)) > len(DOCS) // 2, "scores should spread, not sit at one value"


def test_custom_instruction_matches_and_changes_scores(tiny_reranker, official):
    instruction = "Judge the document by legal compliance"
    got = scores(tiny_reranker.score(QUERIES[0], DOCS, instruction=instruction))
    assert_close(got, official.scores(QUERIES[0], DOCS, instruction=instruction))
    default = scores(tiny_reranker.score(QUERIES[0], DOCS))
    assert max(abs(a - b) for a, b in zip(got, default)) > 1e-3


@pytest.mark.parametrize("budget", [1, 64, 300, 100_000])
def test_batch_invariance(tiny_qwen_dir, official, budget):
    """Scores do not depend on which other pairs share the micro-batch, or on its size."""
    rr = Reranker.from_pretrained(str(tiny_qwen_dir), device="cpu", max_batch_tokens=budget)
    requests = [ScoreRequest(q, DOCS[i::2] + DOCS[:i]) for i, q in enumerate(QUERIES)]
    together = rr.score_requests(requests)
    for req, res in zip(requests, together):
        assert_close(scores(res), official.scores(req.query, list(req.documents)))


def test_mixed_requests_share_batches_in_any_order(tiny_reranker):
    requests = [ScoreRequest(q, DOCS) for q in QUERIES]
    alone = [scores(tiny_reranker.score(r.query, r.documents)) for r in requests]
    prepared = [tiny_reranker.prepare(r) for r in requests]
    pairs = [p for pr in prepared for p in pr.pairs]
    got = dict(zip(map(id, pairs[::-1]), tiny_reranker.score_pairs(pairs[::-1])))  # interleaved, reversed
    for want, pr in zip(alone, prepared):
        assert_close(scores(pr.results([got[id(p)] for p in pr.pairs])), want)


def test_seq_cls_conversion_gives_the_same_scores(tiny_seqcls_dir, tiny_reranker):
    rr = Reranker.from_pretrained(str(tiny_seqcls_dir), device="cpu")
    assert rr.kind == "qwen3-seq-cls"
    official_seq = OfficialRecipe(tiny_seqcls_dir, seq_cls=True)
    for query in QUERIES[:2]:
        got = scores(rr.score(query, DOCS))
        assert_close(got, official_seq.scores(query, DOCS))
        assert_close(got, scores(tiny_reranker.score(query, DOCS)))


def test_real_tokenizer_matches_official(real_tokenizer_qwen_dir):
    rr = Reranker.from_pretrained(str(real_tokenizer_qwen_dir), device="cpu")
    ref = OfficialRecipe(real_tokenizer_qwen_dir)
    for query in QUERIES:
        assert_close(scores(rr.score(query, DOCS)), ref.scores(query, DOCS))


def test_bert_cross_encoder(tiny_bert_dir):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    rr = Reranker.from_pretrained(str(tiny_bert_dir), device="cpu")
    assert rr.kind == "cross-encoder"
    tok = AutoTokenizer.from_pretrained(str(tiny_bert_dir))
    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_bert_dir)).eval()
    query = "capital of france"
    docs = ["paris is the capital of france.", "def merge(a, b)", "yes no"]
    with torch.no_grad():
        logits = model(**tok([query] * 3, docs, padding=True, return_tensors="pt")).logits[:, 0]
    assert_close(scores(rr.score(query, docs)), torch.sigmoid(logits).tolist())


def test_two_label_cross_encoder_uses_softmax(tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rankserve.synthetic import build_tiny_bert_cross_encoder

    path = build_tiny_bert_cross_encoder(tmp_path / "two", num_labels=2)
    rr = Reranker.from_pretrained(str(path), device="cpu")
    tok = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForSequenceClassification.from_pretrained(str(path)).eval()
    with torch.no_grad():
        logits = model(**tok(["q q"], ["paris"], return_tensors="pt")).logits
    assert_close(scores(rr.score("q q", ["paris"])), torch.softmax(logits, -1)[:, 1].tolist())


def test_rerank_sorts_and_cuts(tiny_reranker):
    ranked = tiny_reranker.rerank(QUERIES[1], DOCS, top_n=3)
    assert len(ranked) == 3
    all_scores = scores(tiny_reranker.score(QUERIES[1], DOCS))
    assert [r.index for r in ranked] == sorted(range(len(DOCS)), key=lambda i: -all_scores[i])[:3]
    assert all(0.0 <= r.score <= 1.0 and r.prompt_tokens > 0 for r in ranked)


@pytest.mark.parametrize("streamed", [False, True])
def test_out_of_memory_splits_the_batch(tiny_qwen_dir, monkeypatch, streamed):
    """A batch that runs out of memory is split and retried; results are unchanged."""
    rr = Reranker.from_pretrained(str(tiny_qwen_dir), device="cpu")
    want = scores(rr.score(QUERIES[0], DOCS))
    rr.stream_prepare = streamed
    real_forward = rr.scorer.forward
    sizes = []

    def forward(batch):
        sizes.append(int(batch.last.numel()))
        if batch.last.numel() > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_forward(batch)

    monkeypatch.setattr(rr.scorer, "forward", forward)
    assert_close(scores(rr.score(QUERIES[0], DOCS)), want)
    assert sizes[0] == len(DOCS) and max(sizes[1:]) <= len(DOCS) // 2 + 1


@pytest.mark.parametrize(
    ("query", "docs", "kwargs", "message"),
    [
        ("", ["a"], {}, "query cannot be empty"),
        ("   ", ["a"], {}, "query cannot be empty"),
        (None, ["a"], {}, "query must be a string"),
        ("q", [], {}, "documents cannot be empty"),
        ("q", ["a", ""], {}, "document 1 is empty"),
        ("q", ["a", "b", 3], {}, "document 2 must be a string"),
        ("q", "just a string", {}, "documents must be a list"),
        ("q", ["a"], {"truncation": "middle"}, "unknown truncation policy 'middle'"),
    ],
)
def test_bad_input_is_a_clear_value_error(tiny_reranker, query, docs, kwargs, message):
    with pytest.raises(InvalidInputError, match=message) as info:
        tiny_reranker.score(query, docs, **kwargs)
    assert isinstance(info.value, ValueError)


def test_top_n_must_be_positive(tiny_reranker):
    with pytest.raises(InvalidInputError, match="top_n"):
        tiny_reranker.rerank("q", ["a"], top_n=0)


def test_path_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ModelLoadError, match="is not a model"):
        Reranker.from_pretrained(str(tmp_path))
    with pytest.raises(ModelLoadError, match="is not a model"):
        Reranker.from_pretrained(str(tmp_path / "missing-dir"))


def test_unsupported_architecture(tmp_path):
    from transformers import BertConfig, BertModel

    BertModel(
        BertConfig(
            vocab_size=10,
            hidden_size=8,
            num_hidden_layers=1,
            num_attention_heads=1,
            intermediate_size=8,
            architectures=["BertModel"],
        )
    ).save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="not supported"):
        Reranker.from_pretrained(str(tmp_path))


def test_scores_are_finite_probabilities(tiny_reranker):
    for r in tiny_reranker.score(QUERIES[0], DOCS):
        assert math.isfinite(r.score) and 0.0 <= r.score <= 1.0


def test_compiled_engine_matches_eager(tiny_qwen_dir, tiny_reranker):
    """compile=True (torch.compile of each decoder layer) changes speed, not scores."""
    import torch._dynamo.utils

    compiled = Reranker.from_pretrained(str(tiny_qwen_dir), device="cpu", compile=True)
    assert compiled.scorer.compiled and compiled.scorer.layer is not qwen3.decoder_layer
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    assert_close(scores(compiled.score(QUERIES[0], DOCS[:6])), scores(tiny_reranker.score(QUERIES[0], DOCS[:6])))
    # the warm-up compiled every shape: other requests (one pair, long documents, mixed queries) add no graph
    compiled.score(QUERIES[1], [DOCS[13] * 3])
    compiled.score("q", DOCS[:1])
    compiled.score_requests([ScoreRequest(QUERIES[2], DOCS[:3]), ScoreRequest(QUERIES[3], DOCS[5:9])])
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs
    # the whole layer as one compiled function (residual adds inside it: GPUs without CUDA graphs) scores the same
    assert compiled.scorer.residual_in_place  # on the CPU the residual adds go in place
    compiled.scorer.residual_in_place = False
    assert_close(scores(compiled.score(QUERIES[0], DOCS[:6])), scores(tiny_reranker.score(QUERIES[0], DOCS[:6])))


def test_residual_adds_in_place_score_as_the_layer_function(tiny_reranker):
    """``add_linear_`` (in place, what the engine runs on the CPU and on Hopper GPUs) against
    ``decoder_layer`` (the residual adds inside, what other GPUs run), eagerly."""
    scorer = tiny_reranker.scorer
    assert scorer.residual_in_place
    in_place = scores(tiny_reranker.score(QUERIES[1], DOCS[:8]))
    scorer.residual_in_place = False
    try:
        whole = scores(tiny_reranker.score(QUERIES[1], DOCS[:8]))
    finally:
        scorer.residual_in_place = True
    assert_close(in_place, whole)
    assert in_place != scores(tiny_reranker.score(QUERIES[2], DOCS[:8]))  # scores that depend on the input


def test_failed_compilation_falls_back_to_eager(tiny_qwen_dir, tiny_reranker):
    """If the compiler breaks at warm-up (exotic setups), the engine runs eagerly instead of failing."""
    rr = Reranker.from_pretrained(str(tiny_qwen_dir), device="cpu", compile=False)
    rr.scorer.compiled = True  # stand in for a compiled scorer whose compiler fails at first use

    def broken_compiled_layer(*args, **kwargs):
        raise RuntimeError("inductor: backend compiler failed")

    rr.scorer.layer = rr.scorer.pre = broken_compiled_layer
    rr.warmup()
    assert not rr.scorer.compiled and rr.scorer.pre is qwen3.pre_attention and rr.scorer.layer is qwen3.decoder_layer
    assert_close(scores(rr.score(QUERIES[0], DOCS[:4])), scores(tiny_reranker.score(QUERIES[0], DOCS[:4])))


def test_a_shared_prefix_is_counted_once_in_the_batch_budget(tiny_reranker):
    from rankserve.engine.packing import plan_batches

    prepared = tiny_reranker.prepare(ScoreRequest(QUERIES[0], DOCS))
    packed_tokens = len(prepared.pairs[0].prefix) + sum(len(p.tokens) for p in prepared.pairs)
    assert len(plan_batches(prepared.pairs, packed_tokens, reuse_prefix=True)) == 1
    assert len(plan_batches(prepared.pairs, packed_tokens, reuse_prefix=False)) > 1


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32])
def test_uploaded_index_arrays_keep_their_values_and_start_aligned(dtype):
    """Compiled GPU kernels copy any input that does not start on a 16-byte boundary, per call."""
    import numpy as np

    from rankserve.engine.packing import upload

    arrays = [np.arange(5), np.arange(3) + 10, np.zeros(0, dtype=np.int64), np.arange(7) + 100]
    flat, out = upload(arrays, torch.device("cpu"), dtype)
    assert [t.tolist() for t in out] == [a.tolist() for a in arrays]
    assert all(t.dtype == dtype and t.data_ptr() % 16 == 0 for t in out)
    assert all(t.untyped_storage().data_ptr() == flat.untyped_storage().data_ptr() for t in out)


@pytest.mark.parametrize("fixture", ["tiny_qwen_dir", "tiny_bert_dir"])
def test_identical_documents_get_identical_scores_and_tie_by_input_order(request, fixture):
    rr = Reranker.from_pretrained(str(request.getfixturevalue(fixture)), device="cpu")
    docs = ["the same passage"] * 5 + ["something else entirely", "the same passage"]
    prepared = rr.prepare(ScoreRequest("a query", docs))
    assert len(prepared.pairs) == 2  # duplicates are scored once
    results = rr.score("a query", docs)
    same = {r.score for r in results if docs[r.index] == "the same passage"}
    assert len(same) == 1
    ranked = [r.index for r in rr.rerank("a query", docs) if docs[r.index] == "the same passage"]
    assert ranked == [0, 1, 2, 3, 4, 6]


@pytest.mark.parametrize(
    ("device", "message"),
    [("xpu", "not supported"), ("cuda:7", "CUDA"), ("banana", "unknown device")],
)
def test_unusable_device_is_a_clear_error(tiny_qwen_dir, device, message):
    with pytest.raises(ModelLoadError, match=message):
        Reranker.from_pretrained(str(tiny_qwen_dir), device=device)


def test_encoder_max_length_comes_from_the_model(tiny_bert_dir, tmp_path):
    """BERT reads 512 positions; an XLM-R reranker (e.g. bge-reranker-v2-m3) reads its table minus 2."""
    from transformers import AutoTokenizer, XLMRobertaConfig, XLMRobertaForSequenceClassification

    assert Reranker.from_pretrained(str(tiny_bert_dir), device="cpu").max_length == 512
    XLMRobertaForSequenceClassification(
        XLMRobertaConfig(
            vocab_size=200,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=1026,
            num_labels=1,
            architectures=["XLMRobertaForSequenceClassification"],
        )
    ).save_pretrained(tmp_path)
    tok = AutoTokenizer.from_pretrained(str(tiny_bert_dir), model_max_length=int(1e30))  # "no limit"
    tok.save_pretrained(tmp_path)
    rr = Reranker.from_pretrained(str(tmp_path), device="cpu", max_length=8192)
    assert rr.kind == "cross-encoder" and rr.max_length == 1024


def test_growing_slices_cover_everything_in_order():
    from rankserve.engine.prepare import growing_slices

    sizes = [10] * 20
    parts = growing_slices(sizes, first=30)
    covered = [i for part in parts for i in range(len(sizes))[part]]
    assert covered == list(range(20))
    assert [sum(sizes[p]) for p in parts] == [30, 60, 110]  # 30, then doubling, then the rest
    assert growing_slices([], first=30) == []
    big_first = [500, 1]
    assert [sum(big_first[p]) for p in growing_slices(big_first, first=30)] == [500, 1]


def test_streamed_preparation_scores_like_the_whole_request(tiny_qwen_dir, monkeypatch):
    """On GPUs, tokenization streams into several forward passes; scores must not notice."""
    from rankserve.engine import prepare, reranker

    monkeypatch.setattr(prepare, "FIRST_SLICE_CHARS", 16_000)
    monkeypatch.setattr(reranker, "STREAM_TOKENS", 2048)
    rr = Reranker.from_pretrained(str(tiny_qwen_dir), device="cpu", max_length=2048)
    docs = [f"{i}: " + " ".join(DOCS[i % 13 :] + DOCS[:12])[:1500] for i in range(40)]  # 60k characters
    docs += [docs[3], "x " * 5000]  # a duplicate and one that must be truncated
    whole = rr.score(QUERIES[0], docs, truncation="head")
    passes, events = [], []
    first_pass = threading.Event()
    rr.scorer.register_forward_hook(lambda module, args, out: passes.append(int(args[0].last.numel())))
    rr.scorer.register_forward_pre_hook(lambda module, args: events.append("forward") or first_pass.set())
    encode = rr.builder.encode

    def slow_encode(texts):
        if len(events) >= 2:  # after the header and the first slice: wait for the first pass, if it comes
            first_pass.wait(timeout=10)
        events.append("tokenize")
        return encode(texts)

    monkeypatch.setattr(rr.builder, "encode", slow_encode)
    rr.stream_prepare = True
    streamed = rr.score(QUERIES[0], docs, truncation="head")
    assert len(passes) >= 3 and sum(passes) == len(docs) - 1  # several passes; the duplicate scored once
    # the first pass is queued before the rest of the documents are tokenized
    assert events[:3] == ["tokenize", "tokenize", "forward"] and events.count("tokenize") >= 4
    assert_close(scores(streamed), scores(whole))
    assert [r.truncated for r in streamed] == [r.truncated for r in whole] and streamed[-1].truncated
    assert max(r.prompt_tokens for r in streamed[:40]) < 2048
    assert_close(scores(streamed[:40]), OfficialRecipe(tiny_qwen_dir, max_length=2048).scores(QUERIES[0], docs[:40]))


def test_fp8_quantization_keeps_the_ranking(tiny_qwen_dir, tiny_reranker):
    """FP8 weights and activations (scaled per channel / per token) stay close to full precision."""
    from scipy.stats import spearmanr

    rr = Reranker.from_pretrained(str(tiny_qwen_dir), device="cpu", quantize="fp8")
    qkv = rr.scorer.weights[0][1]
    assert isinstance(qkv, tuple) and qkv[0].dtype == torch.float8_e4m3fn
    assert rr.scorer.layers[0].mlp.down_proj.weight.numel() == 0  # the full-precision copy is freed
    full, fp8 = scores(tiny_reranker.score(QUERIES[0], DOCS)), scores(rr.score(QUERIES[0], DOCS))
    # random tiny weights make scores steep (0.0001 to 0.99), so FP8 rounding moves them visibly
    assert max(abs(a - b) for a, b in zip(full, fp8)) < 0.3
    assert spearmanr(full, fp8).statistic > 0.9
    assert full != fp8  # it really ran in FP8


@pytest.mark.parametrize(
    ("fixture", "quantize", "message"),
    [
        ("tiny_qwen_dir", "int4", "unknown quantization 'int4'"),
        ("tiny_bert_dir", "fp8", "packed decoder engine only"),
    ],
)
def test_bad_quantization_is_a_clear_error(request, fixture, quantize, message):
    with pytest.raises(ModelLoadError, match=message):
        Reranker.from_pretrained(str(request.getfixturevalue(fixture)), device="cpu", quantize=quantize)


def test_a_bad_request_among_many_is_rejected_before_any_scoring(tiny_reranker, monkeypatch):
    passes = []
    handle = tiny_reranker.scorer.register_forward_hook(lambda *args: passes.append(1))
    from rankserve.engine import reranker

    monkeypatch.setattr(tiny_reranker, "stream_prepare", True)
    monkeypatch.setattr(reranker, "STREAM_TOKENS", 1)  # queue a pass as soon as any pair is ready
    try:
        with pytest.raises(InvalidInputError, match="document 1 is empty"):
            tiny_reranker.score_requests([ScoreRequest(QUERIES[0], DOCS), ScoreRequest(QUERIES[1], ["a", " "])])
    finally:
        handle.remove()
    assert passes == []
