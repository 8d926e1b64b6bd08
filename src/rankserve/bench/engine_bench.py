"""Engine benchmark: RankServe's engine vs the official recipe, same model, same GPU, same run."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from pathlib import Path

import torch

from rankserve.bench.recipe import OfficialRecipe
from rankserve.bench.timing import time_call
from rankserve.bench.workloads import Workload
from rankserve.engine import Reranker, ScoreRequest, attention

log = logging.getLogger(__name__)


def load_causal_lm(
    model: str | None, random_weights: str | None, tokenizer_dir: str | None, device: torch.device, dtype: torch.dtype
):
    """A Qwen3ForCausalLM reranker: a real checkpoint, or random weights of a real architecture."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if random_weights:
        path = Path(random_weights)
        config = AutoConfig.from_pretrained(str(path.parent if path.is_file() else path))
        torch.manual_seed(0)
        with torch.device(device):
            hf_model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        name = f"random:{path.parent.name if path.is_file() else path.name}"
        if tokenizer_dir is None:
            raise ValueError("--random-weights needs --tokenizer (e.g. ../shared/qwen3-tokenizer)")
    else:
        hf_model = AutoModelForCausalLM.from_pretrained(model, dtype=dtype).to(device)
        name = model
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir or model)
    return hf_model.eval(), tokenizer, name


def core_params(hf_model) -> int:
    """Parameters that cost FLOPs per token (embedding lookups and the unused lm_head excluded)."""
    skip = {id(p) for m in hf_model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()}
    out = hf_model.get_output_embeddings() if hasattr(hf_model, "get_output_embeddings") else None
    if out is not None:
        skip |= {id(p) for p in out.parameters()}
    return sum(p.numel() for p in hf_model.parameters() if id(p) not in skip)


def work_flops(hf_model, tokens: int, lengths: list[int]) -> float:
    """Model FLOPs of the recipe's work: 2·params per token plus attention (QK and PV; half of it for decoders)."""
    from rankserve.engine.families import DECODER_TYPES

    cfg = hf_model.config
    attn_width = cfg.num_attention_heads * (
        getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    )
    share = 0.5 if cfg.model_type in DECODER_TYPES else 1.0
    attn = sum(2 * 2 * attn_width * n * n * share for n in lengths) * cfg.num_hidden_layers
    return 2.0 * core_params(hf_model) * tokens + attn


def describe_runner(reranker: Reranker) -> str:
    """How the engine runs this model: its kind, and whether it is compiled and replays CUDA graphs."""
    scorer = getattr(reranker, "scorer", None)
    parts = [reranker.kind]
    if scorer is not None and getattr(scorer, "compiled", False):
        parts.append("compiled")
    if reranker.graphs is not None:
        parts.append("graphs")
    return "+".join(parts)


VARIANTS = ("eager", "compile", "nograph", "flash", "fp8")
"""Engine variants: plain PyTorch; ``torch.compile`` with CUDA graphs for small batches where they run (what
``serve`` runs); compiled without CUDA graphs; compiled but with FlashAttention-2 where ``compile`` runs our
Triton attention kernel (Hopper), to compare the two in one run; compiled with FP8 projections (Hopper/Ada)."""


def parse_variants(spec: str, device: torch.device) -> tuple[str, ...]:
    """``--variants``: a comma-separated list of :data:`VARIANTS`, or ``auto`` (what serving runs there)."""
    if spec == "auto":
        return ("compile",) if device.type == "cuda" else ("eager",)
    chosen = tuple(v.strip() for v in spec.split(",") if v.strip())
    if not chosen or any(v not in VARIANTS for v in chosen):
        raise ValueError(
            f"--variants takes a comma-separated list of {', '.join(VARIANTS)} (or auto alone), not {spec!r}"
        )
    return chosen


def _oom_guard(fn: Callable[[], dict]) -> dict:
    try:
        return fn()
    except torch.OutOfMemoryError:
        torch.cuda.empty_cache()
        return {"error": "out of memory"}


def bench_model(
    hf_model,
    tokenizer,
    name: str,
    workloads: list[Workload],
    *,
    baseline: bool,
    repeat: int,
    warmup: int,
    peak_tflops: float,
    variants: tuple[str, ...] = ("eager",),
    progress: Callable[[str], None] = lambda s: None,
    recipe_for: Callable[[Workload], object] | None = None,
    max_length: int | None = None,
    baseline_repeat: int | None = None,
    baseline_warmup: int | None = None,
    scores: dict | None = None,
) -> list[dict]:
    """Time each workload with each engine variant (``eager``, ``compile``) and, optionally, the recipe.

    One engine variant is alive at a time, so each row's peak memory is that variant's own.
    ``recipe_for(workload)`` gives the baseline (default: the Qwen3-Reranker recipe) and ``max_length``
    the engine's (default: the workloads'). With ``scores`` (a dict), each implementation's raw scores
    per workload, taken after its timed runs, are stored in it under ``(impl, workload name)``.
    """
    device = next(hf_model.parameters()).device
    if recipe_for is None:
        recipe_for = lambda w: OfficialRecipe(hf_model, tokenizer, max_length=w.max_length)  # noqa: E731
    max_length = max_length or max(w.max_length for w in workloads)
    info = {}
    for w in workloads:
        recipe = recipe_for(w)
        tokens = recipe.prompt_tokens(w.query, w.documents)
        lengths = [recipe.prompt_tokens(w.query, [d]) for d in w.documents]
        info[w.name] = (tokens, work_flops(hf_model, tokens, lengths))

    def measure(impl: str, w: Workload, fn: Callable[[], object], runs: int = repeat, warm: int = warmup) -> dict:
        progress(f"{name} {w.name} {impl}")
        tokens, flops = info[w.name]
        stats = _oom_guard(lambda: time_call(fn, device, warmup=warm, repeat=runs))
        row = {"model": name, "workload": w.name, "impl": impl, "docs": len(w.documents), "tokens": tokens, **stats}
        if "p50_ms" in stats:
            seconds = stats["p50_ms"] / 1000
            row["pairs_per_s"] = len(w.documents) / seconds
            row["tokens_per_s"] = tokens / seconds
            row["tflops"] = flops / seconds / 1e12
            row["mfu"] = row["tflops"] / peak_tflops if peak_tflops == peak_tflops else float("nan")
            row["floor_ms"] = flops / (peak_tflops * 1e12) * 1000 if peak_tflops == peak_tflops else float("nan")
        return row

    rows = []
    full_scores: dict[str, list[float]] = {}  # workload -> scores of the last full-precision variant
    compare = "fp8" in variants
    if compare and not set(variants) & {"eager", "compile", "flash"}:
        log.warning("--variants fp8 alone: add eager or compile before it to get its rank correlation")
    for variant in variants:  # checked by parse_variants
        impl = "rankserve" if variant == "eager" else f"rankserve+{variant}"
        attention.set_backend("flash" if variant == "flash" else "auto")
        torch._dynamo.reset()  # each variant compiles afresh (and with its kernel), as a new server process would
        reranker = Reranker.from_model(
            hf_model,
            tokenizer,
            name,
            max_length=max_length,
            # fp8 compiles where serving compiles (CUDA); on a CPU it measures the FP8 maths alone
            compile=variant in ("compile", "nograph", "flash") or (variant == "fp8" and device.type == "cuda"),
            quantize="fp8" if variant == "fp8" else None,
            cuda_graphs=variant not in ("eager", "nograph"),  # eager: plain PyTorch, no compile, no graphs
        )
        reranker.warmup()  # as `serve` does at load: compiles, records CUDA graphs where they help
        if reranker.graphs is not None:
            log.info("%s %s: %r", name, variant, reranker.graphs)
        for w in workloads:
            rows.append(measure(impl, w, lambda w=w, r=reranker: r.score(w.query, w.documents, truncation="head")))
            rows[-1]["runner"] = describe_runner(reranker)
            if scores is not None and "p50_ms" in rows[-1]:
                request = ScoreRequest(w.query, w.documents, None, "head", raw_scores=True)
                scores[(impl, w.name)] = [d.score for d in reranker.score_requests([request])[0]]
            if not compare:
                continue
            got = [d.score for d in reranker.score(w.query, w.documents, truncation="head")]
            if variant != "fp8":
                full_scores[w.name] = got
            elif w.name in full_scores:
                rows[-1]["vs_full_spearman"] = _spearman(got, full_scores[w.name])
                rows[-1]["vs_full_max_abs"] = _max_delta(got, full_scores[w.name])
        del reranker
        _free(device)
    attention.set_backend("auto")
    if baseline:
        runs = baseline_repeat or repeat
        warm = warmup if baseline_warmup is None else baseline_warmup
        for w in workloads:
            recipe = recipe_for(w)
            rows.append(measure("recipe", w, lambda w=w, r=recipe: r.scores(w.query, w.documents), runs, warm))
            if scores is not None and "p50_ms" in rows[-1]:
                scores[("recipe", w.name)] = recipe.scores(w.query, w.documents)
            _free(device)
    order = {w.name: i for i, w in enumerate(workloads)}
    return sorted(rows, key=lambda r: order[r["workload"]])


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _max_delta(a: list[float], b: list[float]) -> float:
    return max(abs(x - y) for x, y in zip(a, b, strict=True))


def check_scores(hf_model, tokenizer, name: str, workload: Workload, n_docs: int = 16) -> dict:
    """Score agreement: fast (Triton or flash) vs padded attention (model dtype), then engine vs recipe in fp32.

    The fp32 check converts the model in place (it is the last thing done with it).
    """
    step = max(1, len(workload.documents) // n_docs)
    docs = workload.documents[::step][:n_docs]
    out: dict = {"model": name, "docs": len(docs)}
    reranker = Reranker.from_model(hf_model, tokenizer, name)
    fast = [r.score for r in reranker.score(workload.query, docs)]
    attention.set_backend("sdpa")
    try:
        padded = [r.score for r in reranker.score(workload.query, docs)]
    finally:
        attention.set_backend("auto")
    out["fast_vs_padded_max_abs"] = _max_delta(fast, padded)
    reranker.warmup()  # records CUDA graphs where they run: the same documents one at a time, replayed
    if reranker.graphs is not None:
        replayed = [reranker.score(workload.query, [d])[0].score for d in docs]
        reranker.graphs = None
        launched = [reranker.score(workload.query, [d])[0].score for d in docs]
        out["graph_vs_launched_max_abs"] = _max_delta(replayed, launched)
    recipe_native = OfficialRecipe(hf_model, tokenizer).scores(workload.query, docs)
    out["native_vs_recipe_max_abs"] = _max_delta(fast, recipe_native)
    out["native_vs_recipe_spearman"] = _spearman(fast, recipe_native)
    hf_model.float()
    reranker32 = Reranker.from_model(hf_model, tokenizer, name)
    ours = [r.score for r in reranker32.score(workload.query, docs)]
    theirs = OfficialRecipe(hf_model, tokenizer).scores(workload.query, docs)
    out["fp32_max_abs"] = _max_delta(ours, theirs)
    return out


def check_attention(device: torch.device, dtype: torch.dtype = torch.bfloat16) -> dict[str, float]:
    """Relative error of each fast attention kernel this device runs (``triton``, ``flash``) against
    padded SDPA in fp32, on random packed sequences whose queries see a cached prefix first."""
    import numpy as np

    from rankserve.engine.attention import kernel_for
    from rankserve.engine.layout import SeqLayout
    from rankserve.engine.triton_attention import Segments, work_list

    gen = torch.Generator(device="cpu").manual_seed(0)
    q_lens, extra = np.array([5, 37, 1, 64, 130]), np.array([0, 20, 7, 33, 70])
    k_lens = q_lens + extra

    def ints(a):
        return torch.tensor(np.asarray(a), dtype=torch.int32, device=device)

    cu_q, cu_k = np.concatenate([[0], np.cumsum(q_lens)]), np.concatenate([[0], np.cumsum(k_lens)])
    # keys of sequence i: `extra` visible to all its queries, then `q_lens` causal ones
    segments = Segments(
        ints(cu_q[:-1]), ints(q_lens), ints(cu_k[:-1] + extra), ints(q_lens), ints(cu_k[:-1]), ints(extra),
        *map(ints, work_list(q_lens, q_lens, extra)),
    )  # fmt: skip
    layout = SeqLayout(ints(cu_q), ints(cu_k), int(q_lens.max()), int(k_lens.max()), segments=segments)
    q = torch.randn(int(cu_q[-1]), 8, 64, generator=gen).to(device, dtype)
    k = torch.randn(int(cu_k[-1]), 2, 64, generator=gen).to(device, dtype)
    v = torch.randn(int(cu_k[-1]), 2, 64, generator=gen).to(device, dtype)
    attention.set_backend("sdpa")
    try:
        ref = attention.attention(q.float(), k.float(), v.float(), layout, 0.125)
        errors = {}
        for backend in ("triton", "flash"):
            attention.set_backend(backend)
            if kernel_for(q, layout) == backend:
                fast = attention.attention(q, k, v, layout, 0.125).float()
                errors[backend] = float((fast - ref).norm() / ref.norm())
    finally:
        attention.set_backend("auto")
    return errors


def _spearman(a: list[float], b: list[float]) -> float:
    import numpy as np

    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    if len(a) < 2:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])
