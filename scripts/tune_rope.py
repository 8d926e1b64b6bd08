"""Sweep the fused q/k norm + rotary kernel's tiles against what ``torch.compile`` generates, on a CUDA GPU.

How the defaults in ``rankserve/engine/triton_rope.py`` were chosen (BENCHMARKS.md): one W100 forward's
27.9k packed tokens, bf16, the 0.6B and 8B head counts (head_dim 128). Every tile is checked against the
model's maths in fp32 (one bf16 rounding allowed) and timed with CUDA events.

Usage (on the GPU machine, repository root):  python3 scripts/tune_rope.py
"""

from __future__ import annotations

import itertools
import statistics

import torch

from rankserve.engine import qwen3, triton_rope

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
    q_w, k_w = (torch.rand(DIM, device=dev, dtype=bf16) + 0.5 for _ in range(2))
    positions = (torch.arange(TOKENS, device=dev) % 700)[:, None].float()
    angles = positions / 1e6 ** (torch.arange(0, DIM, 2, device=dev).float() / DIM)
    angles = torch.cat((angles, angles), dim=-1)
    cos, sin = angles.cos().to(bf16)[:, None], angles.sin().to(bf16)[:, None]
    want = qwen3.qk_norm_rope(qkv.float(), q_w.float(), k_w.float(), cos.float(), sin.float(), 1e-6, n_q, n_kv, DIM)
    megabytes = TOKENS * (n_q + n_kv) * DIM * 2 * 2 / 1e6  # q and k, read once and written once
    compiled = torch.compile(qwen3.qk_norm_rope, dynamic=None)
    inductor = time_us(lambda: compiled(qkv, q_w, k_w, cos, sin, 1e-6, n_q, n_kv, DIM))
    print(f"{model}: inductor's kernels {inductor:.1f} us ({megabytes / inductor:.2f} TB/s)")
    results = []
    for tokens, heads, warps in TILES:
        tuning = {"block_t": tokens, "heads": heads, "num_warps": warps}
        got = triton_rope.qk_norm_rope(qkv, q_w, k_w, cos, sin, 1e-6, n_q, n_kv, **tuning)
        for g, w in zip(got, want, strict=True):
            assert float((g.float() - w).abs().max()) <= 2**-8 * float(w.abs().max()) + 1e-6, tuning
        us = time_us(lambda t=tuning: triton_rope.qk_norm_rope(qkv, q_w, k_w, cos, sin, 1e-6, n_q, n_kv, **t))
        results.append((us, tokens, heads, warps))
    for us, tokens, heads, warps in sorted(results)[:8]:
        print(f"  {tokens:2d} tokens x {heads} heads, {warps} warps: {us:6.1f} us ({megabytes / us:.2f} TB/s)")


def main() -> None:
    for model, (n_q, n_kv) in MODELS.items():
        sweep(model, n_q, n_kv)


if __name__ == "__main__":
    main()
