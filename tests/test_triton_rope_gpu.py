"""The fused q/k norm + rotary kernel on a GPU, in bf16, against the model's maths in fp32.

The CPU suite checks the kernel's maths in fp32 through Triton's interpreter
(``test_triton_attention.py``); this checks the compiled kernel where it runs, with the 0.6B and 8B
models' head counts and token counts that leave the last block part-filled.
"""

from __future__ import annotations

import pytest
import torch

from rankserve.engine import qwen3, triton_rope

pytestmark = pytest.mark.skipif(
    not (torch.cuda.is_available() and triton_rope.triton is not None), reason="needs a CUDA GPU and Triton"
)


@pytest.mark.parametrize("n_q, n_kv, tokens", [(16, 8, 1000), (32, 8, 77), (6, 2, 33)])
def test_kernel_matches_the_models_maths_in_bf16(n_q, n_kv, tokens):
    dim, bf16 = 128, torch.bfloat16
    gen = torch.Generator(device="cuda").manual_seed(n_q + tokens)
    qkv = torch.randn(tokens, (n_q + 2 * n_kv) * dim, device="cuda", generator=gen).to(bf16) * 4
    q_w = (torch.rand(dim, device="cuda", generator=gen) + 0.5).to(bf16)
    k_w = (torch.rand(dim, device="cuda", generator=gen) + 0.5).to(bf16)
    angles = torch.arange(tokens, device="cuda")[:, None].float() * torch.rand(dim // 2, device="cuda", generator=gen)
    angles = torch.cat((angles, angles), dim=-1)
    cos, sin = angles.cos().to(bf16)[:, None], angles.sin().to(bf16)[:, None]
    want = qwen3.qk_norm_rope(qkv.float(), q_w.float(), k_w.float(), cos.float(), sin.float(), 1e-6, n_q, n_kv, dim)
    got = triton_rope.qk_norm_rope(qkv, q_w, k_w, cos, sin, 1e-6, n_q, n_kv)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape and g.dtype == bf16
        # one bf16 rounding: at most half a unit in the last place, 2^-8 of the largest value
        assert float((g.float() - w).abs().max()) <= 2**-8 * float(w.abs().max()) + 1e-6


def test_compiled_layer_runs_the_kernel():
    """``torch.compile`` of the layer's first half puts the kernel (as its Triton op) into the compiled code,
    with the token count dynamic as in the engine, and matches the eager layer to bf16 rounding."""
    from torch.profiler import ProfilerActivity, profile

    from rankserve.engine import attention

    n_q, n_kv, dim, hidden, bf16 = 16, 8, 128, 256, torch.bfloat16
    gen = torch.Generator(device="cuda").manual_seed(0)

    def rand(*shape, scale=1.0):
        return (torch.randn(*shape, device="cuda", generator=gen) * scale).to(bf16)

    weights = (rand(hidden), rand((n_q + 2 * n_kv) * dim, hidden, scale=hidden**-0.5), rand(dim), rand(dim))
    compiled = torch.compile(qwen3.pre_attention, dynamic=None)
    attention.set_backend("triton")
    try:
        for tokens in (300, 77):  # a second size: the compiled code is reused with another token count
            x = rand(tokens, hidden)
            angles = torch.arange(tokens, device="cuda")[:, None].float() * torch.rand(dim // 2, device="cuda")
            angles = torch.cat((angles, angles), dim=-1)
            cos, sin = angles.cos().to(bf16)[:, None], angles.sin().to(bf16)[:, None]
            torch._dynamo.maybe_mark_dynamic(x, 0)
            args = (x, *weights, cos, sin, 1e-6, n_q, n_kv, dim)
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                got = compiled(*args)
                torch.cuda.synchronize()
            assert any("qk_norm_rope" in e.name for e in prof.events()), "the compiled layer did not run the kernel"
            want = qwen3.pre_attention(*args)  # eager: the kernel called directly
            for g, w in zip(got, want, strict=True):
                assert g.shape == w.shape
                assert float((g.float() - w.float()).abs().max()) <= 2**-6 * float(w.float().abs().max())
    finally:
        attention.set_backend("auto")
