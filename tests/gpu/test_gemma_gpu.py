"""bge-reranker-v2-gemma's shape on a GPU, in bf16: every attention kernel, eager and compiled, agrees.

The CPU suite checks Gemma's maths in fp32 and float64 against transformers and the Triton kernel through
its interpreter; this runs the compiled kernels where they run, with Gemma-2B's attention (8 query heads
sharing one key/value head of 256) and width, on a few layers of random weights.
"""

from __future__ import annotations

import pytest
import torch

from rankserve import Reranker
from rankserve.engine import ScoreRequest, attention
from tests.support.texts import DOCS, QUERIES

pytestmark = pytest.mark.gpu
GEMMA_2B = dict(
    hidden_size=2048, intermediate_size=16384, num_attention_heads=8, num_key_value_heads=1, head_dim=256,
    num_hidden_layers=3, vocab_size=600, initializer_range=0.02,
)  # fmt: skip
"""Gemma-2B's widths (bge-reranker-v2-gemma's base), 3 of its 18 layers, the tiny tokenizer's vocabulary."""


@pytest.fixture(scope="module")
def gemma_2b(tmp_path_factory):
    from transformers import GemmaConfig, GemmaForCausalLM

    from rankserve.synthetic import build_tiny_gemma_tokenizer

    tok = build_tiny_gemma_tokenizer(tmp_path_factory.mktemp("gemma-tok"))
    torch.manual_seed(0)
    model = GemmaForCausalLM(
        GemmaConfig(**GEMMA_2B, pad_token_id=0, bos_token_id=2, architectures=["GemmaForCausalLM"])
    ).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.normal_(std=0.3)  # initialised to zeros: a wrong (1 + weight) offset would not show
    return model.to("cuda", torch.bfloat16), tok


def scores(rr: Reranker, requests) -> list[float]:
    return [d.score for r in rr.score_requests(requests) for d in r]


def test_gemma_kernels_and_compiled_layers_agree_in_bf16(gemma_2b):
    model, tok = gemma_2b
    docs = list(dict.fromkeys(DOCS))  # one pair a document
    requests = [ScoreRequest(QUERIES[0], docs, raw_scores=True), ScoreRequest(QUERIES[1], docs[:5], raw_scores=True)]
    rr = Reranker.from_model(model, tok, "bge-reranker-v2-gemma", cuda_graphs=False)
    assert rr.kind == "gemma-causal-lm" and rr.scorer.head_dim == 256 and rr.scorer.n_kv == 1
    got = {}
    for backend in ("sdpa", "flash", "triton"):
        attention.set_backend(backend)
        got[backend] = scores(rr, requests)
    attention.set_backend("auto")
    got["auto"] = scores(rr, requests)
    compiled = Reranker.from_model(model, tok, "bge-reranker-v2-gemma", compile=True)
    compiled.warmup()  # compiles (Gemma's norm and activation bound to the layer functions), records graphs
    assert compiled.scorer.compiled
    got["compiled"] = scores(compiled, requests)
    # float32 transformers, one unpadded pair at a time: the reference the bf16 runs round around
    yes = tok("Yes", add_special_tokens=False)["input_ids"][0]
    ref_model = model.float()
    with torch.no_grad():
        pairs = [p for r in requests for p in rr.prepare(r).pairs]
        want = [
            float(ref_model(torch.tensor([[*p.prefix, *p.tokens]], device="cuda")).logits[0, -1, yes]) for p in pairs
        ]
    model.to(torch.bfloat16)
    scale = max(abs(w) for w in want)
    assert max(want) - min(want) > 0.05 * scale, want  # the comparison means something
    for name, values in got.items():
        worst = max(abs(a - b) for a, b in zip(values, want, strict=True))
        assert worst <= 0.05 * scale, (name, worst, values, want)
