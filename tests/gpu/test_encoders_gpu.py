"""The packed encoder runners on a GPU: FlashAttention's bidirectional and sliding-window calls, and whole models.

The CPU suite checks the runners in fp32 through padded SDPA (``tests/engine/test_encoders.py``); on a GPU
attention goes to variable-length FlashAttention with ``is_causal=False`` (and a window for ModernBERT's
local layers). This checks that kernel call against padded SDPA, and each tiny model in bf16 against the
transformers forward: the packed runner's error from the fp32 reference stays within a small multiple of
transformers' own bf16 error.
"""

from __future__ import annotations

import pytest
import torch

from rankserve import Reranker
from rankserve.engine import ScoreRequest, attention
from rankserve.engine.layout import SeqLayout
from tests.support.texts import DOCS, QUERIES

pytestmark = pytest.mark.gpu
BF16 = torch.bfloat16


@pytest.mark.parametrize(("causal", "window"), [(False, None), (False, 64), (True, 64)])
def test_flash_options_match_padded_sdpa(causal, window):
    if torch.cuda.get_device_capability() < (8, 0):
        pytest.skip("FlashAttention needs an Ampere or newer GPU")
    gen = torch.Generator(device="cuda").manual_seed(0)
    lens = [1, 300, 77, 1024, 5]
    cu = torch.tensor([0, *torch.tensor(lens).cumsum(0).tolist()], dtype=torch.int32, device="cuda")
    q, k, v = (torch.randn(sum(lens), 12, 64, device="cuda", generator=gen, dtype=BF16) for _ in range(3))
    layout = SeqLayout(cu, cu, max(lens), max(lens))
    assert attention.kernel_for(q, layout, k, v, causal=causal) == "flash"
    got = attention.attention(q, k, v, layout, 0.125, causal=causal, window=window).float()
    attention.set_backend("sdpa")
    try:
        layout = SeqLayout(cu, cu, max(lens), max(lens))
        want = attention.attention(q.float(), k.float(), v.float(), layout, 0.125, causal=causal, window=window)
    finally:
        attention.set_backend("auto")
    assert (got - want).abs().max().item() < 2e-2


def _hf_logits(model, pairs, pad_id: int) -> torch.Tensor:
    width = max(len(p.tokens) for p in pairs)
    ids = torch.full((len(pairs), width), pad_id, device="cuda")
    mask = torch.zeros((len(pairs), width), dtype=torch.long, device="cuda")
    for row, pair in enumerate(pairs):
        ids[row, : len(pair.tokens)] = torch.tensor(pair.tokens)
        mask[row, : len(pair.tokens)] = 1
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).logits[:, 0].float()


@pytest.mark.parametrize("arch", ["xlm-roberta", "modernbert", "modernbert-mean"])
def test_packed_encoder_matches_transformers_in_bf16(arch, tmp_path):
    from transformers import AutoModelForSequenceClassification

    from rankserve import synthetic

    dims = {"hidden_size": 256, "num_attention_heads": 4, "intermediate_size": 512}  # head_dim 64, as the real models
    if arch == "xlm-roberta":
        path = synthetic.build_tiny_xlmr_cross_encoder(tmp_path / arch, **dims)
    else:
        pooling = "mean" if arch.endswith("mean") else "cls"
        path = synthetic.build_tiny_modernbert_cross_encoder(tmp_path / arch, classifier_pooling=pooling, **dims)
    reranker = Reranker.from_pretrained(str(path), device="cuda", dtype="bfloat16")
    assert reranker.encoder is not None
    requests = [ScoreRequest(q, DOCS, truncation="head", raw_scores=True) for q in QUERIES]
    got = torch.tensor([d.score for r in reranker.score_requests(requests) for d in r], device="cuda")
    pairs = [p for r in requests for p in reranker.prepare(r).pairs]
    pad = reranker.tokenizer.pad_token_id
    ref = _hf_logits(AutoModelForSequenceClassification.from_pretrained(str(path)).cuda().eval(), pairs, pad)
    hf_bf16 = _hf_logits(
        AutoModelForSequenceClassification.from_pretrained(str(path), dtype=BF16).cuda().eval(), pairs, pad
    )
    hf_err = (hf_bf16 - ref).abs().max().item()
    ours = (got - ref).abs().max().item()
    assert ours <= 3 * hf_err + 0.05, (ours, hf_err)
