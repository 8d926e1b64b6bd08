"""Sweep the Triton attention kernel's tile sizes against FlashAttention-2 on a CUDA GPU.

How the defaults in ``rankserve/engine/triton_attention.py`` were chosen (docs/performance.md). The layouts
come from the engine's own ``pack``: one 70-token prefix and documents of 45–600 tokens (W100-like, in
one batch) or 60 documents of 45–300 tokens (a streamed slice). Per layer, bf16, 0.6B and 8B head
counts; queries come raw from the q/k/v projection, as in the model, and the kernel normalises and
rotates them (``QueryNorm``); every variant is checked against FlashAttention-2's output on queries
normalised and rotated first.

Usage (on the GPU machine, repository root):  python3 scripts/tune_attention.py [--quick]
"""

from __future__ import annotations

import functools
import itertools
import sys

import numpy as np
import torch
from triton.testing import do_bench

from rankserve.engine import triton_attention
from rankserve.engine.attention import QueryNorm, _varlen
from rankserve.engine.packing import pack
from rankserve.engine.types import Pair, PreparedRequest, ScoreRequest

MODELS = {"0.6b": (16, 8), "8b": (32, 8)}  # query heads, key/value heads (head_dim 128)
WORKLOADS = {"W100": np.linspace(45, 600, 100), "slice": np.linspace(45, 300, 60)}
# (query tokens per program, rows per program, keys per tile, warps, pipeline stages)
GRID = [(32, 64, 32, 4, 3)] if "--quick" in sys.argv else [
    (bm, rows, bn, warps, stages)
    for bm, rows, warps in [(16, 64, 4), (32, 64, 4), (64, 64, 4), (32, 128, 4), (64, 128, 4), (64, 128, 8)]
    for bn in (16, 32, 64)
    for stages in (2, 3)
]  # fmt: skip


def packed(own_lengths: np.ndarray, device: torch.device):
    owner = PreparedRequest(ScoreRequest("q", ["d"] * len(own_lengths)))
    prefix = tuple(range(70))
    pairs = [Pair(owner, i, 0, prefix, list(range(int(n)))) for i, n in enumerate(own_lengths)]
    return pack(pairs, device)


def flash_with_gather(q, k, v, layout, scale: float) -> torch.Tensor:
    """What the engine runs on GPUs without the Triton kernel: gather each sequence's keys, then FA2."""
    return _varlen(q, k[layout.key_index], v[layout.key_index], layout, scale)


def main() -> None:
    dev = torch.device("cuda")
    rows = []
    for (model, (hq, hkv)), (workload, lengths) in itertools.product(MODELS.items(), WORKLOADS.items()):
        batch = packed(lengths, dev)
        layout, tokens, scale = batch.layout, batch.ids.numel(), 128**-0.5
        qkv = torch.randn(tokens, (hq + 2 * hkv) * 128, device=dev, dtype=torch.bfloat16)
        q = qkv[:, : hq * 128].view(tokens, hq, 128)  # strided views, as in the model
        k = qkv[:, hq * 128 : (hq + hkv) * 128].reshape(tokens, hkv, 128).contiguous()
        v = qkv[:, (hq + hkv) * 128 :].view(tokens, hkv, 128)
        angles = batch.pos[:, None].float() / 1e6 ** (torch.arange(0, 128, 2, device=dev).float() / 128)
        angles = torch.cat((angles, angles), dim=-1)[:, None]
        q_norm = QueryNorm(torch.rand(128, device=dev, dtype=torch.bfloat16) + 0.5,
                           angles.cos().to(torch.bfloat16), angles.sin().to(torch.bfloat16), 1e-6)  # fmt: skip

        flash = functools.partial(flash_with_gather, q_norm.apply(q), k, v, layout, scale)
        want = flash().float()
        best = (float("inf"),)
        for bm, rows_per_program, bn, warps, stages in GRID:
            seg = layout.segments
            if bm != triton_attention.BLOCK_M:  # the work list depends on the query block
                work = triton_attention.work_list(*(t.cpu().numpy() for t in (seg.q_len, seg.k_len, seg.p_len)), bm)
                seg = triton_attention.Segments(*seg.tensors()[:6], *(torch.tensor(a, device=dev) for a in work))
            tuning = dict(block_m=bm, rows=rows_per_program, block_n=bn, num_warps=warps, num_stages=stages)
            run = functools.partial(triton_attention.packed_attention, q, k, v, seg, scale, q_norm, **tuning)
            try:
                err = (run().float() - want).abs().max()
                ms = do_bench(run, return_mode="median")
            except Exception as exc:  # e.g. too much shared memory for this tile
                print(f"{model} {workload} {tuning}: {type(exc).__name__}")
                continue
            print(f"{model} {workload} {tuning}: {ms * 1e3:.0f} us, max |diff| {err:.1e}", flush=True)
            best = min(best, (ms, tuning, float(err)), key=lambda b: b[0])
        if len(best) == 3:
            rows.append((model, workload, tokens, do_bench(flash, return_mode="median"), *best))
    print("\nmodel workload tokens | FlashAttention-2 + gather us | best Triton us | its tiles | max |diff|")
    for model, workload, tokens, flash_ms, ms, tuning, err in rows:
        print(f"{model} {workload} {tokens} | {flash_ms * 1e3:.0f} | {ms * 1e3:.0f} | {tuning} | {err:.1e}")


if __name__ == "__main__":
    main()
