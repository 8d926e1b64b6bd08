"""Grouping pairs into micro-batches and packing them into flat tensors.

Pairs are sorted by length and cut into micro-batches of at most ``max_batch_tokens``
tokens. Within a batch, tokens are concatenated with no padding. With prefix reuse each
distinct prefix (system prompt + instruction + query) appears once; every document's keys
are then "its prefix's keys, then its own", described both as an index into the concatenation
``[prefix keys; document keys]`` (FlashAttention, SDPA) and as per-sequence start/length pairs
read in place (the Triton kernel).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rankserve.engine import triton_attention
from rankserve.engine.layout import LONG_FROM, SeqLayout
from rankserve.engine.triton_attention import Segments
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
    attend to its prefix's keys then its own. Without prefix reuse there are no prefix
    sequences and every pair carries its whole prompt.
    """

    ids: torch.Tensor  # [T] token ids
    pos: torch.Tensor  # [T] rotary positions
    layout: SeqLayout  # query sequences = prefixes then pairs, and the keys each one reads
    last: torch.Tensor  # [N] index in `ids` of each pair's last token
    last_layout: SeqLayout  # the final layer's: each pair's last token is its only query
    buffers: tuple[torch.Tensor, ...] = ()  # the device arrays all of the above are views of


@dataclass(frozen=True)
class Shape:
    """Fixed array sizes to pack a batch into, whatever its content: what a CUDA graph is recorded for.

    Padding tokens belong to no sequence, padding sequences and pairs have no tokens, and the
    Triton kernel's work list is filled up with programs of an empty sequence (which return at
    once), so a padded batch scores its real pairs exactly as an unpadded one.
    """

    tokens: int
    pairs: int

    @property
    def seqs(self) -> int:
        """Query sequences: at most one prefix per pair, plus an empty one padding programs point at."""
        return 2 * self.pairs + 1

    @property
    def work(self) -> int:
        """Programs of the kernel's work list: sum(ceil(len / BLOCK_M)) < tokens / BLOCK_M + sequences."""
        return self.tokens // triton_attention.BLOCK_M + self.seqs

    def fits(self, tokens: int, pairs: int) -> bool:
        return tokens <= self.tokens and pairs <= self.pairs


def packed_tokens(pairs: Sequence[Pair], reuse_prefix: bool = True) -> int:
    """How many tokens :func:`pack` lays out for these pairs (each distinct prefix once, with reuse)."""
    own = sum(len(p.tokens) for p in pairs)
    if reuse_prefix:
        return own + sum(len(prefix) for prefix in {p.prefix for p in pairs})
    return own + sum(len(p.prefix) for p in pairs)


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


ALIGN_BYTES = 16
"""Each uploaded array starts on a 16-byte boundary: compiled kernels assume aligned inputs (an
unaligned one is copied first, a launch per array per layer)."""


def upload(
    arrays: Sequence[np.ndarray], device: torch.device, dtype: torch.dtype = torch.int64
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Copy int arrays to the device as one transfer, without making the host wait for the GPU.

    Returns the device buffer and a view of it per array.

    On CUDA the copy runs on a side stream from pinned memory: queued behind the compute stream's
    kernels it would hold back the next batch's preparation (and a pinned buffer still waiting for
    its copy cannot be reused, so allocating another one would synchronise the whole device).
    """
    np_dtype = np.int64 if dtype == torch.int64 else np.int32
    step = ALIGN_BYTES // np.dtype(np_dtype).itemsize
    sizes = [len(a) for a in arrays]
    starts = np.concatenate([[0], np.cumsum([-(-n // step) * step for n in sizes])])
    buffer = np.zeros(int(starts[-1]), dtype=np_dtype)
    for a, start, n in zip(arrays, starts, sizes):
        buffer[start : start + n] = a
    host = torch.from_numpy(buffer)
    if device.type != "cuda":
        flat = host.to(device)
    else:
        stream = _upload_streams.get(device)
        if stream is None:
            stream = _upload_streams[device] = torch.cuda.Stream(device)
        compute = torch.cuda.current_stream(device)
        with torch.cuda.stream(stream):  # allocated from the side stream's pool, so no need to wait for compute
            flat = host.pin_memory().to(device, non_blocking=True)
        compute.wait_stream(stream)
        flat.record_stream(compute)  # and not reused before compute is done with it
    return flat, [flat[start : start + n] for start, n in zip(starts.tolist(), sizes)]


@dataclass
class _Seqs:
    """Host-side description of packed query sequences (numpy int arrays, one entry per sequence)."""

    q_start: np.ndarray
    q_len: np.ndarray
    k_start: np.ndarray  # own keys (the sequence's own tokens)
    k_len: np.ndarray
    p_start: np.ndarray  # prefix keys read before the own ones (p_len 0: none)
    p_len: np.ndarray

    def padded(self, n: int) -> _Seqs:
        """The same sequences followed by empty ones, ``n`` in all."""
        fields = (self.q_start, self.q_len, self.k_start, self.k_len, self.p_start, self.p_len)
        return _Seqs(*(_pad(a, n) for a in fields))


def _pad(a: np.ndarray, n: int, value: int = 0) -> np.ndarray:
    if len(a) > n:
        raise ValueError(f"{len(a)} entries do not fit in {n}")
    out = np.full(n, value, dtype=a.dtype)
    out[: len(a)] = a
    return out


def _layout_arrays(seqs: _Seqs, work: int | None = None) -> tuple[list[np.ndarray], Callable[..., SeqLayout]]:
    """The int32 arrays a layout needs, and how to build the layout from their device copies.

    ``work``: pad the kernel's work list to this many programs, of the last sequence (which must be empty).
    Without it (a batch not recorded in a CUDA graph), sequences of :data:`LONG_FROM` queries or more are
    left out of the work list and listed in the layout's ``long`` for their own attention call.
    """
    k_total = seqs.p_len + seqs.k_len
    long = seqs.q_len >= LONG_FROM if work is None else np.zeros(len(seqs.q_len), dtype=bool)
    work_seq, work_block = triton_attention.work_list(np.where(long, 0, seqs.q_len), seqs.k_len, seqs.p_len)
    if work is not None and len(work_seq) > work:
        raise ValueError(f"{len(work_seq)} kernel programs do not fit in {work}")
    if work is not None and len(work_seq) < work:
        if seqs.q_len[-1]:
            raise ValueError("padding programs need an empty last sequence")
        work_seq, work_block = _pad(work_seq, work, len(seqs.q_len) - 1), _pad(work_block, work)
    arrays = [_cu(seqs.q_len), _cu(k_total), seqs.q_start, seqs.q_len, seqs.k_start, seqs.k_len]
    arrays += [seqs.p_start, seqs.p_len, work_seq, work_block]
    long_rows = None
    if long.any():
        rows = np.stack([seqs.q_start, seqs.q_len, seqs.p_start, seqs.p_len], axis=1)[long]
        long_rows = torch.from_numpy(rows.astype(np.int64))

    def build(tensors: list[torch.Tensor], key_index: torch.Tensor | None, tokens: int) -> SeqLayout:
        cu_q, cu_k, *rest = tensors
        max_q = int(seqs.q_len.max()) if len(seqs.q_len) else 0
        max_k = int(k_total.max()) if len(k_total) else 0
        segments = Segments(*rest, wide=tokens >= triton_attention.WIDE_TOKENS)
        return SeqLayout(cu_q, cu_k, max_q, max_k, key_index=key_index, segments=segments, long=long_rows)

    return arrays, build


def pack(
    pairs: Sequence[Pair], device: torch.device, reuse_prefix: bool = True, shape: Shape | None = None
) -> PackedBatch:
    """Lay out a micro-batch for :class:`~rankserve.engine.qwen3.Qwen3Scorer` and copy it to the device.

    Keys are described twice (both built here, on the host, while the GPU is busy): as an index
    that gathers each sequence's keys into one run (for FlashAttention and SDPA) and per sequence
    (:class:`~rankserve.engine.triton_attention.Segments`, for the Triton kernel, which reads them in place).
    With a ``shape`` every array is padded to its sizes and only the Triton kernel's description is
    built (the gather index has no fixed size): a CUDA graph's inputs.
    """
    n = len(pairs)
    own_lens = np.asarray([len(p.tokens) for p in pairs], dtype=np.int64)
    zeros = np.zeros(n, dtype=np.int64)
    if reuse_prefix:
        starts: dict[tuple[int, ...], int] = {}  # prefix -> its first token's index
        prefix_lens: list[int] = []
        for p in pairs:
            if p.prefix not in starts:
                starts[p.prefix] = sum(prefix_lens)
                prefix_lens.append(len(p.prefix))
        prefix_starts = np.asarray(list(starts.values()), dtype=np.int64)
        prefix_lens = np.asarray(prefix_lens, dtype=np.int64)
        pair_prefix_start = np.asarray([starts[p.prefix] for p in pairs], dtype=np.int64)
        pair_prefix_len = np.asarray([len(p.prefix) for p in pairs], dtype=np.int64)
        # (dtype given: numpy converts Python ints ~30% faster when it need not infer one)
        token_lists = [np.asarray(p, dtype=np.int64) for p in [*starts, *(p.tokens for p in pairs)]]
    else:
        prefix_starts = prefix_lens = np.zeros(0, dtype=np.int64)
        pair_prefix_start, pair_prefix_len = zeros, zeros
        own_lens = own_lens + np.asarray([len(p.prefix) for p in pairs], dtype=np.int64)
        token_lists = [np.asarray(list(p.prefix) + p.tokens, dtype=np.int64) for p in pairs]
    own_starts = int(prefix_lens.sum()) + _cu(own_lens)[:-1].astype(np.int64)
    # Every query sequence: prefixes (causal over themselves), then pairs (their prefix, then causal over themselves).
    q_start = np.concatenate([prefix_starts, own_starts])
    q_len = np.concatenate([prefix_lens, own_lens])
    main = _Seqs(q_start, q_len, q_start, q_len, np.concatenate([0 * prefix_lens, pair_prefix_start]),
                 np.concatenate([0 * prefix_lens, pair_prefix_len]))  # fmt: skip
    # The final layer: each pair's last token alone, as query i of the last-token tensor.
    final = _Seqs(np.arange(n), np.ones(n, dtype=np.int64), own_starts, own_lens, pair_prefix_start, pair_prefix_len)
    ids = np.concatenate(token_lists)
    pos = np.concatenate([_ranges(0 * prefix_lens, prefix_lens), _ranges(pair_prefix_len, own_lens)])
    last = own_starts + own_lens - 1
    tokens = len(ids)
    if shape is None:
        big = [ids, pos, last]
        if reuse_prefix:  # the same keys as one gathered run per sequence: prefix keys, then own keys
            key_starts = np.stack([main.p_start, q_start], axis=1).ravel()
            key_lens = np.stack([main.p_len, q_len], axis=1).ravel()
            big.append(_ranges(key_starts, key_lens))  # (without prefixes each sequence's keys are its own)
        main_arrays, build_main = _layout_arrays(main)
        final_arrays, build_final = _layout_arrays(final)
    else:
        if not shape.fits(tokens, n):
            raise ValueError(f"{n} pairs of {tokens} tokens do not fit in {shape}")
        big = [_pad(ids, shape.tokens), _pad(pos, shape.tokens), _pad(last, shape.pairs)]
        # unused padding pairs are empty sequences: with fewer pairs than the shape, the last one is one
        main_arrays, build_main = _layout_arrays(main.padded(shape.seqs), shape.work)
        final_arrays, build_final = _layout_arrays(final.padded(shape.pairs), shape.pairs)
    flat64, (ids_t, pos_t, last_t, *keys) = upload(big, device)
    flat32, small = upload(main_arrays + final_arrays, device, torch.int32)
    keys_t = keys[0] if keys else None
    pair_keys = keys_t[int(prefix_lens.sum()) :] if keys_t is not None else None  # the pairs' gathered runs
    return PackedBatch(
        ids=ids_t,
        pos=pos_t,
        layout=build_main(small[: len(main_arrays)], keys_t, tokens),
        last=last_t,
        last_layout=build_final(small[len(main_arrays) :], pair_keys, tokens),
        buffers=(flat64, flat32),
    )
