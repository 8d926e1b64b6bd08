"""Grouping pairs into micro-batches and packing them into flat tensors.

Pairs are sorted by length and cut into micro-batches of at most ``max_batch_tokens``
tokens. Within a batch, tokens are concatenated with no padding. With prefix reuse each
distinct prefix (system prompt + instruction + query) appears once; every document's keys
are then "its prefix's keys, then its own", expressed as an index into the concatenation
``[prefix keys; document keys]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rankserve.engine.attention import SeqLayout
from rankserve.engine.types import Pair


def plan_batches(pairs: Sequence[Pair], max_batch_tokens: int) -> list[list[Pair]]:
    """Length-sorted micro-batches whose token count stays within the budget.

    A single pair longer than the budget gets a batch of its own.
    """
    batches: list[list[Pair]] = []
    current: list[Pair] = []
    used = 0
    for pair in sorted(pairs, key=lambda p: p.num_tokens):
        cost = pair.num_tokens
        if current and used + cost > max_batch_tokens:
            batches.append(current)
            current, used = [], 0
        current.append(pair)
        used += cost
    if current:
        batches.append(current)
    return batches


@dataclass
class PackedBatch:
    """Flat tensors for one forward pass (see module docstring)."""

    ids: torch.Tensor  # [Td] token ids of the per-pair parts
    pos: torch.Tensor  # [Td] their positions
    layout: SeqLayout  # queries = per-pair tokens; keys = prefix + own tokens
    last: torch.Tensor  # [N] index of each pair's last token in `ids`
    prefix_ids: torch.Tensor  # [Tp] unique prefixes (empty without prefix reuse)
    prefix_pos: torch.Tensor
    prefix_layout: SeqLayout | None
    key_index: torch.Tensor | None  # [Tk] into cat(prefix_kv, own_kv); None if keys are own tokens

    @property
    def num_tokens(self) -> int:
        return int(self.ids.numel() + self.prefix_ids.numel())


def _cu(lengths: list[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)


def _ranges(starts: list[int], lengths: list[int]) -> np.ndarray:
    if not lengths:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([np.arange(s, s + n) for s, n in zip(starts, lengths)])


def pack(pairs: Sequence[Pair], device: torch.device, reuse_prefix: bool = True) -> PackedBatch:
    def t(a, dtype=torch.long) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a), dtype=dtype).to(device, non_blocking=True)

    if not reuse_prefix:
        seqs = [list(p.prefix) + p.tokens for p in pairs]
        lens = [len(s) for s in seqs]
        cu = _cu(lens)
        layout = SeqLayout(t(cu, torch.int32), t(cu, torch.int32), max(lens), max(lens))
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return PackedBatch(
            ids=t(np.concatenate(seqs)),
            pos=t(_ranges([0] * len(lens), lens)),
            layout=layout,
            last=t(cu[1:] - 1),
            prefix_ids=empty,
            prefix_pos=empty,
            prefix_layout=None,
            key_index=None,
        )

    prefixes: dict[tuple[int, ...], int] = {}  # prefix -> start offset in the prefix stream
    prefix_lens: list[int] = []
    for p in pairs:
        if p.prefix not in prefixes:
            prefixes[p.prefix] = sum(prefix_lens)
            prefix_lens.append(len(p.prefix))
    total_prefix = sum(prefix_lens)
    own_lens = [len(p.tokens) for p in pairs]
    own_cu = _cu(own_lens)
    plens = [len(p.prefix) for p in pairs]
    key_parts = []
    for p, own_start, own_len in zip(pairs, own_cu[:-1], own_lens):
        start = prefixes[p.prefix]
        key_parts.append(np.arange(start, start + len(p.prefix)))
        key_parts.append(np.arange(total_prefix + own_start, total_prefix + own_start + own_len))
    key_lens = [a + b for a, b in zip(plens, own_lens)]
    layout = SeqLayout(t(own_cu, torch.int32), t(_cu(key_lens), torch.int32), max(own_lens), max(key_lens))
    prefix_cu = _cu(prefix_lens)
    prefix_layout = SeqLayout(
        t(prefix_cu, torch.int32), t(prefix_cu, torch.int32), max(prefix_lens), max(prefix_lens)
    )
    return PackedBatch(
        ids=t(np.concatenate([p.tokens for p in pairs])),
        pos=t(_ranges(plens, own_lens)),
        layout=layout,
        last=t(own_cu[1:] - 1),
        prefix_ids=t(np.concatenate([np.asarray(p, dtype=np.int64) for p in prefixes])),
        prefix_pos=t(_ranges([0] * len(prefix_lens), prefix_lens)),
        prefix_layout=prefix_layout,
        key_index=t(np.concatenate(key_parts)),
    )
