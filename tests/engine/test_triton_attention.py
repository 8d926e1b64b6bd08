"""The Triton attention kernel (used on Hopper GPUs), checked on the CPU through Triton's interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from rankserve.engine.triton_attention import BLOCK_M, work_list
from tests.support.paths import REPO

pytest.importorskip("triton", reason="Triton is not installed (the dev extras install it on Linux x86-64)")


@pytest.mark.slow
def test_kernel_and_engine_match_padded_attention(tiny_qwen_dir, tiny_gemma_dir):
    """Random packed layouts (prefixes read in place, grouped-query heads, strided keys), then the whole
    engine with and without prefix reuse: the Triton kernel agrees with padded SDPA in fp32, also when
    it normalises and rotates raw queries itself; the key norm + rotary kernel agrees with the model's
    maths, called directly and as the op compiled code calls; the engine with both kernels agrees with
    it without them (each checked to have run); batches padded to a CUDA graph's fixed sizes score as
    unpadded ones; with long sequences attended apart, the engine still agrees. Gemma's attention (one
    key/value head, heads of 256) goes through the kernel too: a random layout, and the whole Gemma engine
    with the kernel against it without."""
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.support.triton_interpreted", str(tiny_qwen_dir), str(tiny_gemma_dir)],
        capture_output=True, text=True, timeout=600, env=env, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    errors = json.loads(proc.stdout.strip().splitlines()[-1])
    kernels = {"kernel_gqa2", "kernel_gqa4", "kernel_mha", "kernel_64bit_offsets"}
    kernels |= {"kernel_q_norm_gqa2", "kernel_q_norm_gqa4", "kernel_q_norm_64bit_offsets"}
    kernels |= {"norm_rope_gqa2", "norm_rope_mha", "norm_rope_6_heads", "norm_rope_0.6b_heads", "norm_rope_7_1_heads"}
    engine = {"engine_prefix_reuse", "engine_no_prefix_reuse", "padded_prefix_reuse", "padded_no_prefix_reuse"}
    engine |= {"engine_long_prefix_reuse", "engine_long_no_prefix_reuse"}
    kernels |= {"kernel_mqa_256"}
    engine |= {"engine_gemma_prefix_reuse", "engine_gemma_no_prefix_reuse"}
    assert set(errors) == kernels | engine
    assert all(err < 1e-5 for err in errors.values()), errors


def test_work_list_covers_every_query_block_heaviest_first():
    q_len = np.array([1, BLOCK_M, BLOCK_M + 1, 5 * BLOCK_M - 3, 1])
    k_len = q_len + np.array([0, 0, 0, 0, 3 * BLOCK_M])  # the last: one query after many keys (the final layer)
    p_len = np.array([0, 70, 70, 0, 10])
    seq, block = work_list(q_len, k_len, p_len)
    blocks = -(-q_len // BLOCK_M)
    assert sorted(zip(seq.tolist(), block.tolist())) == [(s, b) for s in range(5) for b in range(blocks[s])]
    keys = p_len[seq] + np.minimum(k_len[seq], (block + 1) * BLOCK_M + (k_len - q_len)[seq])
    assert (np.diff(keys) <= 0).all()  # the programs with most keys to read are launched first
    # keys read: 157 and 128 by the long sequence's last two blocks, then 10 + 97 by the lone final query
    assert list(zip(seq[:3].tolist(), block[:3].tolist())) == [(3, 4), (3, 3), (4, 0)]
