"""Qwen3's per-head RMSNorm and rotary embedding, in PyTorch operations.

Qwen3 normalises every query and key head (its ``q_norm``/``k_norm``) before rotating it. This is the
model's maths as ``torch.compile`` fuses it and as the CPU runs it; on Hopper GPUs two Triton kernels
do the same work (:mod:`~rankserve.engine.triton_rope` for keys, the attention kernel for queries),
and the tests check them against this.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def norm_rope(x: torch.Tensor, weight: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, eps: float) -> torch.Tensor:
    """``x [T, H, D]`` normalised per head (fp32 statistics), scaled by ``weight``, then rotated by
    ``cos``/``sin [T, 1, D]``."""
    x = F.rms_norm(x, (x.shape[-1],), weight, eps)
    return x * cos + rotate_half(x) * sin
