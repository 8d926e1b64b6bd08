"""Attention over packed (padding-free) sequences.

Sequences are concatenated along the token axis and described by cumulative lengths
(``cu_q`` for queries, ``cu_k`` for keys). Key sequences may be longer than query
sequences: a document's queries attend to its request's cached prefix plus its own
tokens, so the causal mask is aligned bottom-right (query ``i`` of a sequence with
``Lk - Lq`` cached keys sees keys ``0 .. Lk - Lq + i``).

On CUDA with fp16/bf16 we call PyTorch's variable-length flash attention kernel directly
(``aten._flash_attention_forward``: grouped-query heads natively, no Python wrapper per call);
everywhere else (CPU, fp32) we scatter into a padded batch and use SDPA with an explicit mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class SeqLayout:
    """Where each sequence's queries and keys live in the packed tensors."""

    cu_q: torch.Tensor  # int32 [N+1]
    cu_k: torch.Tensor  # int32 [N+1]
    max_q: int
    max_k: int

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


_backend = "auto"


def set_backend(name: str) -> None:
    """``auto`` (varlen flash attention where possible) or ``sdpa`` (always the padded path).

    Benchmarks use ``sdpa`` to check the flash path against the padded one on the same GPU.
    """
    global _backend
    if name not in ("auto", "sdpa"):
        raise ValueError(f"unknown attention backend {name!r}: use auto or sdpa")
    _backend = name


_no_flash: set[torch.device] = set()


def check_device(device: torch.device) -> None:
    """Remember a GPU older than Ampere: PyTorch's flash kernels do not run there (padded SDPA does).

    Called once when a model is placed, outside any compiled code.
    """
    if device.type == "cuda" and torch.cuda.get_device_capability(device) < (8, 0):
        index = device.index if device.index is not None else torch.cuda.current_device()
        _no_flash.add(torch.device("cuda", index))


def varlen_available(t: torch.Tensor) -> bool:
    return t.is_cuda and t.dtype in (torch.float16, torch.bfloat16) and t.shape[-1] <= 256 and t.device not in _no_flash


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layout: SeqLayout, scale: float) -> torch.Tensor:
    """Causal attention; q: [Tq, Hq, D], k/v: [Tk, Hkv, D] → [Tq, Hq, D]."""
    if _backend == "auto" and varlen_available(q):
        return _varlen(q, k, v, layout, scale)
    return _padded_sdpa(q, k, v, layout, scale)


def _varlen(q, k, v, layout: SeqLayout, scale: float) -> torch.Tensor:
    # FlashAttention-2 aligns the causal mask bottom-right when keys outnumber queries, as we need;
    # a kernel call, not torch.nn.attention.varlen's custom op, whose Python dispatch cost ~50 us a layer.
    out = torch.ops.aten._flash_attention_forward(
        q, k, v, layout.cu_q, layout.cu_k, layout.max_q, layout.max_k, 0.0, True, False, scale=scale
    )
    return out[0]


def _padded_sdpa(q, k, v, layout: SeqLayout, scale: float) -> torch.Tensor:
    seq_q, pos_q, seq_k, pos_k, mask = layout.padded_indices()
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
