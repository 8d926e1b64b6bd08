"""CUDA graphs for small batches (engine/graphs.py) and the fixed shapes they pack into.

The shape arithmetic runs everywhere; recording and replaying graphs needs a Hopper GPU (where the
Triton attention kernel runs), so those tests run on the GPU machine and skip elsewhere.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from rankserve.engine import Reranker, ScoreRequest, attention
from rankserve.engine.graphs import placeholder
from rankserve.engine.packing import Shape, pack, packed_tokens
from rankserve.engine.triton_attention import BLOCK_M, work_list
from rankserve.engine.types import Pair


def random_pairs(rng: random.Random, n: int) -> list[Pair]:
    prefixes = [tuple(rng.randrange(50) for _ in range(rng.randint(1, 40))) for _ in range(rng.randint(1, 3))]
    return [Pair(i, 0, rng.choice(prefixes), [rng.randrange(50) for _ in range(rng.randint(1, 90))]) for i in range(n)]


@pytest.mark.parametrize("reuse_prefix", [True, False])
def test_padded_batches_fill_their_shape_exactly(reuse_prefix):
    """Every array of a padded batch has the shape's size (what a recorded graph reads), the kernel's
    programs fit the shape's work list, and padding programs point at an empty sequence."""
    rng = random.Random(0)
    for _ in range(40):
        pairs = random_pairs(rng, rng.randint(1, 12))
        tokens = packed_tokens(pairs, reuse_prefix)
        plain = pack(pairs, torch.device("cpu"), reuse_prefix)
        assert plain.ids.numel() == tokens
        shape = Shape(tokens + rng.randint(0, 64), len(pairs) + rng.randint(0, 4))
        padded = pack(pairs, torch.device("cpu"), reuse_prefix, shape)
        assert padded.ids.shape == padded.pos.shape == (shape.tokens,)
        assert padded.last.shape == (shape.pairs,)
        seg, final = padded.layout.segments, padded.last_layout.segments
        assert all(t.shape == (shape.seqs,) for t in seg.tensors()[:6])
        assert seg.work_seq.shape == (shape.work,) and final.work_seq.shape == (shape.pairs,)
        real = plain.layout.segments.work_seq.numel()
        assert (seg.q_len[seg.work_seq[real:].long()] == 0).all()  # padding programs: an empty sequence
        assert padded.ids[:tokens].tolist() == plain.ids.tolist() and not padded.ids[tokens:].any()
        assert padded.layout.key_index is None  # the gather index has no fixed size: graphs use the kernel
        # the same buffers again, whatever the content: a graph's inputs are overwritten in place
        assert [b.shape for b in padded.buffers] == [b.shape for b in pack(pairs[:1], torch.device("cpu"),
                                                                           reuse_prefix, shape).buffers]  # fmt: skip


def test_work_list_bound_holds_for_the_worst_case():
    """sum(ceil(len / BLOCK_M)) stays within Shape.work for any split of the tokens, e.g. all one-token pairs."""
    shape = Shape(256, 16)
    for lens in ([1] * 16, [256 - 15] + [1] * 15, [16] * 16, [33] * 7 + [1] * 9):
        q_len = np.array(lens + [0] * (shape.seqs - len(lens)))
        seq, _ = work_list(q_len, q_len, np.zeros_like(q_len))
        assert len(seq) <= shape.work


@pytest.mark.parametrize("own", [1, BLOCK_M + 1])
def test_every_pair_with_its_own_prefix_fits_the_shape(own):
    """The most sequences a shape can get: each pair with a prefix of its own (two sequences a pair), each
    just past a block edge, packed into a shape with no token to spare."""
    pairs = [Pair(i, 0, (i,) * (BLOCK_M + 1), [7] * own) for i in range(8)]
    shape = Shape(packed_tokens(pairs), len(pairs))
    padded = pack(pairs, torch.device("cpu"), True, shape)  # raises if the programs exceed shape.work
    seg = padded.layout.segments
    assert seg.work_seq.shape == (shape.work,)
    assert int((seg.q_len > 0).sum()) == 2 * len(pairs)


def test_placeholders_fill_their_shape():
    """The batches graphs are recorded from fit their shape, with or without prefix reuse."""
    for tokens in (256, 2048, 16384):
        shape = Shape(tokens, tokens // 16)
        made = placeholder(shape, 92)
        for reuse in (True, False):
            assert shape.tokens // 2 < packed_tokens(made, reuse) <= shape.tokens
            pack(made, torch.device("cpu"), reuse, shape)


def test_a_batch_too_big_for_its_shape_is_refused():
    pairs = random_pairs(random.Random(1), 4)
    with pytest.raises(ValueError, match="do not fit"):
        pack(pairs, torch.device("cpu"), True, Shape(packed_tokens(pairs) - 1, 4))


# CUDA graphs are recorded on Hopper GPUs only (the Triton kernel runs there)
needs_hopper = pytest.mark.gpu(hopper=True)
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()


def random_requests(seed: int, n: int) -> list[ScoreRequest]:
    rng = random.Random(seed)
    return [
        ScoreRequest(f"query {i} " + " ".join(rng.choices(WORDS, k=rng.randint(1, 8))),
                     [" ".join(rng.choices(WORDS, k=rng.randint(1, 60))) for _ in range(rng.randint(1, 12))])
        for i in range(n)
    ]  # fmt: skip


@pytest.fixture(scope="module")
def gpu_reranker(tiny_qwen_dir):
    return Reranker.from_pretrained(str(tiny_qwen_dir), device="cuda", dtype="bfloat16")


@needs_hopper
def test_graph_replays_score_as_launched_passes(gpu_reranker):
    """On the GPU: shapes are recorded at load, small requests (one and many, several sharing a batch)
    replay them, and their scores are the launched passes' (same kernels; padding changes only the
    matrix sizes, so bf16 rounding may differ slightly)."""
    rr = gpu_reranker
    assert rr.graphs is not None and rr.graphs.graphs, "no CUDA graph was recorded"
    requests = random_requests(0, 6)
    replayed = [[d.score for d in r] for r in rr.score_requests(requests)]
    pairs = [p for r in requests for p in rr.prepare(r).pairs]
    assert rr.graphs.find(pairs) is not None  # the mix fits a recorded shape, so it was replayed
    singles = [rr.score(r.query, r.documents) for r in requests]
    graphs, rr.graphs = rr.graphs, None
    launched = [[d.score for d in r] for r in rr.score_requests(requests)]
    worst = max(abs(a - b) for x, y in zip(replayed, launched) for a, b in zip(x, y, strict=True))
    assert worst < 2e-2, worst
    assert all(abs(a.score - b) < 2e-2 for s, want in zip(singles, launched) for a, b in zip(s, want, strict=True))
    # more pairs than any shape holds: launched as before
    many = [f"doc {i}" for i in range(graphs.graphs[-1].shape.pairs + 1)]
    rr.graphs = graphs
    assert graphs.find(rr.prepare(ScoreRequest("q", many)).pairs) is None
    assert len(rr.score("q", many)) == len(many)


@needs_hopper
def test_threads_sharing_an_engine_get_their_own_scores(gpu_reranker):
    """Replays share their graph's input buffers: threads scoring at once must not get each other's scores."""
    from concurrent.futures import ThreadPoolExecutor

    rr = gpu_reranker
    requests = random_requests(1, 24)
    alone = [[d.score for d in rr.score(r.query, r.documents)] for r in requests]
    with ThreadPoolExecutor(6) as pool:
        together = list(pool.map(lambda r: [d.score for d in rr.score(r.query, r.documents)], requests * 4))
    assert together == alone * 4


@needs_hopper
def test_triton_kernels_score_as_the_other_kernels(gpu_reranker):
    """The Triton kernels (keys normed and rotated in one, queries inside attention) against padded SDPA
    with the model's maths, in bf16 on the GPU: as close as FlashAttention comes (bf16 rounding
    differs between kernels, and a random tiny model amplifies it)."""
    rr = gpu_reranker
    graphs, rr.graphs = rr.graphs, None
    requests = random_requests(2, 6)
    scores = {}
    try:
        for backend in ("auto", "flash", "sdpa"):
            attention.set_backend(backend)
            scores[backend] = [d.score for r in rr.score_requests(requests) for d in r]
    finally:
        attention.set_backend("auto")
        rr.graphs = graphs

    def worst(a: str, b: str) -> float:
        return max(abs(x - y) for x, y in zip(scores[a], scores[b], strict=True))

    assert worst("auto", "sdpa") <= 2 * worst("flash", "sdpa") + 5e-3, (worst("auto", "sdpa"), worst("flash", "sdpa"))
