"""CUDA graphs for small batches: the recorded forward pass is replayed instead of launched from Python.

Why: a forward pass launches ~10 kernels a layer from Python, ~8 ms for the 0.6B model's 28 layers on
an H200's host, while a small batch keeps the GPU busy for less than that (one document: 7.3 ms
launched, 2.1 ms replayed). A graph records the launches once for fixed array sizes
(:class:`~rankserve.engine.packing.Shape`); a batch is padded up to the smallest recorded shape it
fits, so a few graphs serve every small batch.

Shapes are recorded smallest first, and kept only while replaying one takes at most 0.8x the time of
launching the same padded batch from Python (both measured at warm-up): within those, padding costs
less than the launches it saves. Bigger batches keep the GPU busy on their own and are launched as
before (on an H200: up to 2k tokens are replayed for the 0.6B model, 256 for the 8B). Graphs
need the Triton attention kernel (Hopper): FlashAttention's launch grid follows the longest sequence,
which a graph would freeze.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from rankserve.engine.packing import PackedBatch, Shape, pack, packed_tokens
from rankserve.engine.types import Pair

log = logging.getLogger(__name__)

TOKEN_SHAPES = (256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192, 12288, 16384)
"""Token counts of the shapes tried, in steps of 1.33-1.5x: a batch pads up by at most that."""
TOKENS_PER_PAIR = 16
"""Pairs a shape holds: one per this many tokens (pairs are ~20+ tokens: a document and the prompt's end)."""
MIN_PAIRS = 8
FASTER = 0.8
"""Record a shape only if replaying it takes at most this share of launching the same batch from Python."""


@dataclass
class Graph:
    """One recorded forward pass and its fixed inputs and output."""

    shape: Shape
    graph: torch.cuda.CUDAGraph
    inputs: PackedBatch  # each replay reads these buffers: a batch's arrays are copied in first
    output: torch.Tensor  # [shape.pairs] logits
    replay_ms: float


class CudaGraphs:
    """The recorded shapes of one scorer; :meth:`run` scores a batch with one, or says it fits none."""

    def __init__(self, forward: Callable[[PackedBatch], torch.Tensor], device: torch.device, reuse_prefix: bool):
        self.forward = forward
        self.device = device
        self.reuse_prefix = reuse_prefix
        self.graphs: list[Graph] = []  # smallest first
        self.launch_ms = float("nan")  # the largest recorded shape, launched from Python
        self.pool = None
        self._replaying = threading.Lock()  # a graph's inputs are shared: one batch at a time per graph set

    def __repr__(self) -> str:
        sizes = ", ".join(str(g.shape.tokens) for g in self.graphs)
        return f"CudaGraphs(tokens=[{sizes}], largest launched in {self.launch_ms:.2f} ms, replayed in " + (
            f"{self.graphs[-1].replay_ms:.2f} ms)" if self.graphs else "-)"
        )

    def find(self, pairs: Sequence[Pair]) -> Graph | None:
        """The smallest recorded graph these pairs fit in."""
        if not self.graphs or len(pairs) > self.graphs[-1].shape.pairs:
            return None
        tokens = packed_tokens(pairs, self.reuse_prefix)
        return next((g for g in self.graphs if g.shape.fits(tokens, len(pairs))), None)

    def run(self, graph: Graph, pairs: Sequence[Pair]) -> torch.Tensor:
        """Logits ``[len(pairs)]``: pack into the graph's shape, copy into its inputs, replay.

        The copies, the replay and the output's copy are queued on the current stream, so a second
        batch's inputs are not written before the first batch's replay has read them; the lock keeps
        threads sharing one engine from interleaving their copies and replays.
        """
        batch = pack(pairs, self.device, self.reuse_prefix, graph.shape)
        with self._replaying:
            for mine, theirs in zip(graph.inputs.buffers, batch.buffers, strict=True):
                mine.copy_(theirs, non_blocking=True)
            graph.graph.replay()
            return graph.output[: len(pairs)].clone()

    @torch.inference_mode()
    def record(self, max_tokens: int, prefix_tokens: int) -> None:
        """Record shapes from the smallest up while replaying one beats launching the same batch clearly.

        ``prefix_tokens``: the length of a typical prefix (system prompt and a short query), used to
        build the placeholder batches recorded from (their content does not matter, only their sizes).
        The graphs share one memory pool, which keeps the working memory of the largest shape tried
        (the first one not kept): a few hundred MB for an 8B model's small shapes, less for smaller models.
        A shape that fails to record (e.g. out of memory) ends the recording; those before it are kept.
        """
        self.pool = torch.cuda.graph_pool_handle()
        for tokens in TOKEN_SHAPES:
            if tokens > max_tokens:
                break
            shape = Shape(tokens, max(MIN_PAIRS, tokens // TOKENS_PER_PAIR))
            try:
                inputs = pack(placeholder(shape, prefix_tokens), self.device, self.reuse_prefix, shape)
                graph = self._capture(shape, inputs)  # warms the launched pass up too
                launched_ms = _median_ms(lambda batch=inputs: self.forward(batch))
            except Exception as exc:  # keep what was recorded; bigger batches are launched
                log.warning("recording a CUDA graph of %d tokens failed (%s: %s)", tokens, type(exc).__name__, exc)
                if isinstance(exc, torch.OutOfMemoryError):
                    torch.cuda.empty_cache()
                break
            if graph.replay_ms > FASTER * launched_ms:
                break
            self.graphs.append(graph)
            self.launch_ms = launched_ms
        log.info("CUDA graphs recorded: %r", self)

    def _capture(self, shape: Shape, inputs: PackedBatch) -> Graph:
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):  # what torch asks before a capture: warm up off the default stream
            for _ in range(2):
                self.forward(inputs)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            output = self.forward(inputs)
        return Graph(shape, graph, inputs, output, _median_ms(graph.replay))


def placeholder(shape: Shape, prefix_tokens: int) -> list[Pair]:
    """Two pairs sharing a prefix, about filling ``shape``'s tokens (with or without prefix reuse):
    something to record a graph from."""
    prefix = tuple([0] * min(prefix_tokens, shape.tokens // 4))
    own = shape.tokens // 2 - len(prefix)
    return [Pair(i, 0, prefix, [0] * own) for i in range(2)]


def _median_ms(fn: Callable[[], object], repeat: int = 7) -> float:
    """Median wall time of ``fn`` until the GPU is done with it."""
    times = []
    for _ in range(repeat):
        torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)
