"""The norm + rotary kernels on a GPU, in bf16, against the model's maths in fp32.

The CPU suite checks the kernels' maths in fp32 through Triton's interpreter
(``test_triton_attention.py``); this checks the compiled kernels where they run, with the 0.6B and 8B
models' head counts and token counts that leave the last block part-filled: the keys' kernel
(``triton_rope``) and the attention kernel normalising and rotating raw queries as it loads them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rankserve.engine import attention, qwen3, rope, triton_attention, triton_rope

pytestmark = pytest.mark.gpu
BF16 = torch.bfloat16


def own_keys_only(lens: list[int]) -> triton_attention.Segments:
    """Consecutive sequences of these lengths, each reading only its own keys (no prefix)."""
    lens_np, zeros = np.array(lens), np.zeros(len(lens), dtype=np.int64)
    starts = np.cumsum([0, *lens[:-1]])
    ints = lambda a: torch.tensor(np.asarray(a), dtype=torch.int32, device="cuda")  # noqa: E731
    work = triton_attention.work_list(lens_np, lens_np, zeros)
    return triton_attention.Segments(ints(starts), ints(lens_np), ints(starts), ints(lens_np), ints(zeros), ints(zeros),
                                     *map(ints, work))  # fmt: skip


def rotary(tokens: int, dim: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    angles = torch.arange(tokens, device="cuda")[:, None].float() * torch.rand(dim // 2, device="cuda", generator=gen)
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos().to(BF16)[:, None], angles.sin().to(BF16)[:, None]


@pytest.mark.parametrize("n_q, n_kv, tokens", [(16, 8, 1000), (32, 8, 77), (6, 2, 33)])
def test_key_kernel_matches_the_models_maths_in_bf16(n_q, n_kv, tokens):
    dim = 128
    gen = torch.Generator(device="cuda").manual_seed(n_q + tokens)
    qkv = torch.randn(tokens, (n_q + 2 * n_kv) * dim, device="cuda", generator=gen).to(BF16) * 4
    k_w = (torch.rand(dim, device="cuda", generator=gen) + 0.5).to(BF16)
    cos, sin = rotary(tokens, dim, gen)
    keys = qkv[:, n_q * dim : (n_q + n_kv) * dim].reshape(tokens, n_kv, dim)
    want = rope.norm_rope(keys.float(), k_w.float(), cos.float(), sin.float(), 1e-6)
    got = triton_rope.k_norm_rope(qkv, k_w, cos, sin, 1e-6, n_q, n_kv)
    assert got.shape == want.shape and got.dtype == BF16
    # one bf16 rounding: at most half a unit in the last place, 2^-8 of the largest value
    assert float((got.float() - want).abs().max()) <= 2**-8 * float(want.abs().max()) + 1e-6


@pytest.mark.parametrize("n_q, n_kv", [(16, 8), (32, 8)])
def test_attention_normalises_raw_queries_as_the_model_does(n_q, n_kv):
    """Raw queries (a strided view of the q/k/v projection) with the query norm, against the same kernel
    given queries normalised and rotated by the model's maths in fp32 and rounded to bf16 once."""
    dim, lens = 128, [45, 300, 1, 600, 33]
    gen = torch.Generator(device="cuda").manual_seed(n_q)
    tokens = sum(lens)
    qkv = torch.randn(tokens, (n_q + 2 * n_kv) * dim, device="cuda", generator=gen).to(BF16) * 4
    q, k, v = (p.view(tokens, -1, dim) for p in qkv.split([n_q * dim, n_kv * dim, n_kv * dim], -1))
    q_w = (torch.rand(dim, device="cuda", generator=gen) + 0.5).to(BF16)
    cos, sin = rotary(tokens, dim, gen)
    seg = own_keys_only(lens)
    q_norm = rope.QueryNorm(q_w, cos, sin, 1e-6)
    normed = rope.norm_rope(q.float(), q_w.float(), cos.float(), sin.float(), 1e-6).to(BF16)
    got = triton_attention.packed_attention(q, k, v, seg, dim**-0.5, q_norm)
    want = triton_attention.packed_attention(normed, k, v, seg, dim**-0.5)
    assert got.shape == want.shape == (tokens, n_q, dim)
    # the same bf16 queries up to an occasional last-place rounding difference (fused multiply-adds)
    assert float((got.float() - want.float()).abs().max()) <= 2**-6 * float(want.float().abs().max())
    assert float((got.float() - want.float()).abs().mean()) <= 1e-3 * float(want.float().abs().mean())


def test_compiled_layer_runs_the_kernels():
    """``torch.compile`` of the layer's first half puts the key kernel (as its Triton op) into the compiled
    code, with the token count dynamic as in the engine, and matches the eager layer to bf16 rounding;
    attention compiled with the query norm runs the attention kernel and matches it eager."""
    from torch.profiler import ProfilerActivity, profile

    n_q, n_kv, dim, hidden = 16, 8, 128, 256
    gen = torch.Generator(device="cuda").manual_seed(0)

    def rand(*shape, scale=1.0):
        return (torch.randn(*shape, device="cuda", generator=gen) * scale).to(BF16)

    weights = (rand(hidden), rand((n_q + 2 * n_kv) * dim, hidden, scale=hidden**-0.5), None, rand(dim))  # no bias
    q_w = rand(dim)
    compiled = torch.compile(qwen3.pre_attention, dynamic=None)
    compiled_attention = torch.compile(attention.attention, dynamic=None)
    attention.set_backend("triton")
    try:
        for tokens in (300, 77):  # a second size: the compiled code is reused with another token count
            x = rand(tokens, hidden)
            cos, sin = rotary(tokens, dim, gen)
            torch._dynamo.maybe_mark_dynamic(x, 0)
            args = (x, *weights, cos, sin, 1e-6, n_q, n_kv, dim)
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                got = compiled(*args)
                torch.cuda.synchronize()
            assert any("k_norm_rope" in e.name for e in prof.events()), "the compiled layer did not run the kernel"
            want = qwen3.pre_attention(*args)  # eager: the kernel called directly
            for g, w in zip(got, want, strict=True):
                assert g.shape == w.shape
                assert float((g.float() - w.float()).abs().max()) <= 2**-6 * float(w.float().abs().max())
            q, k, v = want
            cu = torch.tensor([0, tokens], dtype=torch.int32, device="cuda")
            layout = attention.SeqLayout(cu, cu, tokens, tokens, segments=own_keys_only([tokens]))
            q_norm = rope.QueryNorm(q_w, cos, sin, 1e-6)
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                got = compiled_attention(q, k, v, layout, dim**-0.5, q_norm)
                torch.cuda.synchronize()
            assert any("packed_attention" in e.name for e in prof.events()), "compiled attention ran another kernel"
            # the same kernel; compiled by inductor, its multiply-adds may fuse differently (bf16 rounding)
            want = attention.attention(q, k, v, layout, dim**-0.5, q_norm)
            assert float((got.float() - want.float()).abs().max()) <= 2**-6 * float(want.float().abs().max())
    finally:
        attention.set_backend("auto")
