"""Causal attention over packed sequences with a shared prefix, as one Triton kernel.

Why our own kernel: on an H200, PyTorch's FlashAttention-2 takes 0.70 ms a layer on the 0.6B model's
100-document request (sequences of 40–600 tokens; it uses Ampere's tensor-core instructions and
128-row tiles, much of which the causal diagonal of short documents wastes), and it needs each
document's prefix keys copied in front of its own (a gather per layer). This kernel takes 0.31 ms:
``tl.dot`` compiles to Hopper's ``wgmma``, its tiles are small (32 query tokens × 2 heads, 32 keys),
and it reads a document's prefix keys where the prefix was computed, so nothing is gathered.

One program handles ``BLOCK_M`` query tokens of one sequence for ``HEADS`` query heads that share a
key/value head (grouped-query attention: the key tiles are loaded once for those heads). Sequences
are described per sequence (:class:`Segments`), and the programs by a work list, heaviest first,
built on the host when a batch is packed (:func:`work_list`).

Given a :class:`~rankserve.engine.rope.QueryNorm`, the kernel also applies Qwen3's per-head query
RMSNorm and rotary embedding as it loads the query tile, from the raw q/k/v projection: each query is
read once here anyway, so nothing is written back (0.6B W100 forward 54.3 → 51.3 ms, docs/performance.md).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from rankserve.engine.rope import QueryNorm

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only installs: the other attention kernels are used there
    triton = None
if not hasattr(torch.library, "triton_op"):  # torch < 2.6 cannot put a Triton kernel into compiled code
    triton = None

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
"""Triton's interpreter runs the kernel on CPU tensors (slowly): how the tests check it without a GPU."""

BLOCK_M = 32
"""Query tokens per program; with ``ROWS = 64`` a program serves two query heads of a key/value head.
Tuned on an H200 over (tokens, rows, key tile, warps, stages): small tiles waste least on the
causal diagonal of 40–600-token documents."""
ROWS = 64
BLOCK_N = 32
NUM_WARPS = 4
NUM_STAGES = 3
MAX_ROW = 16384
"""The longest row (token) of q/k/v the kernel takes, in elements: 128 heads of 128 (Qwen3-8B's
q/k/v rows span 6144). Checked by :func:`supports` on strides, which are fixed per model."""
WIDE_TOKENS = 2**31 // MAX_ROW
"""Batches of more tokens address rows with 64-bit offsets, which cost ~30%. Decided per batch on the
host: a size test inside compiled code adds a shape guard, after which inductor generated slower
kernels elsewhere."""


@dataclass
class Segments:
    """Per query sequence: where its queries, own keys and prefix keys are (int32 tensors, [S] each).

    Query ``i`` of a sequence sees every prefix key and own keys ``0 .. k_len - q_len + i``
    (the causal mask aligned bottom-right, as when the queries are the last ones of the keys).
    ``work_seq`` / ``work_block`` list the programs: (sequence, block of ``BLOCK_M`` queries).
    """

    q_start: torch.Tensor
    q_len: torch.Tensor
    k_start: torch.Tensor
    k_len: torch.Tensor
    p_start: torch.Tensor
    p_len: torch.Tensor
    work_seq: torch.Tensor
    work_block: torch.Tensor
    wide: bool = False  # token offsets need 64 bits (see WIDE_TOKENS)

    def tensors(self) -> tuple[torch.Tensor, ...]:
        """The fields in order (spelled out: ``torch.compile`` traces this)."""
        return (
            *(self.q_start, self.q_len, self.k_start, self.k_len),
            *(self.p_start, self.p_len, self.work_seq, self.work_block),
        )


def work_list(
    q_len: np.ndarray, k_len: np.ndarray, p_len: np.ndarray, block_m: int = BLOCK_M
) -> tuple[np.ndarray, np.ndarray]:
    """(sequence, query block) of every program, the ones with most keys to read first.

    Launching the longest programs first keeps the GPU's last wave short (as FlashAttention does).
    """
    q_len, k_len, p_len = (np.asarray(a, dtype=np.int64) for a in (q_len, k_len, p_len))
    blocks = -(-q_len // block_m)
    seq = np.repeat(np.arange(len(q_len)), blocks)
    block = np.arange(int(blocks.sum())) - np.repeat(np.cumsum(blocks) - blocks, blocks)
    keys = p_len[seq] + np.minimum(k_len[seq], (block + 1) * block_m + (k_len - q_len)[seq])
    order = np.argsort(-keys, kind="stable")
    return seq[order].astype(np.int32), block[order].astype(np.int32)


def available() -> bool:
    return triton is not None


def supports(q: torch.Tensor, *kv: torch.Tensor) -> bool:
    """Whether the kernel runs for these queries (and keys/values): fp16/bf16 on CUDA, or anything under
    the interpreter; rows of at most ``MAX_ROW`` elements (what :data:`WIDE_TOKENS` assumes)."""
    if triton is None:
        return False
    d = q.shape[-1]
    if d & (d - 1) or not 16 <= d <= 256:
        return False
    if any(t.stride(0) > MAX_ROW or t.stride(-1) != 1 for t in (q, *kv)):
        return False
    if q.is_cuda:
        return q.dtype in (torch.float16, torch.bfloat16)
    return INTERPRET


if triton is not None:

    @triton.jit
    def _rows(first, offsets, WIDE: tl.constexpr):
        """Token rows ``first + offsets``, 64-bit only where a batch is so big that 32 bits overflow."""
        if WIDE:
            first = first.to(tl.int64)
        return first + offsets

    @triton.jit
    def _norm_rope(q_ptrs, row_ok, q_rows, QW, COS, SIN, stride_c, eps, HEAD_DIM: tl.constexpr):
        """Load query rows and apply Qwen3's per-head RMSNorm and rotary embedding in fp32, rounded once
        to the queries' dtype (the maths of ``rope.norm_rope`` and the key kernel in ``triton_rope``).

        The two halves of each head are loaded and rotated separately, then joined: this keeps fewer
        values live than rotating whole rows (on an H200, +50 us a 0.6B layer instead of +170)."""
        HALF: tl.constexpr = HEAD_DIM // 2
        h = tl.arange(0, HALF)[None, :]
        ok = row_ok[:, None]
        x1 = tl.load(q_ptrs + h, mask=ok, other=0.0).to(tl.float32)
        x2 = tl.load(q_ptrs + HALF + h, mask=ok, other=0.0).to(tl.float32)
        inv = tl.rsqrt((tl.sum(x1 * x1, 1) + tl.sum(x2 * x2, 1)) / HEAD_DIM + eps)[:, None]
        n1 = x1 * inv * tl.load(QW + h).to(tl.float32)
        n2 = x2 * inv * tl.load(QW + HALF + h).to(tl.float32)
        rows = q_rows[:, None] * stride_c + h
        dtype = q_ptrs.dtype.element_ty
        cos1 = tl.load(COS + rows, mask=ok, other=0.0).to(tl.float32)
        sin1 = tl.load(SIN + rows, mask=ok, other=0.0).to(tl.float32)
        q1 = (n1 * cos1 - n2 * sin1).to(dtype)  # rotate_half(x) = cat(-x2, x1)
        cos2 = tl.load(COS + HALF + rows, mask=ok, other=0.0).to(tl.float32)
        sin2 = tl.load(SIN + HALF + rows, mask=ok, other=0.0).to(tl.float32)
        q2 = (n2 * cos2 + n1 * sin2).to(dtype)
        return tl.reshape(tl.permute(tl.join(q1, q2), (0, 2, 1)), (q1.shape[0], HEAD_DIM))  # [rows, halves] → rows

    @triton.jit
    def _fold_tile(acc, m_i, l_i, q, k_ptrs, v_ptrs, load_ok, visible, QK_SCALE: tl.constexpr, MASKED: tl.constexpr):
        """Fold one tile of keys into each query row's running max, sum and output (online softmax)."""
        if MASKED:
            k = tl.load(k_ptrs, mask=load_ok[:, None], other=0.0)
        else:
            k = tl.load(k_ptrs)
        s = tl.dot(q, tl.trans(k)) * QK_SCALE
        if MASKED:
            s = tl.where(visible, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        if MASKED:
            v = tl.load(v_ptrs, mask=load_ok[:, None], other=0.0)
        else:
            v = tl.load(v_ptrs)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        return acc, m_new, l_i

    @triton.jit
    def _packed_attention_kernel(
        Q,
        K,
        V,
        Out,
        work_seq,
        work_block,
        q_start,
        q_len,
        k_start,
        k_len,
        p_start,
        p_len,
        QW,  # with NORM_Q: the query norm's weight [D] and cos/sin rows [Tq, D] aligned with Q's rows
        COS,
        SIN,
        stride_c,
        eps,
        stride_qt,
        stride_qh,
        stride_kt,
        stride_kh,
        stride_vt,
        stride_vh,
        stride_ot,
        stride_oh,
        QK_SCALE: tl.constexpr,  # softmax scale * log2(e): a constant, so the scores stay fp32
        GROUP: tl.constexpr,
        HEADS: tl.constexpr,
        BLOCK_M: tl.constexpr,
        BLOCK_N: tl.constexpr,
        HEAD_DIM: tl.constexpr,
        WIDE: tl.constexpr,  # offsets past 2**31 elements: 64-bit address arithmetic
        NORM_Q: tl.constexpr,  # Q holds raw projections: normalise and rotate them as they are loaded
    ):
        pid = tl.program_id(0)
        head0 = tl.program_id(1) * HEADS
        kv_head = head0 // GROUP
        seq = tl.load(work_seq + pid)
        mb = tl.load(work_block + pid)
        qs = tl.load(q_start + seq)
        ql = tl.load(q_len + seq)
        ks = tl.load(k_start + seq)
        kl = tl.load(k_len + seq)
        ps = tl.load(p_start + seq)
        pl = tl.load(p_len + seq)

        ROWS: tl.constexpr = BLOCK_M * HEADS  # row r: query token r // HEADS, head r % HEADS
        r = tl.arange(0, ROWS)
        tok = mb * BLOCK_M + r // HEADS  # query position within its sequence
        head = head0 + r % HEADS
        d = tl.arange(0, HEAD_DIM)
        n = tl.arange(0, BLOCK_N)
        row_ok = tok < ql
        q_rows = _rows(qs, tok, WIDE)
        q_heads = Q + q_rows[:, None] * stride_qt + head[:, None] * stride_qh
        if NORM_Q:
            q = _norm_rope(q_heads, row_ok, q_rows, QW, COS, SIN, stride_c, eps, HEAD_DIM)
        else:
            q = tl.load(q_heads + d[None, :], mask=row_ok[:, None], other=0.0)
        k_cols = K + kv_head * stride_kh + d[None, :]
        v_cols = V + kv_head * stride_vh + d[None, :]
        m_i = tl.full([ROWS], float("-inf"), tl.float32)
        l_i = tl.zeros([ROWS], tl.float32)
        acc = tl.zeros([ROWS, HEAD_DIM], tl.float32)

        # 1. The prefix: every key is visible to every query.
        for start in range(0, pl, BLOCK_N):
            cols = start + n
            rows_k = _rows(ps, cols, WIDE)[:, None]
            ok = cols < pl
            acc, m_i, l_i = _fold_tile(
                acc, m_i, l_i, q, k_cols + rows_k * stride_kt, v_cols + rows_k * stride_vt, ok, ok[None, :],
                QK_SCALE, True,
            )  # fmt: skip

        # 2. The sequence's own keys, causal: query i sees keys 0 .. i + (kl - ql).
        offset = kl - ql
        # Keys before `full` are visible to every query of this block: no mask needed there.
        full = ((mb * BLOCK_M + offset + 1) // BLOCK_N) * BLOCK_N
        end = tl.minimum(kl, (mb + 1) * BLOCK_M + offset)
        for start in range(0, full, BLOCK_N):
            rows_k = _rows(ks + start, n, WIDE)[:, None]
            acc, m_i, l_i = _fold_tile(
                acc, m_i, l_i, q, k_cols + rows_k * stride_kt, v_cols + rows_k * stride_vt, n, n, QK_SCALE, False
            )
        for start in range(full, end, BLOCK_N):
            cols = start + n
            rows_k = _rows(ks, cols, WIDE)[:, None]
            ok = cols < kl
            visible = (cols[None, :] <= tok[:, None] + offset) & ok[None, :]
            acc, m_i, l_i = _fold_tile(
                acc, m_i, l_i, q, k_cols + rows_k * stride_kt, v_cols + rows_k * stride_vt, ok, visible,
                QK_SCALE, True,
            )  # fmt: skip

        out = acc / l_i[:, None]
        o_ptrs = Out + q_rows[:, None] * stride_ot + head[:, None] * stride_oh + d[None, :]
        tl.store(o_ptrs, out.to(Out.dtype.element_ty), mask=row_ok[:, None])


def _run(kernel, q, k, v, seg: Segments, scale: float, q_norm: QueryNorm | None = None, **tuning) -> torch.Tensor:
    block_m, rows = tuning.get("block_m", BLOCK_M), tuning.get("rows", ROWS)
    tq, hq, dim = q.shape
    group = hq // k.shape[1]
    heads = math.gcd(group, max(1, rows // block_m))  # query heads per program: a power of two dividing the group
    out = q.new_empty(tq, hq, dim)  # contiguous, whatever q's row stride
    grid = (seg.work_seq.shape[0], hq // heads)
    if q_norm is None:
        q_weight, cos, sin, eps = q, q, q, 0.0  # not read
    else:
        q_weight, cos, sin, eps = q_norm
        cos, sin = cos.reshape(tq, dim).contiguous(), sin.reshape(tq, dim).contiguous()  # the kernel reads rows of D
    kernel[grid](
        q, k, v, out, seg.work_seq, seg.work_block,
        seg.q_start, seg.q_len, seg.k_start, seg.k_len, seg.p_start, seg.p_len,
        q_weight, cos, sin, cos.stride(0), eps,
        q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1), out.stride(0), out.stride(1),
        QK_SCALE=scale * 1.4426950408889634,
        GROUP=group, HEADS=heads, BLOCK_M=block_m, BLOCK_N=tuning.get("block_n", BLOCK_N), HEAD_DIM=dim,
        WIDE=seg.wide, NORM_Q=q_norm is not None,
        num_warps=tuning.get("num_warps", NUM_WARPS), num_stages=tuning.get("num_stages", NUM_STAGES),
    )  # fmt: skip
    return out


if triton is not None:

    @torch.library.triton_op("rankserve::packed_attention", mutates_args=())
    def _packed_attention_op(
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        q_start: torch.Tensor,
        q_len: torch.Tensor,
        k_start: torch.Tensor,
        k_len: torch.Tensor,
        p_start: torch.Tensor,
        p_len: torch.Tensor,
        work_seq: torch.Tensor,
        work_block: torch.Tensor,
        scale: float,
        wide: bool,
        q_weight: torch.Tensor | None,
        cos: torch.Tensor | None,
        sin: torch.Tensor | None,
        eps: float,
    ) -> torch.Tensor:
        seg = Segments(q_start, q_len, k_start, k_len, p_start, p_len, work_seq, work_block, wide)
        q_norm = None if q_weight is None else (q_weight, cos, sin, eps)
        return _run(torch.library.wrap_triton(_packed_attention_kernel), q, k, v, seg, scale, q_norm)


def packed_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    seg: Segments,
    scale: float,
    q_norm: QueryNorm | None = None,
    **tuning,
) -> torch.Tensor:
    """q: [Tq, Hq, D], k/v: [Tk, Hkv, D] (any row stride, unit stride in D) → [Tq, Hq, D].

    With ``q_norm`` the queries are raw projections, normalised and rotated as they are loaded.
    Inside ``torch.compile`` the kernel goes in as a Triton op, so inductor launches it from the
    compiled code like its own kernels; eagerly it is launched directly. ``tuning`` overrides the
    tile sizes (``scripts/tune_attention.py``; the work list must be built with the same ``block_m``).
    """
    if torch.compiler.is_compiling() and not tuning:
        weight, cos, sin, eps = q_norm if q_norm is not None else (None, None, None, 0.0)
        return torch.ops.rankserve.packed_attention(q, k, v, *seg.tensors(), scale, seg.wide, weight, cos, sin, eps)
    return _run(_packed_attention_kernel, q, k, v, seg, scale, q_norm, **tuning)
