"""Qwen3's per-head key RMSNorm and rotary embedding, as one Triton kernel.

Why our own kernel: between the q/k/v projection and attention, Qwen3 normalises every query and
key head and rotates it. ``torch.compile`` fuses that into kernels that each read a row twice (the
norm needs the whole head before the rotation can pair element ``i`` with ``i ± D/2``); on an H200
they ran at ~1.7 TB/s. Here one program loads the two halves of a few heads for a block of tokens,
so the norm and the rotation happen in registers: one read, one write.

Only the keys come through here: every layer's queries are read once, by the attention kernel, which
normalises and rotates them as it loads them (:class:`~rankserve.engine.rope.QueryNorm`), so
they are never written back. (Queries and keys here took 4.9 ms of the 0.6B model's 100-document
forward on an H200, keys alone 1.35 ms; docs/performance.md.)

The maths is the model's: ``x * rsqrt(mean(x²) + eps) * weight`` in fp32, then
``x * cos + rotate_half(x) * sin``, rounded once to the input's dtype (as inductor's fused kernels do).
Used where attention runs on our Triton kernel (see :func:`rankserve.engine.attention.uses_triton`).
"""

from __future__ import annotations

import math

import torch

from rankserve.engine.triton_attention import triton  # None where the attention kernel cannot run either

if triton is not None:
    import triton.language as tl

BLOCK_T = 8
"""Tokens per program; each program handles ``HEADS`` key heads of those tokens (tuned on an H200)."""
HEADS = 4
NUM_WARPS = 4


def supports(qkv: torch.Tensor, head_dim: int) -> bool:
    """A fused ``[T, (n_q + 2 n_kv) * D]`` projection whose head size halves into a power of two (8+).

    Qwen3's heads are 128 wide; the tests' tiny models use 16."""
    half = head_dim // 2
    return triton is not None and qkv.stride(-1) == 1 and head_dim % 2 == 0 and half >= 8 and half & (half - 1) == 0


if triton is not None:

    @triton.jit
    def _k_norm_rope_kernel(
        QKV, K, KW, COS, SIN,
        T, stride_x, stride_c, eps,
        N_Q: tl.constexpr, N_KV: tl.constexpr, HALF: tl.constexpr, BLOCK_T: tl.constexpr, HEADS: tl.constexpr,
    ):  # fmt: skip
        # programs of one token block (axis 0 varies fastest) read the same cos/sin rows: they stay in cache
        first = tl.program_id(0) * HEADS  # the first key head of this program (HEADS divides N_KV)
        rows = tl.program_id(1) * BLOCK_T + tl.arange(0, BLOCK_T)
        ok = (rows < T)[:, None, None]
        rows = rows.to(tl.int64)[:, None, None]
        h = tl.arange(0, HEADS)[None, :, None]
        d = tl.arange(0, HALF)[None, None, :]
        src = QKV + rows * stride_x + (N_Q + first + h) * (2 * HALF) + d  # keys follow the N_Q query heads
        x1 = tl.load(src, mask=ok, other=0.0).to(tl.float32)
        x2 = tl.load(src + HALF, mask=ok, other=0.0).to(tl.float32)
        inv = tl.rsqrt((tl.sum(x1 * x1, 2) + tl.sum(x2 * x2, 2)) / (2 * HALF) + eps)[:, :, None]
        n1 = x1 * inv * tl.load(KW + d).to(tl.float32)
        n2 = x2 * inv * tl.load(KW + HALF + d).to(tl.float32)
        c = COS + rows * stride_c + d
        s = SIN + rows * stride_c + d
        cos1 = tl.load(c, mask=ok, other=0.0).to(tl.float32)
        cos2 = tl.load(c + HALF, mask=ok, other=0.0).to(tl.float32)
        sin1 = tl.load(s, mask=ok, other=0.0).to(tl.float32)
        sin2 = tl.load(s + HALF, mask=ok, other=0.0).to(tl.float32)
        dst = K + rows * (N_KV * 2 * HALF) + (first + h) * (2 * HALF) + d
        # rotate_half(x) = cat(-x2, x1)
        tl.store(dst, (n1 * cos1 - n2 * sin1).to(K.dtype.element_ty), mask=ok)
        tl.store(dst + HALF, (n2 * cos2 + n1 * sin2).to(K.dtype.element_ty), mask=ok)


def _run(kernel, qkv, k_weight, cos, sin, eps: float, n_q: int, n_kv: int, **tuning) -> torch.Tensor:
    t, dim = qkv.shape[0], k_weight.shape[0]
    k = qkv.new_empty(t, n_kv, dim)
    cos, sin = cos.reshape(t, dim).contiguous(), sin.reshape(t, dim).contiguous()  # the kernel reads rows of D
    block_t = tuning.get("block_t", BLOCK_T)
    heads = math.gcd(n_kv, tuning.get("heads", HEADS))
    heads &= -heads  # a power of two (tl.arange needs one)
    grid = (n_kv // heads, triton.cdiv(t, block_t))
    kernel[grid](
        qkv, k, k_weight, cos, sin, t, qkv.stride(0), cos.stride(0), eps,
        N_Q=n_q, N_KV=n_kv, HALF=dim // 2, BLOCK_T=block_t, HEADS=heads,
        num_warps=tuning.get("num_warps", NUM_WARPS),
    )  # fmt: skip
    return k


if triton is not None:

    @torch.library.triton_op("rankserve::k_norm_rope", mutates_args=())
    def _k_norm_rope_op(
        qkv: torch.Tensor, k_weight: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, eps: float, n_q: int, n_kv: int
    ) -> torch.Tensor:
        return _run(torch.library.wrap_triton(_k_norm_rope_kernel), qkv, k_weight, cos, sin, eps, n_q, n_kv)


def k_norm_rope(qkv, k_weight, cos, sin, eps: float, n_q: int, n_kv: int, **tuning) -> torch.Tensor:
    """``qkv [T, (n_q + 2 n_kv) * D]``, cos/sin ``[T, 1, D]`` → the normed, rotated keys ``[T, n_kv, D]``.

    Inside ``torch.compile`` it goes in as a Triton op (launched from the compiled code); eagerly it
    is launched directly. ``tuning`` may set ``block_t``, ``heads``, ``num_warps`` (for tuning probes).
    """
    if torch.compiler.is_compiling() and not tuning:
        return torch.ops.rankserve.k_norm_rope(qkv, k_weight, cos, sin, eps, n_q, n_kv)
    return _run(_k_norm_rope_kernel, qkv, k_weight, cos, sin, eps, n_q, n_kv, **tuning)
