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


def plan_batches(pairs: Sequence[Pair], max_batch_tokens: int, reuse_prefix: bool = True) -> list[list[Pair]]:
    """Length-sorted micro-batches whose packed token count stays within the budget.

    With prefix reuse a batch holds each distinct prefix once, so a prefix is counted once.
    A single pair longer than the budget gets a batch of its own.
    """
    batches: list[list[Pair]] = []
    current: list[Pair] = []
    seen: set[tuple[int, ...]] = set()
    used = 0
    for pair in sorted(pairs, key=lambda p: p.num_tokens):
        cost = len(pair.tokens) if reuse_prefix and pair.prefix in seen else pair.num_tokens
        if current and used + cost > max_batch_tokens:
            batches.append(current)
            current, used, seen = [], 0, set()
            cost = pair.num_tokens
        current.append(pair)
        seen.add(pair.prefix)
        used += cost
    if current:
        batches.append(current)
    return batches


@dataclass
class PackedBatch:
    """Flat tensors for one forward pass.

    Tokens are laid out as ``[unique prefixes..., per-pair tokens...]`` and run through the
    model in ONE pass: prefix sequences attend causally to themselves; each pair's tokens
    attend to its prefix's keys then its own (``key_index`` gathers those keys from the same
    layer's key tensor). Without prefix reuse there are no prefix sequences and every pair
    carries its whole prompt.
    """

    ids: torch.Tensor  # [T] token ids
    pos: torch.Tensor  # [T] rotary positions
    layout: SeqLayout  # query sequences = prefixes then pairs; key sequences via key_index
    key_index: torch.Tensor | None  # [Tk] index into the layer's keys; None if keys are the query tokens
    last: torch.Tensor  # [N] index in `ids` of each pair's last token
    n_prefix_seqs: int = 0  # how many query sequences are prefixes (they come first)
    pair_keys_start: int = 0  # where the pairs' keys start in the gathered key tensor

    def last_layer_layout(self) -> SeqLayout:
        """Layout for the final layer, where each pair contributes only its last token as a query."""
        n = self.last.numel()
        cu_k = self.layout.cu_k[self.n_prefix_seqs :] - self.pair_keys_start
        cu_q = torch.arange(n + 1, dtype=torch.int32, device=self.last.device)
        return SeqLayout(cu_q, cu_k, 1, self.layout.max_k)


def _cu(lengths: list[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)


def _ranges(starts, lengths) -> np.ndarray:
    """``concatenate([arange(s, s + n) for s, n in zip(starts, lengths)])`` without a Python loop."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.size == 0:
        return np.zeros(0, dtype=np.int64)
    first = np.cumsum(lengths) - lengths  # where each range begins in the output
    return np.repeat(np.asarray(starts, dtype=np.int64) - first, lengths) + np.arange(int(lengths.sum()))


_upload_streams: dict[torch.device, torch.cuda.Stream] = {}


def upload(arrays: Sequence[np.ndarray], device: torch.device) -> list[torch.Tensor]:
    """Copy int arrays to the device as one transfer, without making the host wait for the GPU.

    On CUDA the copy runs on a side stream from pinned memory: queued behind the compute stream's
    kernels it would hold back the next batch's preparation (and a pinned buffer still waiting for
    its copy cannot be reused, so allocating another one would synchronise the whole device).
    """
    sizes = [len(a) for a in arrays]
    host = torch.from_numpy(np.concatenate([np.asarray(a, dtype=np.int64) for a in arrays]))
    if device.type != "cuda":
        return list(host.to(device).split(sizes))
    stream = _upload_streams.get(device)
    if stream is None:
        stream = _upload_streams[device] = torch.cuda.Stream(device)
    compute = torch.cuda.current_stream(device)
    with torch.cuda.stream(stream):  # allocated from the side stream's pool, so no need to wait for compute
        flat = host.pin_memory().to(device, non_blocking=True)
    compute.wait_stream(stream)
    flat.record_stream(compute)  # and not reused before compute is done with it
    return list(flat.split(sizes))


def pack(pairs: Sequence[Pair], device: torch.device, reuse_prefix: bool = True) -> PackedBatch:
    if not reuse_prefix:
        seqs = [list(p.prefix) + p.tokens for p in pairs]
        lens = [len(s) for s in seqs]
        cu = _cu(lens)
        ids, pos, cu_t, last = upload([np.concatenate(seqs), _ranges([0] * len(lens), lens), cu, cu[1:] - 1], device)
        cu_t = cu_t.int()
        return PackedBatch(ids, pos, SeqLayout(cu_t, cu_t, max(lens), max(lens)), key_index=None, last=last)

    starts: dict[tuple[int, ...], int] = {}  # prefix -> its first token's index
    prefix_lens: list[int] = []
    for p in pairs:
        if p.prefix not in starts:
            starts[p.prefix] = sum(prefix_lens)
            prefix_lens.append(len(p.prefix))
    own_lens = [len(p.tokens) for p in pairs]
    own_starts = sum(prefix_lens) + _cu(own_lens)[:-1]
    pair_prefix_starts = [starts[p.prefix] for p in pairs]
    pair_prefix_lens = [len(p.prefix) for p in pairs]
    # Keys: each prefix sees itself; each pair sees its prefix, then itself.
    key_starts = np.stack([pair_prefix_starts, own_starts], axis=1).ravel()  # prefix, own, prefix, own, ...
    key_lens = np.stack([pair_prefix_lens, own_lens], axis=1).ravel()
    key_index = np.concatenate([_ranges(list(starts.values()), prefix_lens), _ranges(key_starts, key_lens)])
    q_lens = prefix_lens + own_lens
    k_lens = prefix_lens + [pl + ol for pl, ol in zip(pair_prefix_lens, own_lens)]
    ids = np.concatenate([np.asarray(p, dtype=np.int64) for p in starts] + [np.asarray(p.tokens) for p in pairs])
    pos = np.concatenate([_ranges([0] * len(prefix_lens), prefix_lens), _ranges(pair_prefix_lens, own_lens)])
    last = own_starts + np.asarray(own_lens) - 1
    ids_t, pos_t, keys_t, last_t, cu_q, cu_k = upload([ids, pos, key_index, last, _cu(q_lens), _cu(k_lens)], device)
    return PackedBatch(
        ids=ids_t,
        pos=pos_t,
        layout=SeqLayout(cu_q.int(), cu_k.int(), max(q_lens), max(k_lens)),
        key_index=keys_t,
        last=last_t,
        n_prefix_seqs=len(prefix_lens),
        pair_keys_start=sum(prefix_lens),
    )
