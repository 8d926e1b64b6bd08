"""Reranker families beyond Qwen3-Reranker, each against an independent copy of its model card's code.

Tiny random-weight checkpoints of the real transformers classes (Qwen3, Qwen2, Gemma), saved with
``save_pretrained`` under a directory name that says the family, loaded through ``Reranker.from_pretrained``.
fp32, equal to 1e-5: plain, through prefix reuse on and off, packing into small micro-batches, and truncation.
"""

from __future__ import annotations

import pytest
import torch

from rankserve import Reranker
from rankserve.engine import families
from rankserve.engine.qwen3 import Qwen3Scorer
from rankserve.errors import ModelLoadError
from tests.support import official_families as official

QUERY = "How do I limit a Docker container's memory?"
DOCS = [
    "Use the --memory option: docker run --memory 512m limits the container.",
    "Paris is the capital of France.",
    "服务器CPU使用率持续100%怎么办? 检查进程。",
    "  Leading and trailing spaces, then punctuation at the end...  ",
    "def merge(a, b):\n    return sorted(a + b)\n",
    "Paris is the capital of France.",  # a duplicate
    "Dockerコンテナのメモリ使用量を制限するには --memory オプションを使います。" * 3,
]
TOL = 1e-5


@pytest.fixture(scope="module")
def qwen_tok(shared_dir):
    from transformers import AutoTokenizer

    path = shared_dir / "qwen3-tokenizer"
    if not path.is_dir():
        pytest.skip("../shared/qwen3-tokenizer is not present")
    return AutoTokenizer.from_pretrained(str(path))


def build(tmp_path_factory, name, arch, tokenizer, boost, **overrides):
    from rankserve.synthetic import build_tiny_llm_reranker

    return build_tiny_llm_reranker(tmp_path_factory.mktemp("m") / name, arch, tokenizer, boost, **overrides)


@pytest.fixture(scope="module")
def zerank_dir(tmp_path_factory, qwen_tok):
    return build(tmp_path_factory, "zerank-2-tiny", "Qwen3ForCausalLM", qwen_tok, ("Yes",))


@pytest.fixture(scope="module")
def ctxl_dir(tmp_path_factory, qwen_tok):
    return build(tmp_path_factory, "ctxl-rerank-v2-instruct-tiny", "Qwen3ForCausalLM", qwen_tok, ("!",))


@pytest.fixture(scope="module")
def mxbai_dir(tmp_path_factory, qwen_tok):
    return build(tmp_path_factory, "mxbai-rerank-base-v2-tiny", "Qwen2ForCausalLM", qwen_tok, ("1", "0"))


@pytest.fixture(scope="module")
def gemma_dir(tiny_gemma_dir):
    return tiny_gemma_dir


def ours(path, query, docs, instruction=None, raw=False, **kw):
    from rankserve.engine import ScoreRequest

    rr = Reranker.from_pretrained(str(path), device="cpu", dtype="float32", **kw)
    [res] = rr.score_requests([ScoreRequest(query, docs, instruction, "head", raw_scores=raw)])
    return rr, [r.score for r in res]


def close(a, b):
    """Equal to TOL relative to the set's largest magnitude: a raw logit of ~10 carries fp32 noise of ~1e-5
    (the card's own scores move by 3e-5 when other documents change its padding)."""
    assert len(a) == len(b)
    scale = max(1.0, *(abs(y) for y in b))
    for x, y in zip(a, b):
        assert abs(x - y) <= TOL * scale, (a, b)


def spread(values):
    assert max(values) - min(values) > 1e-3, values  # the comparison means something


# ---- recognition ---------------------------------------------------------------------------------------------
def test_families_are_recognised_from_the_name(zerank_dir, ctxl_dir, mxbai_dir, gemma_dir, tiny_qwen_dir):
    for path, name, runner in [
        (zerank_dir, "zerank-2", families.PACKED),
        (ctxl_dir, "ctxl-rerank-v2", families.PACKED),
        (mxbai_dir, "mxbai-rerank-base-v2", families.PACKED),
        (gemma_dir, "bge-reranker-v2-gemma", families.PACKED),
        (tiny_qwen_dir, "qwen3-reranker", families.PACKED),
    ]:
        rr = Reranker.from_pretrained(str(path), device="cpu")
        assert rr.family.name == name and rr.family.runner == runner
        assert isinstance(rr.scorer, Qwen3Scorer)


def test_unknown_causal_lm_is_a_load_error_naming_family(tmp_path_factory, qwen_tok):
    path = build(tmp_path_factory, "my-finetune", "Qwen2ForCausalLM", qwen_tok, ())
    with pytest.raises(ModelLoadError, match="--family") as err:
        Reranker.from_pretrained(str(path), device="cpu")
    assert "mxbai-rerank-v2" in str(err.value)
    rr = Reranker.from_pretrained(str(path), device="cpu", family="mxbai-rerank-v2")  # the override
    assert rr.family.name == "mxbai-rerank-v2"
    with pytest.raises(ModelLoadError, match="qwen3 family"):
        Reranker.from_pretrained(str(path), device="cpu", family="zerank-2")
    with pytest.raises(ModelLoadError, match="unknown --family"):
        Reranker.from_pretrained(str(path), device="cpu", family="nope")


def test_score_semantics_are_described(ctxl_dir, mxbai_dir):
    d = Reranker.from_pretrained(str(ctxl_dir), device="cpu").describe_scores()
    assert d["score"] == "raw logit" and "vocabulary id 0" in d["raw"] and "bfloat16" in d["raw"]
    assert "non-commercial" in d["licence"]
    d = Reranker.from_pretrained(str(mxbai_dir), device="cpu").describe_scores()
    assert d["score"] == "probability" and d["formula"] == "sigmoid(raw - 4.5)"
    assert families.FAMILIES["zerank-2"].activation.formula == "sigmoid(x/5)"


# ---- zerank --------------------------------------------------------------------------------------------------
def test_zerank_matches_the_card(zerank_dir):
    raw, norm = official.zerank(zerank_dir, QUERY, DOCS)
    spread(raw)
    for reuse in (True, False):
        _, got = ours(zerank_dir, QUERY, DOCS, prefix_reuse=reuse, max_batch_tokens=64)
        close(got, norm)
        _, got_raw = ours(zerank_dir, QUERY, DOCS, raw=True, prefix_reuse=reuse)
        close(got_raw, raw)


def test_zerank_1_caps_characters_as_its_remote_code(tmp_path_factory, qwen_tok):
    path = build(tmp_path_factory, "zerank-1-small-tiny", "Qwen3ForCausalLM", qwen_tok, ("Yes",))
    docs = ["word " * 2_500 + "end", "short one"]
    query = "q " * 1_100
    raw, norm = official.zerank(path, query, docs, v1=True)
    rr, got = ours(path, query, docs)
    assert rr.family.name == "zerank-1"
    close(got, norm)


def test_zerank_split_prompt_tokenizes_as_the_full_chat_string(zerank_dir, qwen_tok):
    from rankserve.engine import ScoreRequest

    rr = Reranker.from_pretrained(str(zerank_dir), device="cpu")
    prepared = rr.prepare(ScoreRequest(" " + QUERY + "\n", DOCS))
    for pair in prepared.pairs:
        doc = DOCS[pair.doc_index]
        messages = [{"role": "system", "content": QUERY.strip()}, {"role": "user", "content": doc.strip()}]
        full = qwen_tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert list(pair.prefix) + pair.tokens == qwen_tok(full, add_special_tokens=False)["input_ids"]


# ---- ctxl ----------------------------------------------------------------------------------------------------
def test_ctxl_matches_the_card(ctxl_dir):
    for instruction in ("", "Prefer recent documents"):
        raw, _ = official.ctxl(ctxl_dir, QUERY, DOCS, instruction)
        spread(raw)
        for reuse in (True, False):
            _, got = ours(ctxl_dir, QUERY, DOCS, instruction or None, prefix_reuse=reuse, max_batch_tokens=96)
            assert got == raw  # both rounded to bfloat16: equal, not just close


def test_ctxl_split_prompt_tokenizes_as_the_full_string(ctxl_dir, qwen_tok):
    from rankserve.engine import ScoreRequest

    rr = Reranker.from_pretrained(str(ctxl_dir), device="cpu")
    prepared = rr.prepare(ScoreRequest(QUERY, DOCS, "be strict"))
    full = official.ctxl_prompts(QUERY, "be strict", [DOCS[p.doc_index] for p in prepared.pairs])
    for pair, text in zip(prepared.pairs, full):
        assert list(pair.prefix) + pair.tokens == qwen_tok(text)["input_ids"]


def test_ctxl_truncation_keeps_the_query(ctxl_dir, qwen_tok):
    from rankserve.engine import ScoreRequest

    rr = Reranker.from_pretrained(str(ctxl_dir), device="cpu", max_length=64)
    long = "memory limits " * 200
    [pair] = rr.prepare(ScoreRequest(QUERY, [long], truncation="head")).pairs
    tail = qwen_tok(f"\n<Query> {QUERY} ??", add_special_tokens=False)["input_ids"]
    doc = qwen_tok(" " + long, add_special_tokens=False)["input_ids"]
    assert pair.num_tokens == 64 and pair.tokens[-len(tail) :] == tail
    assert pair.tokens[: -len(tail)] == doc[: len(pair.tokens) - len(tail)]


def test_ctxl_seq_cls_conversion_is_on_the_fast_path(ctxl_dir, tmp_path_factory):
    from transformers import AutoTokenizer, Qwen3ForCausalLM, Qwen3ForSequenceClassification

    causal = Qwen3ForCausalLM.from_pretrained(str(ctxl_dir))
    config = causal.config
    config.num_labels, config.architectures = 1, ["Qwen3ForSequenceClassification"]
    seq = Qwen3ForSequenceClassification(config).eval()
    seq.model.load_state_dict(causal.model.state_dict())
    with torch.no_grad():
        seq.score.weight.copy_(causal.get_output_embeddings().weight[0][None, :])
    path = tmp_path_factory.mktemp("m") / "my-seq-cls"
    seq.save_pretrained(str(path))
    AutoTokenizer.from_pretrained(str(ctxl_dir)).save_pretrained(str(path))
    raw, _ = official.ctxl(path, QUERY, DOCS, seq_cls=True)
    rr, got = ours(path, QUERY, DOCS, family="ctxl-rerank-v2")
    assert rr.kind == "qwen3-seq-cls" and rr.scorer is not None
    assert got == raw


# ---- mxbai ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("instruction", [None, "Find code"])
def test_mxbai_matches_the_card(mxbai_dir, instruction):
    raw, norm = official.Mxbai(mxbai_dir, estimated_max=9.0).scores(QUERY, DOCS, instruction)
    spread(raw)
    rr, got = ours(mxbai_dir, QUERY, DOCS, instruction, max_batch_tokens=128)
    # Qwen2 runs on the packed engine (its q/k/v biases are not zero here), not the transformers forward
    assert rr.kind == "qwen2-causal-lm" and isinstance(rr.scorer, Qwen3Scorer)
    assert rr.scorer.weights[0][2] is not None and rr.scorer.weights[0][2].abs().max() > 0.1
    close(got, norm)
    _, got_raw = ours(mxbai_dir, QUERY, DOCS, instruction, raw=True)
    close(got_raw, raw)
    _, got_raw = ours(mxbai_dir, QUERY, DOCS, instruction, raw=True, prefix_reuse=False)
    close(got_raw, raw)


def test_mxbai_truncation_matches_the_card(mxbai_dir):
    card = official.Mxbai(mxbai_dir, max_length=40, estimated_max=9.0)
    docs = ["memory limits " * 50, "short", QUERY * 5]
    query = "a long query " * 30
    raw, norm = card.scores(query, docs)
    rr, got = ours(mxbai_dir, query, docs, max_length=40 + card.predefined_length)
    close(got, norm)


# ---- bge-reranker-v2-gemma -----------------------------------------------------------------------------------
def packed_gemma(rr):
    """The Gemma model runs on the packed engine, with Gemma's norm, activation and embedding scale."""
    from rankserve.engine import qwen3

    assert rr.kind == "gemma-causal-lm" and isinstance(rr.scorer, Qwen3Scorer) and rr.hf_model is None
    assert rr.scorer.options == {"norm": qwen3.offset_rms_norm, "act": qwen3.gelu_tanh}
    assert rr.scorer.n_kv == 1 and rr.scorer.head_dim == 256 and float(rr.scorer.embed_scale) == 8.0  # sqrt(64)
    return rr


def test_bge_gemma_matches_the_card(gemma_dir):
    raw, norm = official.bge_gemma(gemma_dir, QUERY, DOCS)
    spread(raw)
    rr, got = ours(gemma_dir, QUERY, DOCS, max_batch_tokens=64)  # packed into several micro-batches
    packed_gemma(rr)
    close(got, norm)
    rr, got_raw = ours(gemma_dir, QUERY, DOCS, raw=True)
    close(got_raw, raw)
    # several documents of one request: their shared prefix ([bos] A: query \n) is computed once
    from rankserve.engine import ScoreRequest
    from rankserve.engine.packing import packed_tokens, plan_batches

    pairs = rr.prepare(ScoreRequest(QUERY, DOCS)).pairs
    assert len(plan_batches(pairs, rr.max_batch_tokens, True)) == 1
    assert packed_tokens(pairs, True) < packed_tokens(pairs, False)
    _, got_raw = ours(gemma_dir, QUERY, DOCS, raw=True, prefix_reuse=False)
    close(got_raw, raw)


def test_bge_gemma_requests_packed_into_one_batch_match_the_card(gemma_dir):
    from rankserve.engine import ScoreRequest
    from rankserve.engine.packing import plan_batches

    queries = [QUERY, "capital of France", "合并两个列表"]
    requests = [ScoreRequest(q, DOCS[i : i + 4], None, "head", raw_scores=True) for i, q in enumerate(queries)]
    for reuse in (True, False):
        rr = packed_gemma(Reranker.from_pretrained(str(gemma_dir), device="cpu", dtype="float32", prefix_reuse=reuse))
        pairs = [pair for r in requests for pair in rr.prepare(r).pairs]
        assert len(plan_batches(pairs, rr.max_batch_tokens, reuse)) == 1  # all three requests in one pass
        for request, results in zip(requests, rr.score_requests(requests), strict=True):
            raw, _ = official.bge_gemma(gemma_dir, request.query, request.documents)
            close([r.score for r in results], raw)


def test_bge_gemma_packed_forward_equals_transformers_in_float64(gemma_dir):
    """In float64 the rounding noise of fp32 (~1e-5 on these logits, also between the card's own batches) is
    gone: each pair's score is transformers' unpadded forward to the fp32 head's rounding."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rankserve.engine import ScoreRequest

    model = AutoModelForCausalLM.from_pretrained(str(gemma_dir), dtype=torch.float64).eval()
    tok = AutoTokenizer.from_pretrained(str(gemma_dir))
    rr = packed_gemma(Reranker.from_model(model, tok, str(gemma_dir), max_batch_tokens=256))
    request = ScoreRequest(QUERY, DOCS[:5], None, "head", raw_scores=True)
    got = [r.score for r in rr.score_requests([request, ScoreRequest("Paris", DOCS[1:3], raw_scores=True)])[0]]
    yes = tok("Yes", add_special_tokens=False)["input_ids"][0]
    with torch.no_grad():
        want = [
            float(model(torch.tensor([[*p.prefix, *p.tokens]])).logits[0, -1, yes]) for p in rr.prepare(request).pairs
        ]
    spread(want)
    assert max(abs(a - b) for a, b in zip(got, want, strict=True)) < 1e-5, (got, want)


def test_bge_gemma_seq_cls_conversion_is_on_the_packed_engine(gemma_dir, tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer, GemmaForSequenceClassification

    causal = AutoModelForCausalLM.from_pretrained(str(gemma_dir))
    yes = AutoTokenizer.from_pretrained(str(gemma_dir))("Yes", add_special_tokens=False)["input_ids"][0]
    config = causal.config
    config.num_labels, config.architectures = 1, ["GemmaForSequenceClassification"]
    seq = GemmaForSequenceClassification(config).eval()
    seq.model.load_state_dict(causal.model.state_dict())
    with torch.no_grad():
        seq.score.weight.copy_(causal.get_output_embeddings().weight[yes][None, :])
    path = tmp_path_factory.mktemp("m") / "my-gemma-seq-cls"
    seq.save_pretrained(str(path))
    AutoTokenizer.from_pretrained(str(gemma_dir)).save_pretrained(str(path))
    rr, got = ours(path, QUERY, DOCS, raw=True, family="bge-reranker-v2-gemma")
    assert rr.kind == "gemma-seq-cls" and isinstance(rr.scorer, Qwen3Scorer)
    _, want = ours(gemma_dir, QUERY, DOCS, raw=True)
    close(got, want)


def test_gemma_norm_and_embedding_are_bit_exact_in_bfloat16():
    """Gemma's RMSNorm scales by (1 + weight) in fp32 and casts after: in bf16 ours is transformers' bit for
    bit, and the other order (cast, then scale) is not; the embedding scale is sqrt(hidden) in bf16."""
    from transformers.models.gemma.modeling_gemma import GemmaConfig, GemmaModel, GemmaRMSNorm

    from rankserve.engine.qwen3 import offset_rms_norm

    torch.manual_seed(0)
    norm = GemmaRMSNorm(256, eps=1e-6).to(torch.bfloat16)
    with torch.no_grad():
        norm.weight.normal_(std=0.5)
    x = (torch.randn(64, 256) * 3).to(torch.bfloat16)
    assert torch.equal(offset_rms_norm(x, 1.0 + norm.weight.float(), 1e-6), norm(x))
    other_order = torch.nn.functional.rms_norm(x.float(), (256,), eps=1e-6).to(torch.bfloat16) * (1.0 + norm.weight)
    assert not torch.equal(other_order, norm(x))
    cfg = GemmaConfig(vocab_size=32, hidden_size=96, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                      num_key_value_heads=1, head_dim=32)  # fmt: skip
    base = GemmaModel(cfg).to(torch.bfloat16).eval()
    scorer = Qwen3Scorer(base, torch.zeros(96))
    ids = torch.arange(32)
    with torch.no_grad():
        want = base.embed_tokens(ids)
        if not torch.equal(want, torch.nn.functional.embedding(ids, base.embed_tokens.weight) * scorer.embed_scale):
            pytest.fail("the embedding is scaled differently from transformers'")
    assert scorer.embed_scale.dtype == torch.bfloat16 and float(scorer.embed_scale) == 9.8125  # sqrt(96) in bf16


def test_later_gemmas_are_refused_not_run_approximately(tmp_path_factory):
    """Gemma 2 (logit soft-capping, sliding windows, extra norms) has no family here and the packed engine
    refuses its model type; neither recognition nor --family serves it with Gemma 1's maths."""
    from transformers import AutoModelForCausalLM

    from rankserve.synthetic import build_tiny_gemma_tokenizer

    tok = build_tiny_gemma_tokenizer(tmp_path_factory.mktemp("gemma2-tok"))
    path = build(tmp_path_factory, "bge-reranker-v2.5-gemma2-lightweight", "Gemma2ForCausalLM", tok, ("Yes",))
    with pytest.raises(ModelLoadError, match="--family"):
        Reranker.from_pretrained(str(path), device="cpu")
    with pytest.raises(ModelLoadError, match="gemma family"):
        Reranker.from_pretrained(str(path), device="cpu", family="bge-reranker-v2-gemma")
    base = AutoModelForCausalLM.from_pretrained(str(path)).model
    with pytest.raises(ValueError, match="'gemma2' is not supported by the packed engine"):
        Qwen3Scorer(base, torch.zeros(base.config.hidden_size))


def test_bge_gemma_truncation_matches_the_card(gemma_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gemma_dir))
    fixed = len(tok("\n", add_special_tokens=False)["input_ids"]) + len(
        tok(_GEMMA_PROMPT, add_special_tokens=False)["input_ids"]
    )
    docs = ["The quick brown fox jumps over the lazy dog. " * 20, "yes no", "Paris"]
    query = "Judge whether the Document meets the requirements " * 6
    raw, norm = official.bge_gemma(gemma_dir, query, docs, max_length=48)
    spread(raw)
    rr, got = ours(gemma_dir, query, docs, max_length=48 + fixed)
    packed_gemma(rr)
    close(got, norm)
    assert all(r.truncated for r in rr.score(query, docs[:1]))


_GEMMA_PROMPT = (
    "Given a query A and a passage B, determine whether the passage contains an answer to the query by "
    "providing a prediction of either 'Yes' or 'No'."
)


# ---- over HTTP ------------------------------------------------------------------------------------------------
def test_server_family_option_scores_and_raw_scores(tmp_path_factory, qwen_tok, tmp_path):
    import httpx

    from tests.support.server import ServerProcess

    path = build(tmp_path_factory, "my-finetune", "Qwen2ForCausalLM", qwen_tok, ("1", "0"))
    refused = ServerProcess(path, tmp_path / "refused.log")
    assert refused.proc.wait(timeout=120) != 0 and "--family" in refused.log()
    server = ServerProcess(path, tmp_path / "server.log", "--family", "mxbai-rerank-base-v2").wait_ready()
    try:
        model = httpx.get(server.url + "/v1/models", timeout=10).json()["data"][0]
        assert model["scores"]["family"] == "mxbai-rerank-base-v2"
        assert model["scores"]["formula"] == "sigmoid(raw - 4.5)" and model["scores"]["score"] == "probability"
        body = {"query": QUERY, "documents": DOCS[:3]}
        served = httpx.post(server.url + "/v1/rerank", json=body, timeout=60).json()["results"]
        raw = httpx.post(server.url + "/v1/rerank", json={**body, "raw_scores": True}, timeout=60).json()["results"]
        raw_by_index = {r["index"]: r["relevance_score"] for r in raw}
        for r in served:
            expected = families.FAMILIES["mxbai-rerank-base-v2"].activation(raw_by_index[r["index"]])
            assert abs(r["relevance_score"] - expected) < 1e-6
        assert any(v < 0 or v > 1 for v in raw_by_index.values())  # logits, not probabilities
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize("fixture", ["mxbai_dir", "gemma_dir"])
def test_fp8_runs_on_every_packed_family(request, fixture, monkeypatch):
    """FP8 projections on Qwen2 (q/k/v biases) and Gemma (offset norms, GeLU): the projections really are FP8,
    and the scores are those of the same maths simulated in fp32 (weights and each token's activations rounded
    to e4m3 with their scales, then multiplied exactly): the FP8 path loses nothing beyond FP8's own rounding."""
    from rankserve.engine import qwen3
    from tests.support.texts import DOCS, QUERIES

    path = request.getfixturevalue(fixture)
    _, full = ours(path, QUERIES[0], DOCS, raw=True)
    rr, fp8 = ours(path, QUERIES[0], DOCS, raw=True, quantize="fp8")
    assert isinstance(rr.scorer.weights[0][1], tuple) and rr.scorer.weights[0][1][0].dtype == torch.float8_e4m3fn
    assert full != fp8

    def simulated(x, w, b=None):
        if not isinstance(w, tuple):
            return torch.nn.functional.linear(x, w, b)
        x8, x_scale = qwen3.quantize_rows(x)
        w8, w_scale = w
        return torch.nn.functional.linear(x8.float() * x_scale, w8.float() * w_scale.t(), b).to(x.dtype)

    monkeypatch.setattr(qwen3, "linear", simulated)
    _, want = ours(path, QUERIES[0], DOCS, raw=True, quantize="fp8")
    spread = max(full) - min(full)
    assert max(abs(a - b) for a, b in zip(want, fp8, strict=True)) < 1e-4 * spread
