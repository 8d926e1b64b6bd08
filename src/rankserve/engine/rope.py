"""Qwen3's per-head RMSNorm and rotary embedding, in PyTorch operations.

Qwen3 normalises every query and key head (its ``q_norm``/``k_norm``) before rotating it. This is the
model's maths as ``torch.compile`` fuses it and as the CPU runs it; on Hopper GPUs two Triton kernels
do the same work (:mod:`~rankserve.engine.triton_rope` for keys, the attention kernel for queries),
and the tests check them against this.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def norm_rope(x: torch.Tensor, weight: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, eps: float) -> torch.Tensor:
    """``x [T, H, D]`` normalised per head (fp32 statistics), scaled by ``weight``, then rotated by
    ``cos``/``sin [T, 1, D]``."""
    return rope(F.rms_norm(x, (x.shape[-1],), weight, eps), cos, sin)


def rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """``x [T, H, D]`` rotated by ``cos``/``sin [T, 1, D]`` (Qwen2, which has no per-head norm, uses only this)."""
    return x * cos + rotate_half(x) * sin


class QueryNorm(NamedTuple):
    """Qwen3's query RMSNorm and rotary embedding, left for :func:`attention` to apply.

    Each layer's queries are read once, by attention, so our Triton kernel normalises and rotates them
    as it loads them, instead of a separate kernel writing them out first (for the 0.6B model that saves
    8 KB of memory traffic a token a layer). The other kernels apply it first (:meth:`apply`).
    """

    weight: torch.Tensor  # [D]
    cos: torch.Tensor  # [Tq, 1, D], one row per query token
    sin: torch.Tensor
    eps: float

    def apply(self, q: torch.Tensor) -> torch.Tensor:
        return norm_rope(q, self.weight, self.cos, self.sin, self.eps)
