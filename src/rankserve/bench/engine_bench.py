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
from rankserve.engine import Reranker, attention

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
    """Parameters that cost FLOPs per token (embedding lookup and the unused lm_head excluded)."""
    return sum(p.numel() for n, p in hf_model.named_parameters() if "embed_tokens" not in n and "lm_head" not in n)


def work_flops(hf_model, tokens: int, lengths: list[int]) -> float:
    """Model FLOPs of the recipe's work: 2·params per token plus causal attention (QK and PV)."""
    cfg = hf_model.config
    attn_width = cfg.num_attention_heads * (
        getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    )
    attn = sum(2 * 2 * attn_width * n * n / 2 for n in lengths) * cfg.num_hidden_layers
    return 2.0 * core_params(hf_model) * tokens + attn


VARIANTS = ("eager", "compile", "fp8")
"""Engine variants: plain PyTorch; ``torch.compile``; compiled with FP8 projections (Hopper/Ada)."""


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
) -> list[dict]:
    """Time each workload with each engine variant (``eager``, ``compile``) and, optionally, the recipe.

    One engine variant is alive at a time, so each row's peak memory is that variant's own.
    """
    device = next(hf_model.parameters()).device
    max_length = max(w.max_length for w in workloads)
    info = {}
    for w in workloads:
        recipe = OfficialRecipe(hf_model, tokenizer, max_length=w.max_length)
        tokens = recipe.prompt_tokens(w.query, w.documents)
        lengths = [recipe.prompt_tokens(w.query, [d]) for d in w.documents]
        info[w.name] = (tokens, work_flops(hf_model, tokens, lengths))

    def measure(impl: str, w: Workload, fn: Callable[[], object]) -> dict:
        progress(f"{name} {w.name} {impl}")
        tokens, flops = info[w.name]
        stats = _oom_guard(lambda: time_call(fn, device, warmup=warmup, repeat=repeat))
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
    if compare and not set(variants) & {"eager", "compile"}:
        log.warning("--variants fp8 alone: add eager or compile before it to get its rank correlation")
    for variant in variants:  # checked by parse_variants
        impl = "rankserve" if variant == "eager" else f"rankserve+{variant}"
        reranker = Reranker.from_model(
            hf_model,
            tokenizer,
            name,
            max_length=max_length,
            # fp8 compiles where serving compiles (CUDA); on a CPU it measures the FP8 maths alone
            compile=variant == "compile" or (variant == "fp8" and device.type == "cuda"),
            quantize="fp8" if variant == "fp8" else None,
        )
        for w in workloads:
            rows.append(measure(impl, w, lambda w=w, r=reranker: r.score(w.query, w.documents, truncation="head")))
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
    if baseline:
        for w in workloads:
            recipe = OfficialRecipe(hf_model, tokenizer, max_length=w.max_length)
            rows.append(measure("recipe", w, lambda w=w, r=recipe: r.scores(w.query, w.documents)))
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
    """Score agreement: flash vs padded attention (model dtype), then engine vs recipe in fp32.

    The fp32 check converts the model in place (it is the last thing done with it).
    """
    step = max(1, len(workload.documents) // n_docs)
    docs = workload.documents[::step][:n_docs]
    out: dict = {"model": name, "docs": len(docs)}
    reranker = Reranker.from_model(hf_model, tokenizer, name)
    flash = [r.score for r in reranker.score(workload.query, docs)]
    attention.set_backend("sdpa")
    try:
        padded = [r.score for r in reranker.score(workload.query, docs)]
    finally:
        attention.set_backend("auto")
    out["flash_vs_padded_max_abs"] = _max_delta(flash, padded)
    recipe_native = OfficialRecipe(hf_model, tokenizer).scores(workload.query, docs)
    out["native_vs_recipe_max_abs"] = _max_delta(flash, recipe_native)
    out["native_vs_recipe_spearman"] = _spearman(flash, recipe_native)
    hf_model.float()
    reranker32 = Reranker.from_model(hf_model, tokenizer, name)
    ours = [r.score for r in reranker32.score(workload.query, docs)]
    theirs = OfficialRecipe(hf_model, tokenizer).scores(workload.query, docs)
    out["fp32_max_abs"] = _max_delta(ours, theirs)
    return out


def check_attention(device: torch.device, dtype: torch.dtype = torch.bfloat16) -> float:
    """Relative error of the flash (varlen) path against padded SDPA on random packed sequences
    whose queries are shorter than their keys (documents after a cached prefix)."""
    from rankserve.engine.attention import SeqLayout

    gen = torch.Generator(device="cpu").manual_seed(0)
    q_lens, extra = [5, 37, 1, 64], [0, 20, 7, 33]
    k_lens = [a + b for a, b in zip(q_lens, extra, strict=True)]

    def cu(lens):
        return torch.tensor([0, *torch.tensor(lens).cumsum(0).tolist()], dtype=torch.int32, device=device)

    layout = SeqLayout(cu(q_lens), cu(k_lens), max(q_lens), max(k_lens))
    q = torch.randn(sum(q_lens), 8, 64, generator=gen).to(device, dtype)
    k = torch.randn(sum(k_lens), 2, 64, generator=gen).to(device, dtype)
    v = torch.randn(sum(k_lens), 2, 64, generator=gen).to(device, dtype)
    fast = attention.attention(q, k, v, layout, 0.125).float()
    attention.set_backend("sdpa")
    try:
        ref = attention.attention(q.float(), k.float(), v.float(), layout, 0.125)
    finally:
        attention.set_backend("auto")
    return float((fast - ref).norm() / ref.norm())


def _spearman(a: list[float], b: list[float]) -> float:
    import numpy as np

    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    if len(a) < 2:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])
