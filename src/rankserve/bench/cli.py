"""``rankserve bench``: engine mode (in-process, with the recipe as baseline) or HTTP mode."""

from __future__ import annotations

import datetime
import platform
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from rankserve.cliutil import fail

console = Console(width=200)


def bench(
    model: list[str] = typer.Option(None, "--model", "-m", help="Checkpoint(s) to benchmark (HF id or directory)."),
    random_weights: list[Path] = typer.Option(
        None, "--random-weights", help="config.json of a real architecture; random weights (repeatable)."
    ),
    tokenizer: str = typer.Option(None, help="Tokenizer directory (required with --random-weights)."),
    data: Path = typer.Option(None, help="BEIR folder whose passages make the documents."),
    workloads: str = typer.Option("main", help="main (W100,W20,W8), sizes, long, or names, comma-separated."),
    baseline: bool = typer.Option(False, "--baseline", help="Also time the official recipe in the same run."),
    check: bool = typer.Option(True, "--check/--no-check", help="Compare scores with the recipe in fp32."),
    repeat: int = typer.Option(10, help="Timed repetitions per workload."),
    warmup: int = typer.Option(2, help="Untimed warm-up runs per workload."),
    variants: str = typer.Option(
        "auto",
        help="Engine variants to time, comma-separated: eager, compile (with CUDA graphs for small batches "
        "where they run), nograph (compiled, no CUDA graphs), flash (compiled, FlashAttention-2 "
        "instead of the Triton attention kernel used on Hopper), fp8 (compiled, FP8 projections; "
        "its rank correlation with the full-precision variant timed before it is reported). "
        "auto: what `rankserve serve` runs (compile on CUDA, eager elsewhere).",
    ),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    dtype: str = typer.Option("auto", help="auto | bfloat16 | float32"),
    http: str = typer.Option(None, help="Benchmark a running server at this URL instead of the engine."),
    api_key: str = typer.Option(None, envvar="RANKSERVE_API_KEY", help="Bearer key for --http."),
    rates: str = typer.Option("1,2,4,8,16,32,64", help="--http: open-loop request rates (req/s)."),
    duration: float = typer.Option(10.0, help="--http: seconds per rate."),
    concurrency: int = typer.Option(64, help="--http: clients in the saturation run."),
    docs: int = typer.Option(20, help="--http: documents per request."),
    target_p95_ms: float = typer.Option(800.0, help="--http: the p95 latency the best rate must stay under (ms)."),
    json_out: Path = typer.Option(None, "--json", help="Write all results as JSON here."),
    png_out: Path = typer.Option(None, "--png", help="Write a latency chart here."),
) -> None:
    """Benchmark the engine against the official recipe, or a running server under load."""
    import torch
    import transformers

    from rankserve.bench import report
    from rankserve.bench import workloads as wl
    from rankserve.extras import MissingExtraError, require

    if png_out:
        try:
            require("matplotlib", "--png")
        except MissingExtraError as exc:
            fail(str(exc))
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else "none",
    }
    if http:
        from transformers import AutoTokenizer

        from rankserve.bench import http_bench

        if tokenizer is None:
            fail("--http needs --tokenizer to build documents of known token lengths")
        tok = AutoTokenizer.from_pretrained(tokenizer)
        work = wl.build([f"W{docs}"], tok, data)[0]
        result = http_bench.sweep(
            http.rstrip("/"),
            work,
            [float(r) for r in rates.split(",")],
            duration,
            concurrency,
            api_key,
            target_p95_ms=target_p95_ms,
            progress=lambda s: console.print(f"[dim]{s}[/]"),
        )
        for row in result["open_loop"]:
            console.print(
                f"{row['rate_rps']:>6g} req/s: p50 {row['p50_ms']:.0f} ms, p95 {row['p95_ms']:.0f} ms, "
                f"{row['throughput_rps']:.1f} done/s, {row['errors']} errors"
            )
        sat = result["saturation"]
        console.print(
            f"[bold]best rate with p95 < {result['target_p95_ms']:.0f} ms: {result['best_rate_rps']:g} req/s[/]; "
            f"saturation ({concurrency} clients): {sat['throughput_rps']:.1f} req/s, p95 {sat['p95_ms']:.0f} ms"
        )
        if json_out:
            report.write_json(json_out, {"meta": meta, "http": result})
        return

    from rankserve.bench.engine_bench import bench_model, check_scores, load_causal_lm, parse_variants
    from rankserve.bench.timing import matmul_tflops
    from rankserve.engine.loader import resolve_device, resolve_dtype

    specs = [(m, None) for m in (model or [])] + [(None, str(r)) for r in (random_weights or [])]
    if not specs:
        fail("give --model M or --random-weights CONFIG (repeatable)")
    dev = resolve_device(device)
    try:
        chosen = parse_variants(variants, dev)
    except ValueError as exc:
        fail(str(exc))
    dt = resolve_dtype(dtype, dev)
    peak = matmul_tflops(dev)
    meta["peak_matmul_tflops"] = peak
    if dev.type == "cuda":
        from rankserve.bench.engine_bench import check_attention

        meta["attention_rel_err"] = check_attention(dev)
        for kernel, err in meta["attention_rel_err"].items():
            console.print(f"{kernel} vs padded attention (fp32), relative error: {err:.2e}")
    names = wl.expand(workloads)
    rows: list[dict] = []
    checks: list[dict] = []
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("loading", total=None)
        for m, rw in specs:
            bar.update(task, description=f"loading {m or rw}")
            hf_model, tok, name = load_causal_lm(m, rw, tokenizer, dev, dt)
            work = wl.build(names, tok, data)
            rows += bench_model(
                hf_model,
                tok,
                name,
                work,
                baseline=baseline,
                repeat=repeat,
                warmup=warmup,
                peak_tflops=peak,
                variants=chosen,
                progress=lambda s: bar.update(task, description=s),
            )
            if check:
                bar.update(task, description=f"{name}: checking scores")
                checks.append(check_scores(hf_model, tok, name, work[0]))
            del hf_model
            if dev.type == "cuda":
                torch.cuda.empty_cache()
    report.speedups(rows)
    title = f"rankserve bench — {meta['gpu']}, torch {meta['torch']}, transformers {meta['transformers']}"
    report.print_all(console, rows, checks, title)
    if json_out:
        report.write_json(json_out, {"meta": meta, "rows": rows, "checks": checks})
    if png_out:
        report.write_png(png_out, rows, title)
