"""Per-family benchmark: each reranker family served by RankServe against its own official code.

``python -m rankserve.bench.families`` builds every family with random weights of its real architecture
(:mod:`rankserve.bench.configs`), hands the model to the engine under the checkpoint's name (which is how
RankServe recognises the family and picks its runner: packed engine, transformers forward or encoder)
and times, in the same process and on the same GPU, the engine as ``serve`` runs it (``compile`` on
CUDA) and the family's model-card code (:mod:`rankserve.bench.family_recipes`) on W100 and W20. It then
compares their raw scores (Spearman rank correlation and max |Δ|, in the run's dtype: bf16 on a GPU)
and prints one short table last. A family that fails is reported and the others go on; the exit code
is 1 if any failed.

``--smoke`` shrinks every architecture to two tiny layers (vocabularies kept where they fit) and the
workloads to a few short documents: the whole path in a minute on a CPU, for tests.

This module imports no web framework (the GPU host has none).
"""

from __future__ import annotations

import datetime
import gc
import json
import math
import platform
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

CONFIGS = Path(__file__).parent / "configs"


@dataclass(frozen=True)
class FamilyBench:
    """One benchmarked checkpoint: its config file, the name the engine sees, tokenizer and baseline."""

    key: str  # configs/<key>.json
    checkpoint: str  # the Hugging Face id: family recognition reads it
    tokenizer: str  # "qwen" (the real Qwen3 tokenizer) or a trained one (family_tokenizers.TRAINERS)
    recipe: str  # family_recipes.RECIPES key
    max_length: int | None = None  # the engine's, where the card caps the pair (encoders: 512)
    baseline_repeat: int = 3  # the official code is slow: fewer timed runs


CTXL = "ctxl-rerank-v2-instruct-multilingual"
BENCHES = [
    FamilyBench("mxbai-rerank-base-v2", "mixedbread-ai/mxbai-rerank-base-v2", "qwen", "mxbai"),
    FamilyBench("mxbai-rerank-large-v2", "mixedbread-ai/mxbai-rerank-large-v2", "qwen", "mxbai"),
    FamilyBench("bge-reranker-v2-gemma", "BAAI/bge-reranker-v2-gemma", "gemma", "bge-gemma"),
    FamilyBench("zerank-2", "zeroentropy/zerank-2", "qwen", "zerank"),
    FamilyBench(CTXL + "-1b", "ContextualAI/" + CTXL + "-1b", "qwen", "ctxl"),
    FamilyBench(CTXL + "-2b", "ContextualAI/" + CTXL + "-2b", "qwen", "ctxl"),
    FamilyBench(CTXL + "-6b", "ContextualAI/" + CTXL + "-6b", "qwen", "ctxl"),
    FamilyBench("bge-reranker-v2-m3", "BAAI/bge-reranker-v2-m3", "xlm-roberta", "cross-encoder", max_length=512),
    FamilyBench(
        "gte-reranker-modernbert-base",
        "Alibaba-NLP/gte-reranker-modernbert-base",
        "modernbert",
        "cross-encoder",
        max_length=512,
    ),  # fmt: skip
]
BY_KEY = {b.key: b for b in BENCHES}

SMOKE_SHAPES = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
    head_dim=16,
)  # fmt: skip
SMOKE_WORKLOADS = "W4-64,W3-48"
"""Tiny workloads for ``--smoke``: 4 documents of 32..64 tokens, 3 of 32..48."""


def load_config(key: str, smoke: bool = False):
    """The architecture of ``configs/<key>.json`` as a transformers config (tiny with ``smoke``)."""
    from transformers import AutoConfig

    fields = json.loads((CONFIGS / f"{key}.json").read_text(encoding="utf-8"))
    if smoke:
        shapes = dict(SMOKE_SHAPES)
        if fields.get("num_key_value_heads") == 1:
            shapes["num_key_value_heads"] = 1  # Gemma-2B's multi-query attention stays multi-query
        if fields["model_type"] == "modernbert":
            shapes["num_hidden_layers"] = 3  # one global attention layer and two local ones
        for name, value in shapes.items():
            if name in fields or name in ("num_hidden_layers", "num_attention_heads"):
                fields[name] = value
    return AutoConfig.for_model(fields.pop("model_type"), **fields)


def match_special_ids(config, tokenizer) -> None:
    """Make the config's special-token ids the tokenizer's (a trained tokenizer numbers them its own way)."""
    for name in ("pad_token_id", "bos_token_id", "eos_token_id", "cls_token_id", "sep_token_id"):
        value = getattr(tokenizer, name, None)
        if value is not None and getattr(config, name, None) not in (None, value):
            setattr(config, name, value)


def build_model(config, device, dtype, seed: int = 0):
    """Random weights of ``config`` on ``device`` (initialised there: seconds even for 4B parameters)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    causal = any(a.endswith("ForCausalLM") for a in config.architectures or [])
    cls = AutoModelForCausalLM if causal else AutoModelForSequenceClassification
    torch.manual_seed(seed)
    with torch.device(device):
        model = cls.from_config(config, dtype=dtype, attn_implementation="sdpa")
    return model.eval()


class Tokenizers:
    """Each tokenizer once per run: the real Qwen3 one, or one trained on the benchmark's passages."""

    def __init__(self, qwen_dir: str | None, data) -> None:
        self.qwen_dir = qwen_dir
        self.data = data
        self.cache: dict[str, object] = {}

    def get(self, kind: str):
        if kind not in self.cache:
            if kind == "qwen":
                from transformers import AutoTokenizer

                if not self.qwen_dir:
                    raise ValueError("the Qwen2/Qwen3 families need --qwen-tokenizer (e.g. ../shared/qwen3-tokenizer)")
                self.cache[kind] = AutoTokenizer.from_pretrained(self.qwen_dir)
            else:
                from rankserve.bench.family_tokenizers import TRAINERS

                self.cache[kind] = TRAINERS[kind](self.data)
        return self.cache[kind]


def spearman(a: list[float], b: list[float]) -> float:
    from rankserve.bench.engine_bench import _spearman

    return _spearman(a, b)


def agreement(ours: list[float] | None, theirs: list[float] | None) -> dict:
    """Rank correlation and largest difference of two raw-score lists, with the recipe's spread for scale."""
    if not ours or not theirs:
        return {}
    return {
        "spearman": spearman(ours, theirs),
        "max_abs": max(abs(x - y) for x, y in zip(ours, theirs, strict=True)),
        "spread": max(theirs) - min(theirs),
    }


def bench_family(spec: FamilyBench, tokenizers: Tokenizers, workload_names, data, device, dtype, *, smoke,
                 variants, repeat, warmup, peak, progress) -> list[dict]:  # fmt: skip
    """Time one family (engine variants and the official code) and compare their scores."""
    from rankserve.bench import workloads as wl
    from rankserve.bench.engine_bench import bench_model
    from rankserve.bench.family_recipes import RECIPES

    tok = tokenizers.get(spec.tokenizer)
    config = load_config(spec.key, smoke)
    match_special_ids(config, tok)
    if max(tok.all_special_ids + [len(tok) - 1]) >= config.vocab_size:
        raise ValueError(f"{spec.key}: the tokenizer's ids go past the config's vocabulary ({config.vocab_size})")
    model = build_model(config, device, dtype)
    params = sum(p.numel() for p in model.parameters())
    work = wl.build(workload_names, tok, data)
    recipe_cls = RECIPES[spec.recipe]
    scores: dict = {}
    rows = bench_model(
        model, tok, spec.checkpoint, work, baseline=True, repeat=repeat, warmup=warmup, peak_tflops=peak,
        variants=variants, progress=progress, recipe_for=lambda w: recipe_cls(model, tok), max_length=spec.max_length,
        baseline_repeat=max(1, min(repeat, spec.baseline_repeat)), baseline_warmup=1, scores=scores,
    )  # fmt: skip
    for r in rows:
        r.update(family=spec.key, params=params)
        if r["impl"] != "recipe":
            r.update(agreement(scores.get((r["impl"], r["workload"])), scores.get(("recipe", r["workload"]))))
    return rows


def summary(rows: list[dict], title: str) -> Table:
    """The short table: one line per family and workload, the served engine against the official code."""
    t = Table(title=title, title_justify="left")
    left = ("family", "runner", "workload", "agreement (raw scores)")
    for col in ("family", "runner", "params", "workload", "tokens", "ours p50 ms", "official p50 ms", "speed-up",
                "agreement (raw scores)"):  # fmt: skip
        t.add_column(col, justify="left" if col in left else "right")
    base = {(r["family"], r["workload"]): r for r in rows if r.get("impl") == "recipe"}
    for r in rows:
        if r.get("impl") == "recipe":
            continue
        if "failed" in r:
            t.add_row(r["family"], "-", "-", "-", "-", "-", "-", "-", f"FAILED: {r['failed']}")
            continue
        b = base.get((r["family"], r["workload"]), {})
        agree = (
            f"ρ {r['spearman']:.3f}, max|Δ| {r['max_abs']:.2g} (spread {r['spread']:.2g})" if "spearman" in r else "-"
        )
        t.add_row(
            r["family"], r.get("runner", "-"), _millions(r["params"]), r["workload"], str(r["tokens"]),
            _ms(r.get("p50_ms"), r.get("error")), _ms(b.get("p50_ms"), b.get("error")),
            f"{r['speedup']:.2f}x" if "speedup" in r else "-", agree,
        )  # fmt: skip
    return t


def _ms(value, error) -> str:
    if error:
        return error
    return "-" if value is None or math.isnan(value) else f"{value:.1f}"


def _millions(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"


def main(
    families: str = typer.Option("all", help=f"Comma-separated, or all: {', '.join(BY_KEY)}."),
    qwen_tokenizer: str = typer.Option(None, help="The real Qwen3 tokenizer (Qwen2/Qwen3 families)."),
    data: Path = typer.Option(None, help="BEIR folder (TREC DL19): documents, and the trained tokenizers' text."),
    workloads: str = typer.Option("W100,W20", help="Workloads (see rankserve bench --workloads)."),
    variants: str = typer.Option("auto", help="Engine variants (auto: compile on CUDA, eager elsewhere)."),
    repeat: int = typer.Option(5, help="Timed runs of the engine per workload."),
    warmup: int = typer.Option(2, help="Untimed runs of the engine per workload."),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    dtype: str = typer.Option("auto", help="auto (bf16 on a GPU, fp32 on a CPU) | bfloat16 | float32"),
    smoke: bool = typer.Option(False, "--smoke", help="Tiny shapes and workloads: the whole path, fast, on a CPU."),
    budget_s: float = typer.Option(450.0, help="Skip the families left once this many seconds have passed."),
    json_out: Path = typer.Option(None, "--json", help="Write every row as JSON here."),
) -> None:
    """Benchmark every reranker family: RankServe against the family's official code, in one run."""
    import torch
    import transformers

    from rankserve.bench import report
    from rankserve.bench import workloads as wl
    from rankserve.bench.engine_bench import parse_variants
    from rankserve.bench.timing import matmul_tflops
    from rankserve.engine.loader import resolve_device, resolve_dtype

    console = Console(width=220)
    chosen = list(BY_KEY) if families == "all" else [f.strip() for f in families.split(",") if f.strip()]
    unknown = [f for f in chosen if f not in BY_KEY]
    if unknown:
        console.print(f"[red]unknown families {unknown}: choose from {', '.join(BY_KEY)}[/]")
        raise typer.Exit(2)
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    names = wl.expand(SMOKE_WORKLOADS if smoke and workloads == "W100,W20" else workloads)
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "gpu": torch.cuda.get_device_name() if dev.type == "cuda" else "none",
        "dtype": str(dt).removeprefix("torch."),
        "smoke": smoke,
    }
    peak = matmul_tflops(dev)
    tokenizers = Tokenizers(qwen_tokenizer, data)
    rows: list[dict] = []
    start = time.perf_counter()
    for key in chosen:
        spec = BY_KEY[key]
        if time.perf_counter() - start > budget_s:
            rows.append({"family": key, "failed": f"skipped: the {budget_s:.0f} s budget was spent"})
            continue
        began = time.perf_counter()
        console.print(f"[bold]{key}[/] ({spec.checkpoint})")
        try:
            got = bench_family(
                spec, tokenizers, names, data, dev, dt, smoke=smoke, variants=parse_variants(variants, dev),
                repeat=repeat, warmup=warmup, peak=peak, progress=lambda s: console.print(f"  [dim]{s}[/]"),
            )  # fmt: skip
            report.speedups(got)
            rows += got
        except Exception as exc:  # noqa: BLE001 - one family's failure must not cost the others their numbers
            console.print(f"[red]{key} failed:[/]\n{traceback.format_exc(limit=6)}")
            rows.append({"family": key, "failed": f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"})
        gc.collect()
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        console.print(f"  [dim]{key}: {time.perf_counter() - began:.0f} s[/]")
    timed = [r for r in rows if "failed" not in r]
    title = (
        f"per-family bench — {meta['gpu']}, {meta['dtype']}, torch {meta['torch']}, transformers {meta['transformers']}"
    )
    if timed:
        console.print(report.table(timed, title))
    console.print(summary(rows, title + f" — {time.perf_counter() - start:.0f} s in all"))
    if json_out:
        report.write_json(json_out, {"meta": meta, "rows": rows})
    if any("failed" in r for r in rows):
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(main)
