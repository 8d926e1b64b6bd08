"""The public engine: ``Reranker.from_pretrained(...)`` then ``score`` / ``rerank``.

The engine has no web imports. The HTTP server's batcher drives it through the finer
``prepare`` / ``score_pairs`` split (see ``docs/CONTRACT.md``): preparing tokenizes a
request into pairs, and ``score_pairs`` scores any mix of pairs from many requests in
length-sorted micro-batches of at most ``max_batch_tokens`` tokens and returns their scores
(values in, values out: nothing is written into the pairs).

A reranker owns its device: on CUDA every entry point (warm-up, graph recording, scoring)
runs under that device's guard, because CUDA graphs synchronise and Triton kernels launch on
the *current* device, which need not be ours when several engines share a process.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator, Sequence

import torch

from rankserve.defaults import QUANTIZATIONS
from rankserve.engine import attention, encoders, families, loader
from rankserve.engine.graphs import CudaGraphs
from rankserve.engine.listwise import ListwisePairBuilder
from rankserve.engine.listwise_model import ListwiseScorer
from rankserve.engine.packing import pack, plan_batches
from rankserve.engine.prepare import CrossEncoderPairBuilder, QwenPairBuilder, validate
from rankserve.engine.qwen3 import Qwen3Scorer
from rankserve.engine.templates import BUILDERS
from rankserve.engine.types import (
    DEFAULT_TRUNCATION,
    DocScore,
    Pair,
    PreparedRequest,
    ScoreRequest,
    sort_by_score,
)
from rankserve.errors import EngineError, InvalidInputError, ModelLoadError

log = logging.getLogger(__name__)

DEFAULT_MAX_LENGTH = 8192
STREAM_TOKENS = 12288
"""With streamed preparation, queue a forward pass (after the first) once this many tokens of pairs are ready."""
ROBERTA_FAMILY = ("roberta", "xlm-roberta", "camembert")  # positions start after the padding index


def model_limit(loaded: loader.Loaded) -> int:
    """The longest pair the model can read: its position table (and, for encoders, its tokenizer's limit).

    BERT-style cross-encoders read 512 tokens; ``BAAI/bge-reranker-v2-m3`` (XLM-R) reads 8192.
    """
    config = loaded.config
    limit = int(getattr(config, "max_position_embeddings", None) or DEFAULT_MAX_LENGTH)
    if loaded.kind == loader.CROSS_ENCODER:
        if config.model_type in ROBERTA_FAMILY:
            limit -= 2
        tok_limit = getattr(loaded.tokenizer, "model_max_length", None)
        if isinstance(tok_limit, int) and 0 < tok_limit < 1_000_000:
            limit = min(limit, tok_limit)
    return limit


WARMUP_REQUESTS = (
    ("warm up", ["a short document", "another document, a little longer than the first"]),
    ("a longer query, so that the prefix length changes between warm-up requests", ["one document " * 40]),
    ("q", ["x", "y z", "a third document"]),
    ("warm up", ["one document"]),
)
"""Tiny requests that compile every graph shape real traffic needs (see :meth:`Reranker.warmup`)."""


def check_quantize(quantize: str | None, kind: str, device: torch.device, dtype: torch.dtype) -> str | None:
    """``None`` or ``"fp8"``; a clear error where FP8 cannot run.

    On CUDA, FP8 needs an Ada/Hopper GPU and a bf16 model (the per-row scaled FP8 product returns
    bf16 only). The CPU also runs it, slowly, which is what the tests use.
    """
    if quantize in (None, "none", ""):
        return None
    if quantize not in QUANTIZATIONS:
        raise ModelLoadError(f"unknown quantization {quantize!r}: use one of {', '.join(QUANTIZATIONS)}")
    if kind not in loader.PACKED_KINDS:
        raise ModelLoadError(
            "fp8 quantization runs on the packed decoder engine only (Qwen3, Qwen2 and Gemma rerankers), "
            "not on cross-encoders"
        )
    if device.type == "cuda":
        if torch.cuda.get_device_capability(device) < (8, 9):
            name = torch.cuda.get_device_name(device)
            raise ModelLoadError(f"fp8 needs an NVIDIA GPU of compute capability 8.9+ (Ada, Hopper), not {name}")
        if dtype != torch.bfloat16:
            raise ModelLoadError(f"fp8 on a GPU needs --dtype bfloat16 (the default there), not {dtype}")
    failure = _fp8_failure(str(device), dtype)
    if failure:
        raise ModelLoadError(f"fp8 does not run with torch {torch.__version__} on {device}: {failure}")
    return quantize


@functools.cache
def _fp8_failure(device: str, dtype: torch.dtype) -> str | None:
    """Why a tiny per-row scaled FP8 product fails here (older torch builds lack it), or None.

    Tried once per device and dtype: ``from_pretrained`` checks before loading and again after.
    """
    try:
        ones = torch.ones(16, 16, device=device).to(torch.float8_e4m3fn)
        scale = torch.ones(16, 1, device=device)
        torch._scaled_mm(ones, ones.t(), scale_a=scale, scale_b=scale.t(), out_dtype=dtype)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def default_batch_tokens(device: torch.device) -> int:
    """A micro-batch big enough to keep a GPU busy; smaller on CPU where padding costs more."""
    return 65536 if device.type == "cuda" else 8192


class Reranker:
    """Scores (instruction, query, document) triples with a reranker checkpoint."""

    def __init__(
        self,
        model_name: str,
        loaded: loader.Loaded,
        device: torch.device,
        dtype: torch.dtype,
        max_length: int,
        max_batch_tokens: int,
        prefix_reuse: bool,
        compile: bool = False,
        quantize: str | None = None,
        cuda_graphs: bool = True,
    ) -> None:
        self.model_name = model_name
        self.quantize = quantize
        self.kind = loaded.kind
        self.family: families.Family = loaded.family
        self.config = loaded.config
        self.tokenizer = loaded.tokenizer
        self.device = device
        self.dtype = dtype
        self.max_length = max_length
        self.max_batch_tokens = max_batch_tokens
        self.prefix_reuse = prefix_reuse
        self.cuda_graphs = cuda_graphs  # record them at warm-up where they help (see graphs.py)
        self.graphs: CudaGraphs | None = None
        self._graphs_tried = False
        # Overlap tokenization with the GPU (see score_requests); pointless where the forward pass blocks.
        self.stream_prepare = device.type == "cuda"
        self.encoder: torch.nn.Module | None = None  # the packed encoder runner, where this model type has one
        self.listwise: ListwiseScorer | None = None  # listwise families (jina-reranker-v3): whole requests
        if self.kind == loader.LISTWISE:
            self.builder = ListwisePairBuilder(self.tokenizer)
        elif self.family.template in BUILDERS:
            self.builder = BUILDERS[self.family.template](self.family, self.tokenizer, max_length)
        elif self.kind == loader.CROSS_ENCODER:
            self.builder = CrossEncoderPairBuilder(self.tokenizer, max_length)
        else:
            self.builder = QwenPairBuilder(self.tokenizer, max_length)
        if self.kind == loader.LISTWISE:
            self.hf_model = loaded.model
            self.scorer = None
            self.listwise = ListwiseScorer(loaded.model, self.builder.doc_id, self.builder.query_id)
        elif self.kind == loader.CROSS_ENCODER:
            self.hf_model = loaded.model
            self.scorer = None
            self.num_labels = int(self.config.num_labels)
            self.encoder = encoders.packed_runner(loaded.model)
            if self.encoder is not None:
                attention.check_device(device)
        else:
            base = loaded.model.model  # drop lm_head / score: only the yes-no direction is kept
            try:
                self.scorer = Qwen3Scorer(base, loaded.head, compile=compile, quantize=quantize).to(device)
            except ValueError as exc:  # a part of the architecture the packed engine does not run
                raise ModelLoadError(f"{model_name!r}: {exc}") from exc
            attention.check_device(device)
            self.hf_model = None
            # Residual adds in place save two copies a layer (3% of a big pass on an H200) but cost ~1 ms more
            # of Python a pass: a loss only for small batches launched from Python, i.e. on GPUs without graphs.
            self.scorer.residual_in_place = device.type != "cuda" or (cuda_graphs and self._graphs_run_here())

    @classmethod
    def from_pretrained(
        cls,
        model: str,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype = "auto",
        max_length: int = DEFAULT_MAX_LENGTH,
        max_batch_tokens: int | None = None,
        prefix_reuse: bool = True,
        compile: bool | str = "auto",
        quantize: str | None = None,
        cuda_graphs: bool = True,
        family: str | None = None,
    ) -> Reranker:
        """Load a Hugging Face id or local directory (see :mod:`rankserve.engine.loader`).

        ``family``: the reranker family's recipe (:data:`rankserve.engine.families.FAMILIES`), for a
        fine-tune whose name does not say it; recognised from ``config.json`` and the name otherwise.

        ``quantize="fp8"``: FP8 (e4m3) projection weights and activations with per-channel /
        per-token scales, for Hopper-class GPUs (compute capability 8.9+). Faster matrix products,
        scores no longer bit-for-bit the recipe's: docs/performance.md gives the speed and the rank
        correlation. LLM rerankers on the packed engine (Qwen3, Qwen2, Gemma).

        ``compile``: ``"auto"`` compiles the decoder layers with ``torch.compile`` on CUDA
        (fuses norms, rotary embedding and activations: 1.1-1.6x faster) and runs eagerly
        elsewhere; ``True``/``False`` force it. Compiling happens in :meth:`warmup`, here.

        ``cuda_graphs``: record CUDA graphs for small batches at warm-up, where they run (Hopper
        GPUs, see :mod:`rankserve.engine.graphs`) and only for the sizes where replaying beats
        launching from Python.
        """
        dev = loader.resolve_device(device)
        dt = loader.resolve_dtype(dtype, dev)
        use_compile = dev.type == "cuda" if compile == "auto" else compile in (True, "on", "true", "yes", "1")
        check_quantize(quantize, loader.QWEN_CAUSAL, dev, dt)  # before a possibly long download
        loaded = loader.load(str(model), dev, dt, family)
        reranker = cls._build(
            str(model), loaded, max_length, max_batch_tokens, prefix_reuse, use_compile, quantize, cuda_graphs
        )
        if reranker.scorer is not None:
            reranker.scorer.release_unquantized()  # the model is ours: drop what FP8 replaced
        if use_compile or (cuda_graphs and dev.type == "cuda"):
            reranker.warmup()
        return reranker

    @classmethod
    def from_model(
        cls,
        hf_model: torch.nn.Module,
        tokenizer,
        name: str = "model",
        max_length: int = DEFAULT_MAX_LENGTH,
        max_batch_tokens: int | None = None,
        prefix_reuse: bool = True,
        compile: bool = False,
        quantize: str | None = None,
        cuda_graphs: bool = True,
        family: str | None = None,
    ) -> Reranker:
        """Wrap a model already in memory (e.g. random weights of a real architecture, for benchmarks).

        Nothing is compiled or recorded until :meth:`warmup` (or the first requests) runs.
        """
        loaded = loader.inspect_model(hf_model, tokenizer, name, family)
        return cls._build(name, loaded, max_length, max_batch_tokens, prefix_reuse, compile, quantize, cuda_graphs)

    @classmethod
    def _build(
        cls, name, loaded, max_length, max_batch_tokens, prefix_reuse, compile=False, quantize=None, cuda_graphs=True
    ) -> Reranker:
        param = next(loaded.model.parameters())
        dev, dt = param.device, param.dtype
        if int(max_length) < 1:
            raise InvalidInputError(f"max_length must be positive, got {max_length}")
        quantize = check_quantize(quantize, loaded.kind, dev, dt)
        max_length = min(int(max_length), model_limit(loaded))
        budget = int(max_batch_tokens or default_batch_tokens(dev))
        reranker = cls(name, loaded, dev, dt, max_length, budget, prefix_reuse, compile, quantize, cuda_graphs)
        log.info(
            "loaded %s (%s%s, family %s) on %s, %s%s, max_length=%d",
            name,
            loaded.kind,
            ", packed" if reranker.encoder is not None else "",
            loaded.family.name,
            dev,
            str(dt).removeprefix("torch."),
            ", fp8 projections" if reranker.quantize else "",
            max_length,
        )
        return reranker

    @contextlib.contextmanager
    def on_device(self) -> Iterator[None]:
        """Make this engine's GPU the current CUDA device for the block (nothing to do on the CPU)."""
        if self.device.type == "cuda" and self.device.index is not None:
            with torch.cuda.device(self.device):
                yield
        else:
            yield

    def warmup(self) -> None:
        """Score a few tiny requests so compilation happens now, not on a user's first request.

        ``torch.compile`` first specialises on every size it sees and makes a size symbolic once
        it changes, so the warm-up requests vary everything that varies in real traffic: the
        number of pairs (one pair is specialised apart), the query's length and which is longer,
        the query or the longest document. If ``torch.compile`` fails here, fall back to eager mode.
        Then CUDA graphs are recorded (where they run and help); if that fails, batches are launched.
        """
        if self.scorer is None:
            return
        with self.on_device():
            self._warmup()

    def _warmup(self) -> None:
        try:
            for query, docs in WARMUP_REQUESTS:
                self.score(query, docs)
        except Exception as exc:  # compilers can fail on unusual setups; eager always works
            if not self.scorer.compiled:
                raise
            log.warning("torch.compile failed (%s: %s); running in eager mode", type(exc).__name__, exc)
            self.scorer.use_eager()
            self.score("warm up", ["one document"])
        if self.cuda_graphs and not self._graphs_tried and self._graphs_run_here():
            self._graphs_tried = True  # once: a second warm-up does not record again
            graphs = CudaGraphs(self.scorer, self.device, self.prefix_reuse)
            graphs.record(self.max_batch_tokens, self._typical_prefix() + 24)  # keeps what it could record
            self.graphs = graphs if graphs.graphs else None

    def _typical_prefix(self) -> int:
        """The fixed part of a request's prefix (Qwen3-Reranker: its system prompt), for graph shapes."""
        system = getattr(self.builder, "system_ids", None)
        if system is not None:
            return len(system)
        return len(self.builder.prepare(ScoreRequest("q", ["d"])).pairs[0].prefix)

    def graphs_status(self) -> str:
        """One line for the start-up log: whether small batches replay CUDA graphs, and why not."""
        if self.graphs is not None:
            return f"replaying batches of up to {self.graphs.graphs[-1].shape.tokens} tokens"
        if not self.cuda_graphs:
            return "off"
        if not self._graphs_run_here():
            return f"not used on {self.device.type} (they need a Hopper GPU and the Triton attention kernel)"
        return "none recorded (launching was as fast)" if self._graphs_tried else "not recorded yet (no warm-up)"

    def _graphs_run_here(self) -> bool:
        """CUDA, and attention through the Triton kernel (whose launches do not depend on sequence lengths)."""
        s = self.scorer
        if self.device.type != "cuda" or s is None:
            return False
        qkv = torch.empty(1, s.n_q + 2 * s.n_kv, s.head_dim, device=self.device, dtype=self.dtype)
        return attention.uses_triton(qkv[:, : s.n_q], qkv[:, s.n_q : s.n_q + s.n_kv], qkv[:, s.n_q + s.n_kv :])

    # ---- preparing -------------------------------------------------------------------------
    def prepare(self, request: ScoreRequest) -> PreparedRequest:
        """Validate and tokenize; raises :class:`InvalidInputError` on bad input."""
        return self.builder.prepare(request)

    # ---- scoring ---------------------------------------------------------------------------
    def score_pairs(self, pairs: Sequence[Pair]) -> list[float]:
        """Scores of pairs (from any requests): ``result[i]`` for ``pairs[i]``.

        Pairs run in micro-batches of at most ``max_batch_tokens``; nothing is written into them.
        A listwise model runs each request's windows one pass each and needs all of a request's pairs.
        """
        with self.on_device():
            if self.listwise is not None:
                return self.listwise.score(pairs)
            return self._collect(self._launch(pairs), len(pairs))

    def _launch(self, pairs: Sequence[Pair], first: int = 0) -> list[tuple[list[int], torch.Tensor]]:
        """Queue the forward passes; on a GPU they run while the caller goes on (see :meth:`_collect`).

        Each launched pass comes with the positions of its pairs (``first`` + index in ``pairs``).
        """
        position = {id(pair): first + i for i, pair in enumerate(pairs)}
        launched = []
        for batch in plan_batches(pairs, self.max_batch_tokens, self.prefix_reuse):
            for part, probs in self._launch_batch(batch):
                launched.append(([position[id(p)] for p in part], probs))
        return launched

    def _launch_batch(self, batch: list[Pair]) -> list[tuple[list[Pair], torch.Tensor]]:
        try:
            return [(batch, self._forward(batch))]
        except torch.OutOfMemoryError as exc:
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            if len(batch) == 1:
                raise EngineError(
                    f"out of memory scoring one {batch[0].num_tokens}-token pair; lower max_length"
                ) from exc
            log.warning("out of memory on a %d-pair batch; splitting it in two", len(batch))
            half = len(batch) // 2
            return self._launch_batch(batch[:half]) + self._launch_batch(batch[half:])

    @staticmethod
    def _collect(launched: list[tuple[list[int], torch.Tensor]], count: int) -> list[float]:
        """Wait for the queued passes; one score per position."""
        scores: list[float] = [float("nan")] * count
        for positions, probs in launched:
            for position, value in zip(positions, probs.tolist()):
                scores[position] = value
        return scores

    def describe_scores(self) -> dict:
        """What this model's scores mean: family, probability or raw logit, formula (for ``/v1/models``)."""
        return self.family.describe(classifier=self.kind in loader.SEQ_CLS_KINDS.values())

    @torch.inference_mode()
    def _forward(self, batch: list[Pair]) -> torch.Tensor:
        """Raw scores (the head's logits, before the family's activation) for one micro-batch."""
        if self.scorer is not None:
            graph = self.graphs.find(batch) if self.graphs else None
            if graph is not None:
                raw = self.graphs.run(graph, batch)
            else:
                raw = self.scorer(pack(batch, self.device, self.prefix_reuse))
        elif self.encoder is not None:
            return encoders.classifier_score(self.encoder(self.encoder.pack(batch, self.device)))
        else:
            return self._forward_encoder(batch)
        if self.family.round_bf16:  # as the card returns it (ctxl: ``.to(torch.bfloat16).float()``)
            raw = raw.to(torch.bfloat16).float()
        return raw

    def _forward_encoder(self, batch: list[Pair]) -> torch.Tensor:
        width = max(len(p.tokens) for p in batch)
        pad_id = self.tokenizer.pad_token_id or 0
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        types = torch.zeros((len(batch), width), dtype=torch.long)
        for row, pair in enumerate(batch):
            n = len(pair.tokens)
            ids[row, :n] = torch.tensor(pair.tokens)
            mask[row, :n] = 1
            if pair.token_type_ids is not None:
                types[row, :n] = torch.tensor(pair.token_type_ids)
        inputs = {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device)}
        if any(p.token_type_ids is not None for p in batch):
            inputs["token_type_ids"] = types.to(self.device)
        return encoders.classifier_score(self.hf_model(**inputs).logits)

    # ---- convenience -------------------------------------------------------------------------
    def score_requests(self, requests: Sequence[ScoreRequest]) -> list[list[DocScore]]:
        """Score many requests with their pairs sharing micro-batches.

        With :attr:`stream_prepare` (on by default on CUDA) tokenization and the GPU overlap: the
        first slice's pairs are queued as soon as they are tokenized, later ones once
        ``STREAM_TOKENS`` tokens of pairs are ready, and the GPU works on them while the next
        documents are tokenized.
        """
        if not self.stream_prepare or self.scorer is None:
            prepared = [self.prepare(r) for r in requests]
            scores = self.score_pairs([pair for p in prepared for pair in p.pairs])
            return _fold(prepared, scores)
        with self.on_device():
            return self._score_streamed(requests)

    def _score_streamed(self, requests: Sequence[ScoreRequest]) -> list[list[DocScore]]:
        launched: list[tuple[list[int], torch.Tensor]] = []
        ready: list[Pair] = []
        total = 0  # pairs handed over so far (positions in the concatenation of every request's pairs)

        def on_pairs(pairs: list[Pair]) -> None:
            nonlocal total
            ready.extend(pairs)
            # the first slice goes at once (the GPU idles until then); later ones in bigger passes
            if not launched or sum(p.num_tokens for p in ready) >= min(STREAM_TOKENS, self.max_batch_tokens):
                launched.extend(self._launch(ready, total))
                total += len(ready)
                ready.clear()

        for r in requests:  # reject a bad request before any forward pass is queued
            validate(r)
        prepared = [self.builder.prepare(r, on_pairs=on_pairs) for r in requests]
        launched.extend(self._launch(ready, total))
        total += len(ready)
        return _fold(prepared, self._collect(launched, total))

    def score(
        self,
        query: str,
        documents: Sequence[str],
        instruction: str | None = None,
        truncation: str = DEFAULT_TRUNCATION,
    ) -> list[DocScore]:
        """One result per document, in input order."""
        return self.score_requests([ScoreRequest(query, documents, instruction, truncation)])[0]

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        instruction: str | None = None,
        truncation: str = DEFAULT_TRUNCATION,
        top_n: int | None = None,
    ) -> list[DocScore]:
        """Results sorted by score, best first (ties keep input order), cut to ``top_n``."""
        if top_n is not None and top_n < 1:
            raise InvalidInputError(f"top_n must be at least 1, got {top_n}")
        return sort_by_score(self.score(query, documents, instruction, truncation), top_n)


def _fold(prepared: Sequence[PreparedRequest], scores: Sequence[float]) -> list[list[DocScore]]:
    """Split the scores of every request's pairs (concatenated in request order) into per-request results."""
    out, start = [], 0
    for p in prepared:
        out.append(p.results(scores[start : start + len(p.pairs)]))
        start += len(p.pairs)
    return out
