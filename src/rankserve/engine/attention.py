"""Attention over packed (padding-free) sequences.

Sequences are concatenated along the token axis and described by cumulative lengths
(``cu_q`` for queries, ``cu_k`` for keys). Key sequences may be longer than query
sequences: a document's queries attend to its request's cached prefix plus its own
tokens, so the causal mask is aligned bottom-right (query ``i`` of a sequence with
``Lk - Lq`` cached keys sees keys ``0 .. Lk - Lq + i``).

Three kernels, one answer:
- on Hopper GPUs, our Triton kernel (:mod:`~rankserve.engine.triton_attention`), which reads each
  document's prefix keys in place (about 2x faster than FlashAttention-2 per layer on an H200), and
  for long sequences one dense SDPA call each (:mod:`~rankserve.engine.long_attention`);
- on other CUDA GPUs with fp16/bf16 (Ampere+), PyTorch's variable-length FlashAttention-2 kernel,
  called directly (``aten._flash_attention_forward``: grouped-query heads natively, no Python
  wrapper per call), after gathering each document's keys (``key_index``);
- everywhere else (CPU, fp32), a padded batch through SDPA with an explicit mask.

Encoders attend both ways (``causal=False``), ModernBERT's local layers within a window of
``window`` keys either side; the Triton kernel is causal-only, so such calls never reach it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from rankserve.engine import triton_attention
from rankserve.engine.layout import SeqLayout
from rankserve.engine.long_attention import long_attention

if TYPE_CHECKING:  # a model's query transform, applied here or by the Triton kernel as it loads queries
    from rankserve.engine.rope import QueryNorm

__all__ = ["BACKENDS", "SeqLayout", "attention", "check_device", "kernel_for", "set_backend", "uses_triton"]


_backend = "auto"
BACKENDS = ("auto", "triton", "flash", "sdpa")


def set_backend(name: str) -> None:
    """``auto`` (the fastest kernel this device runs), ``flash`` (never Triton), ``sdpa`` (always padded),
    or ``triton`` (wherever Triton runs: on CPU tensors under ``TRITON_INTERPRET=1`` too, for tests).

    Benchmarks use ``sdpa`` and ``flash`` to check and time the fast paths against the others on the
    same GPU. Read when a function is compiled: compiled code keeps the kernel it was traced with.
    """
    global _backend
    if name not in BACKENDS:
        raise ValueError(f"unknown attention backend {name!r}: use one of {', '.join(BACKENDS)}")
    _backend = name


_no_flash: set[torch.device] = set()
_triton_devices: set[torch.device] = set()


def check_device(device: torch.device) -> None:
    """Note what a GPU runs: flash needs Ampere+; our Triton kernel is used (and was tuned) on Hopper.

    Called once when a model is placed, outside any compiled code.
    """
    if device.type != "cuda":
        return
    index = device.index if device.index is not None else torch.cuda.current_device()
    capability = torch.cuda.get_device_capability(index)
    if capability < (8, 0):
        _no_flash.add(torch.device("cuda", index))
    if (9, 0) <= capability < (10, 0) and triton_attention.available():
        _triton_devices.add(torch.device("cuda", index))


def varlen_available(t: torch.Tensor) -> bool:
    return t.is_cuda and t.dtype in (torch.float16, torch.bfloat16) and t.shape[-1] <= 256 and t.device not in _no_flash


def uses_triton(q: torch.Tensor, *kv: torch.Tensor) -> bool:
    """Whether queries (and keys/values) like these go to the Triton kernel, given a layout that has
    :class:`Segments`. Its launches do not depend on sequence lengths: a CUDA graph can record it."""
    if not triton_attention.supports(q, *kv):
        return False
    return _backend == "triton" or (_backend == "auto" and q.device in _triton_devices)


def kernel_for(q: torch.Tensor, layout: SeqLayout, *kv: torch.Tensor, causal: bool = True) -> str:
    """``triton``, ``flash`` or ``sdpa``: which kernel :func:`attention` runs for these queries (and keys/values).

    The Triton kernel is causal-only: bidirectional attention goes to FlashAttention or SDPA.
    """
    if _backend == "sdpa":
        return "sdpa"
    if causal and layout.segments is not None and uses_triton(q, *kv):
        return "triton"
    return "flash" if varlen_available(q) else "sdpa"


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    layout: SeqLayout,
    scale: float,
    q_norm: QueryNorm | None = None,
    causal: bool = True,
    window: int | None = None,
) -> torch.Tensor:
    """Causal (or, ``causal=False``, bidirectional) attention; q: [Tq, Hq, D], k/v: [Tk, Hkv, D] → [Tq, Hq, D].

    k/v hold each token's keys once; ``layout`` says which keys each query sequence reads.
    With ``q_norm`` (a model's per-head query transform), ``q`` is the raw projection, transformed here.
    ``window``: each query reads only keys at most this far from its own position (aligned bottom-right,
    as the causal mask; on both sides unless causal).
    """
    kernel = kernel_for(q, layout, k, v, causal=causal)
    if kernel == "triton":
        out = triton_attention.packed_attention(q, k, v, layout.segments, scale, q_norm)
        if layout.long is not None:  # sequences the kernel's work list leaves out
            out = long_attention(out, q, k, v, layout.long, scale, q_norm)
        return out
    if q_norm is not None:
        q = q_norm.apply(q)
    if layout.key_index is not None:
        k, v = k[layout.key_index], v[layout.key_index]
    if kernel == "flash":
        return _varlen(q, k, v, layout, scale, causal, window)
    return _padded_sdpa(q, k, v, layout, scale, causal, window)


def _varlen(q, k, v, layout: SeqLayout, scale: float, causal: bool = True, window: int | None = None) -> torch.Tensor:
    # FlashAttention-2 aligns the causal mask bottom-right when keys outnumber queries, as we need;
    # a kernel call, not torch.nn.attention.varlen's custom op, whose Python dispatch cost ~50 us a layer.
    sides = {} if window is None else {"window_size_left": window, "window_size_right": 0 if causal else window}
    out = torch.ops.aten._flash_attention_forward(
        q, k, v, layout.cu_q, layout.cu_k, layout.max_q, layout.max_k, 0.0, causal, False, scale=scale, **sides
    )
    return out[0]


def _mask(layout: SeqLayout, causal: bool, window: int | None) -> torch.Tensor:
    """The padded batch's ``[N, 1, max_q, max_k]`` mask: the layout's causal one, or built for the options given."""
    if causal and window is None:
        return layout.padded_indices()[-1]
    lens_q, lens_k = layout.cu_q.long().diff(), layout.cu_k.long().diff()
    i = torch.arange(layout.max_q, device=lens_q.device)[None, :, None]
    j = torch.arange(layout.max_k, device=lens_q.device)[None, None, :]
    distance = j - i - (lens_k - lens_q)[:, None, None]  # from the query's own position, aligned bottom-right
    mask = j < lens_k[:, None, None]
    if causal:
        mask = mask & (distance <= 0)
    if window is not None:
        mask = mask & (distance.abs() <= window)
    return mask[:, None]


def _padded_sdpa(q, k, v, layout: SeqLayout, scale: float, causal: bool = True, window: int | None = None):
    seq_q, pos_q, seq_k, pos_k, _ = layout.padded_indices()
    mask = _mask(layout, causal, window)
    n = layout.cu_q.numel() - 1
    hq, hk, d = q.shape[1], k.shape[1], q.shape[2]
    qp = q.new_zeros(n, layout.max_q, hq, d)
    qp[seq_q, pos_q] = q
    kp = k.new_zeros(n, layout.max_k, hk, d)
    kp[seq_k, pos_k] = k
    vp = v.new_zeros(n, layout.max_k, hk, d)
    vp[seq_k, pos_k] = v
    if hq != hk:
        kp, vp = kp.repeat_interleave(hq // hk, dim=2), vp.repeat_interleave(hq // hk, dim=2)
    out = F.scaled_dot_product_attention(
        qp.transpose(1, 2), kp.transpose(1, 2), vp.transpose(1, 2), attn_mask=mask, scale=scale
    )
    return out.transpose(1, 2)[seq_q, pos_q]
