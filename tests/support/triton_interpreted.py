"""Checks of the Triton attention kernel on the CPU, through Triton's interpreter.

Run as a script with ``TRITON_INTERPRET=1`` (set before Triton is imported, which is why
``tests/engine/test_triton_attention.py`` starts it in a subprocess); prints one JSON object of results.
Usage (from the repository root): TRITON_INTERPRET=1 python -m tests.support.triton_interpreted MODEL_DIR [GEMMA_DIR]
(MODEL_DIR: a Qwen3 reranker; GEMMA_DIR: a Gemma one, whose attention has one key/value head of 256).
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import torch

assert os.environ.get("TRITON_INTERPRET") == "1", "run with TRITON_INTERPRET=1"

from rankserve import Reranker  # noqa: E402
from rankserve.engine import ScoreRequest, attention, rope, triton_attention, triton_rope  # noqa: E402
from rankserve.engine.layout import SeqLayout  # noqa: E402
from rankserve.engine.triton_attention import Segments, work_list  # noqa: E402
from tests.support.texts import DOCS, QUERIES  # noqa: E402


def kernel_vs_padded(seed: int, hq: int, hkv: int, dim: int, wide: bool = False, norm_q: bool = False) -> float:
    """Random sequences that read a prefix stored elsewhere, against padded SDPA over gathered keys.

    ``norm_q``: the queries are raw projections (a strided view, as in the model) that the kernel
    normalises and rotates as it loads them; SDPA gets them normalised by the model's maths first."""
    rng = np.random.default_rng(seed)
    n_prefix = 2
    prefix_lens = rng.integers(1, 40, n_prefix)
    own = rng.integers(1, 90, 7)
    owner = rng.integers(0, n_prefix, len(own))  # which prefix each document reads
    total = int(prefix_lens.sum() + own.sum())
    prefix_starts = np.concatenate([[0], np.cumsum(prefix_lens)[:-1]])
    own_starts = prefix_lens.sum() + np.concatenate([[0], np.cumsum(own)[:-1]])
    q_start = np.concatenate([prefix_starts, own_starts])
    q_len = np.concatenate([prefix_lens, own])
    p_start = np.concatenate([[0] * n_prefix, prefix_starts[owner]])
    p_len = np.concatenate([[0] * n_prefix, prefix_lens[owner]])
    ints = lambda a: torch.tensor(np.asarray(a), dtype=torch.int32)  # noqa: E731
    seg = Segments(ints(q_start), ints(q_len), ints(q_start), ints(q_len), ints(p_start), ints(p_len),
                   *map(ints, work_list(q_len, q_len, p_len)), wide=wide)  # fmt: skip
    runs = zip(p_start, p_len, q_start, q_len, strict=True)
    key_index = np.concatenate([np.r_[ps : ps + pl, qs : qs + ql] for ps, pl, qs, ql in runs])
    k_len = p_len + q_len
    cu = lambda lens: ints(np.concatenate([[0], np.cumsum(lens)]))  # noqa: E731
    layout = SeqLayout(cu(q_len), cu(k_len), int(q_len.max()), int(k_len.max()), torch.tensor(key_index), seg)
    gen = torch.Generator().manual_seed(seed)
    qkv = torch.randn(total, hq + 2 * hkv + 1, dim, generator=gen)  # q, k and v as strided views, as in the model
    q, k, v = qkv[:, :hq], qkv[:, hq : hq + hkv], qkv[:, hq + hkv : hq + 2 * hkv]
    q_norm, last_norm = None, None
    if norm_q:
        angles = torch.rand(total, 1, dim // 2, generator=gen) * 6
        angles = torch.cat((angles, angles), dim=-1)
        q_norm = rope.QueryNorm(torch.rand(dim, generator=gen) + 0.5, angles.cos(), angles.sin(), 1e-6)
    else:
        q = q.contiguous()
    attention.set_backend("sdpa")
    want = attention.attention(q, k, v, layout, dim**-0.5, q_norm)
    attention.set_backend("triton")
    assert attention.kernel_for(q, layout, k, v) == "triton"
    got = triton_attention.packed_attention(q, k, v, seg, dim**-0.5, q_norm)
    # The final layer's layout: each document's last token alone (query i), reading its prefix and own keys.
    docs = np.arange(n_prefix, len(q_len))
    last = q_start[docs] + q_len[docs] - 1
    ones = np.ones(len(docs), dtype=np.int64)
    final = Segments(ints(np.arange(len(docs))), ints(ones), ints(q_start[docs]), ints(q_len[docs]),
                     ints(p_start[docs]), ints(p_len[docs]), *map(ints, work_list(ones, q_len[docs], p_len[docs])),
                     wide=wide)  # fmt: skip
    last = torch.tensor(last)
    if norm_q:
        last_norm = q_norm._replace(cos=q_norm.cos[last], sin=q_norm.sin[last])
    got_last = triton_attention.packed_attention(q[last], k, v, final, dim**-0.5, last_norm)
    attention.set_backend("auto")
    return max(float((got - want).abs().max()), float((got_last - want[last]).abs().max()))


def norm_rope_vs_reference(seed: int, n_q: int, n_kv: int, dim: int, tokens: int) -> float:
    """The key norm + rotary kernel against the model's maths (``rope.norm_rope``), from a fused
    q/k/v projection, on token counts that do not fill the last block."""
    gen = torch.Generator().manual_seed(seed)
    qkv = torch.randn(tokens, (n_q + 2 * n_kv) * dim, generator=gen) * 3
    k_w = torch.rand(dim, generator=gen) + 0.5
    cos, sin = torch.randn(tokens, 1, dim, generator=gen), torch.randn(tokens, 1, dim, generator=gen)
    keys = qkv[:, n_q * dim : (n_q + n_kv) * dim].reshape(tokens, n_kv, dim)
    want = rope.norm_rope(keys, k_w, cos, sin, 1e-6)
    got = triton_rope.k_norm_rope(qkv, k_w, cos, sin, 1e-6, n_q, n_kv)
    op = torch.ops.rankserve.k_norm_rope(qkv, k_w, cos, sin, 1e-6, n_q, n_kv)  # what compiled code calls
    assert got.shape == want.shape == op.shape
    return max(float((got - want).abs().max()), float((op - want).abs().max()))


def engine_triton_vs_sdpa(
    model_dir: str, reuse_prefix: bool, norms: bool = True, long_from: int | None = None
) -> float:
    """The whole engine (fp32), several requests sharing batches, with each kernel: with the ``triton``
    backend both Triton kernels (attention with the query norm + rotary, key norm + rotary) run,
    with ``sdpa`` neither. ``norms=False``: a model without q/k norms (Gemma), where only attention runs.
    With ``long_from``, sequences of that many tokens or more are attended apart
    (:mod:`~rankserve.engine.long_attention`, as long documents are), the rest by the kernel."""
    from rankserve.engine import packing

    rr = Reranker.from_pretrained(model_dir, device="cpu", dtype="float32", prefix_reuse=reuse_prefix)
    requests = [ScoreRequest(QUERIES[0], DOCS), ScoreRequest(QUERIES[1], DOCS[:5] + ["x"], "Judge by dates")]
    got, calls = {}, []
    kernels = {(triton_attention, "packed_attention"), (triton_rope, "k_norm_rope")}
    if long_from is not None:
        kernels.add((attention, "long_attention"))
        original_long_from, packing.LONG_FROM = packing.LONG_FROM, long_from
    originals = {(module, name): getattr(module, name) for module, name in kernels}

    def counted(module, name):
        def call(*args, **kwargs):
            calls.append(name)
            return originals[module, name](*args, **kwargs)

        return call

    for module, name in kernels:  # the model code looks them up on their modules
        setattr(module, name, counted(module, name))
    for backend in ("sdpa", "triton"):
        attention.set_backend(backend)
        calls.clear()
        got[backend] = [d.score for r in rr.score_requests(requests) for d in r]
        expected = (
            ({"packed_attention", "k_norm_rope"} if norms else {"packed_attention"}) if backend == "triton" else set()
        )
        if long_from is not None and backend == "triton":
            expected.add("long_attention")
        assert set(calls) == expected, (backend, sorted(set(calls)))  # the kernels ran, and only when asked
    attention.set_backend("auto")
    for (module, name), original in originals.items():
        setattr(module, name, original)
    if long_from is not None:
        packing.LONG_FROM = original_long_from
    return max(abs(a - b) for a, b in zip(got["sdpa"], got["triton"], strict=True))


def padded_vs_unpadded(model_dir: str, reuse_prefix: bool) -> float:
    """Batches packed into a CUDA graph's fixed sizes (more tokens, pairs and programs than needed, or
    exactly as many pairs) score their pairs as the unpadded batch does."""
    from rankserve.engine.packing import Shape, pack, packed_tokens

    rr = Reranker.from_pretrained(model_dir, device="cpu", dtype="float32", prefix_reuse=reuse_prefix)
    requests = [ScoreRequest(QUERIES[0], DOCS[:4]), ScoreRequest(QUERIES[1], DOCS[4:7] + ["x"], "Judge by dates")]
    pairs = [pair for r in requests for pair in rr.prepare(r).pairs]
    tokens = packed_tokens(pairs, reuse_prefix)
    attention.set_backend("triton")
    worst = 0.0
    with torch.inference_mode():
        want = rr.scorer(pack(pairs, rr.device, reuse_prefix))
        assert pack(pairs, rr.device, reuse_prefix).ids.numel() == tokens
        for shape in (Shape(tokens + 77, len(pairs) + 5), Shape(tokens, len(pairs))):
            got = rr.scorer(pack(pairs, rr.device, reuse_prefix, shape))
            assert got.shape == (shape.pairs,)
            worst = max(worst, float((got[: len(pairs)] - want).abs().max()))
    attention.set_backend("auto")
    return worst


if __name__ == "__main__":
    out = {
        "kernel_gqa2": max(kernel_vs_padded(s, 4, 2, 32) for s in range(3)),
        "kernel_gqa4": max(kernel_vs_padded(s, 8, 2, 16) for s in range(3, 5)),
        "kernel_mha": kernel_vs_padded(5, 2, 2, 64),
        "kernel_64bit_offsets": kernel_vs_padded(6, 4, 2, 32, wide=True),
        "kernel_q_norm_gqa2": max(kernel_vs_padded(s, 4, 2, 32, norm_q=True) for s in range(12, 14)),
        "kernel_q_norm_gqa4": kernel_vs_padded(14, 8, 2, 16, norm_q=True),
        "kernel_q_norm_64bit_offsets": kernel_vs_padded(15, 4, 2, 32, wide=True, norm_q=True),
        "norm_rope_gqa2": norm_rope_vs_reference(7, 4, 2, 32, 45),
        "norm_rope_mha": norm_rope_vs_reference(8, 2, 2, 64, 70),
        "norm_rope_6_heads": norm_rope_vs_reference(9, 6, 2, 32, 33),
        "norm_rope_0.6b_heads": norm_rope_vs_reference(10, 16, 8, 32, 33),  # 4 heads a program, as on the GPU
        "norm_rope_7_1_heads": norm_rope_vs_reference(11, 7, 1, 32, 65),
        "engine_prefix_reuse": engine_triton_vs_sdpa(sys.argv[1], True),
        "engine_no_prefix_reuse": engine_triton_vs_sdpa(sys.argv[1], False),
        "engine_long_prefix_reuse": engine_triton_vs_sdpa(sys.argv[1], True, long_from=12),
        "engine_long_no_prefix_reuse": engine_triton_vs_sdpa(sys.argv[1], False, long_from=40),
        "padded_prefix_reuse": padded_vs_unpadded(sys.argv[1], True),
        "padded_no_prefix_reuse": padded_vs_unpadded(sys.argv[1], False),
    }
    if len(sys.argv) > 2:  # Gemma: multi-query attention with heads of 256, queries rotated before the kernel
        out["kernel_mqa_256"] = kernel_vs_padded(16, 8, 1, 256)
        out["engine_gemma_prefix_reuse"] = engine_triton_vs_sdpa(sys.argv[2], True, norms=False)
        out["engine_gemma_no_prefix_reuse"] = engine_triton_vs_sdpa(sys.argv[2], False, norms=False)
    print(json.dumps(out))
