"""Where each packed sequence's queries and keys live: the layout every attention kernel reads.

Kept apart from the kernels and from any one model, so packing builds it without importing them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from rankserve.engine.triton_attention import Segments

LONG_FROM = 4096
"""Sequences of at least this many query tokens are attended one by one with a dense kernel where the
Triton kernel serves the rest (see :mod:`~rankserve.engine.long_attention`)."""


@dataclass
class SeqLayout:
    """Where each sequence's queries and keys live in the packed tensors."""

    cu_q: torch.Tensor  # int32 [N+1]
    cu_k: torch.Tensor  # int32 [N+1]
    max_q: int
    max_k: int
    key_index: torch.Tensor | None = None  # keys of the packed sequences = k[key_index]; None: k as given
    segments: Segments | None = field(default=None, repr=False)  # the same, as the Triton kernel reads it
    long: torch.Tensor | None = None  # CPU int64 [L, 4] (q_start, q_len, p_start, p_len): left out of segments' work

    def tensors(self) -> list[torch.Tensor]:
        """Every index tensor, each sized by the batch (``torch.compile`` marks them dynamic)."""
        found = [self.cu_q, self.cu_k, self.key_index, self.long]
        if self.segments is not None:
            found += self.segments.tensors()
        return [t for t in found if t is not None]

    def __post_init__(self) -> None:
        self._padded: tuple[torch.Tensor, ...] | None = None

    def padded_indices(self) -> tuple[torch.Tensor, ...]:
        """(seq, pos) of every packed query and key, plus the mask; built once per batch."""
        if self._padded is None:
            cu_q, cu_k = self.cu_q.long(), self.cu_k.long()
            lens_q, lens_k = cu_q.diff(), cu_k.diff()
            n = lens_q.numel()
            seq_q = torch.repeat_interleave(torch.arange(n, device=cu_q.device), lens_q)
            pos_q = torch.arange(int(cu_q[-1]), device=cu_q.device) - cu_q[seq_q]
            seq_k = torch.repeat_interleave(torch.arange(n, device=cu_k.device), lens_k)
            pos_k = torch.arange(int(cu_k[-1]), device=cu_k.device) - cu_k[seq_k]
            i = torch.arange(self.max_q, device=cu_q.device)[None, :, None]
            j = torch.arange(self.max_k, device=cu_q.device)[None, None, :]
            offset = (lens_k - lens_q)[:, None, None]
            mask = (j <= i + offset) & (j < lens_k[:, None, None])
            self._padded = (seq_q, pos_q, seq_k, pos_k, mask[:, None])
        return self._padded
