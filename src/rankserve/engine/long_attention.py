"""Attention for long sequences: one call per sequence to the best dense kernel PyTorch has.

Why apart: our Triton kernel (:mod:`~rankserve.engine.triton_attention`) is tuned for the many short
documents of a typical request (small tiles waste least on short causal diagonals), and runs a
30k-token document's attention at FlashAttention-2's rate. Long documents spend most of their time
in attention (on the 8B model at 30k tokens, about as much as in every matrix product together), so
each sequence of at least :data:`~rankserve.engine.layout.LONG_FROM` queries is taken out of the
kernel's work list when a batch is packed, and attended here with ``scaled_dot_product_attention``,
cuDNN's kernel first (Hopper's fastest in PyTorch), FlashAttention-2 next, the portable ones last.

A sequence's keys are its request's prefix, then its own tokens; the queries are its own tokens
only. SDPA's causal mask is aligned top-left, so the queries are preceded by as many zero rows as
the prefix has keys (a few dozen, against thousands) and those rows' outputs dropped.

The sequences are listed in a CPU tensor that only this custom op reads: inside ``torch.compile`` their
lengths are data, not constants, so a new document length compiles nothing.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from rankserve.engine.rope import QueryNorm

PREFERENCE = [
    SDPBackend.CUDNN_ATTENTION,
    SDPBackend.FLASH_ATTENTION,
    SDPBackend.EFFICIENT_ATTENTION,
    SDPBackend.MATH,
]
"""Tried in this order; SDPA skips those that cannot take the inputs (cuDNN off Hopper/Ampere, say)."""

log = logging.getLogger(__name__)


def _one(q, k, v, scale: float) -> torch.Tensor:
    """q: [Lk, Hq, D] (already aligned with the keys), k/v: [Lk, Hkv, D] → [Lk, Hq, D]."""
    group = q.shape[1] // k.shape[1]
    qt = q.transpose(0, 1)[None]
    # Key/value heads repeated for the query heads that share them: cuDNN's kernel takes no grouped
    # heads, and the copy (two [Lk, Hq, D] tensors) costs well under the attention's time at these lengths.
    kt = k.transpose(0, 1).repeat_interleave(group, 0)[None] if group > 1 else k.transpose(0, 1)[None]
    vt = v.transpose(0, 1).repeat_interleave(group, 0)[None] if group > 1 else v.transpose(0, 1)[None]
    try:
        with sdpa_kernel(PREFERENCE, set_priority=True):
            out = F.scaled_dot_product_attention(qt, kt, vt, is_causal=True, scale=scale)
    except RuntimeError as exc:  # a cuDNN build that accepts the inputs but fails to run them: use the next
        if SDPBackend.CUDNN_ATTENTION not in PREFERENCE:
            raise
        log.warning("cuDNN attention failed (%s); long sequences use the next SDPA kernel", str(exc)[:200])
        PREFERENCE.remove(SDPBackend.CUDNN_ATTENTION)
        return _one(q, k, v, scale)
    return out[0].transpose(0, 1)


@torch.library.custom_op("rankserve::long_attention", mutates_args=("out",))
def long_attention_(
    out: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    long: torch.Tensor,
    scale: float,
    q_weight: torch.Tensor | None,
    cos: torch.Tensor | None,
    sin: torch.Tensor | None,
    eps: float,
) -> None:
    """Write into ``out`` the attention of each sequence listed in ``long`` (CPU int64 rows of
    ``q_start, q_len, p_start, p_len``; own keys at the queries' rows). With ``q_weight`` the queries
    are raw projections, normalised and rotated first (Qwen3's :class:`QueryNorm`)."""
    for q_start, q_len, p_start, p_len in long.tolist():
        own = slice(q_start, q_start + q_len)
        queries = q[own]
        if q_weight is not None:
            queries = QueryNorm(q_weight, cos[own], sin[own], eps).apply(queries)
        keys, values = k[own], v[own]
        if p_len:
            pre = slice(p_start, p_start + p_len)
            keys, values = torch.cat([k[pre], keys]), torch.cat([v[pre], values])
            queries = torch.cat([queries.new_zeros(p_len, *queries.shape[1:]), queries])
        out[own] = _one(queries, keys, values, scale)[p_len:]


@long_attention_.register_fake
def _(out, q, k, v, long, scale, q_weight, cos, sin, eps) -> None:
    return None


def long_attention(
    out: torch.Tensor, q, k, v, long: torch.Tensor, scale: float, q_norm: QueryNorm | None = None
) -> torch.Tensor:
    """``out`` with the listed long sequences' rows filled in (see :func:`long_attention_`)."""
    weight, cos, sin, eps = q_norm if q_norm is not None else (None, None, None, 0.0)
    long_attention_(out, q, k, v, long, scale, weight, cos, sin, eps)
    return out
