"""Sweep the key norm + rotary kernel's tiles against what ``torch.compile`` generates, on a CUDA GPU.

How the defaults in ``rankserve/engine/triton_rope.py`` were chosen (docs/performance.md): one W100 forward's
27.9k packed tokens, bf16, the 0.6B and 8B head counts (head_dim 128). Every tile is checked against the
model's maths in fp32 (one bf16 rounding allowed) and timed with CUDA events.

Usage (on the GPU machine, repository root):  python3 scripts/tune_rope.py
"""

from __future__ import annotations

import itertools
import statistics

import torch

from rankserve.engine import rope, triton_rope

MODELS = {"0.6b": (16, 8), "8b": (32, 8)}  # query heads, key/value heads
TOKENS, DIM = 27911, 128
TILES = list(itertools.product((4, 8, 16, 32), (1, 2, 4, 8), (2, 4, 8)))  # tokens, heads, warps per program


def time_us(fn, repeat: int = 40) -> float:
    for _ in range(5):
        fn()
    times = []
    for _ in range(repeat):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) * 1000)
    return statistics.median(times)


def sweep(model: str, n_q: int, n_kv: int) -> None:
    bf16, dev = torch.bfloat16, "cuda"
    qkv = torch.randn(TOKENS, (n_q + 2 * n_kv) * DIM, device=dev, dtype=bf16)
    k_w = torch.rand(DIM, device=dev, dtype=bf16) + 0.5
    positions = (torch.arange(TOKENS, device=dev) % 700)[:, None].float()
    angles = positions / 1e6 ** (torch.arange(0, DIM, 2, device=dev).float() / DIM)
    angles = torch.cat((angles, angles), dim=-1)
    cos, sin = angles.cos().to(bf16)[:, None], angles.sin().to(bf16)[:, None]
    keys = qkv[:, n_q * DIM : (n_q + n_kv) * DIM].view(TOKENS, n_kv, DIM)
    want = rope.norm_rope(keys.float(), k_w.float(), cos.float(), sin.float(), 1e-6)
    megabytes = TOKENS * n_kv * DIM * 2 * 2 / 1e6  # keys, read once and written once
    compiled = torch.compile(rope.norm_rope, dynamic=None)
    inductor = time_us(lambda: compiled(keys, k_w, cos, sin, 1e-6))
    print(f"{model}: inductor's kernels {inductor:.1f} us ({megabytes / inductor:.2f} TB/s)")
    results = []
    for tokens, heads, warps in TILES:
        tuning = {"block_t": tokens, "heads": heads, "num_warps": warps}
        got = triton_rope.k_norm_rope(qkv, k_w, cos, sin, 1e-6, n_q, n_kv, **tuning)
        assert float((got.float() - want).abs().max()) <= 2**-8 * float(want.abs().max()) + 1e-6, tuning
        us = time_us(lambda t=tuning: triton_rope.k_norm_rope(qkv, k_w, cos, sin, 1e-6, n_q, n_kv, **t))
        results.append((us, tokens, heads, warps))
    for us, tokens, heads, warps in sorted(results)[:8]:
        print(f"  {tokens:2d} tokens x {heads} heads, {warps} warps: {us:6.1f} us ({megabytes / us:.2f} TB/s)")


def main() -> None:
    for model, (n_q, n_kv) in MODELS.items():
        sweep(model, n_q, n_kv)


if __name__ == "__main__":
    main()
