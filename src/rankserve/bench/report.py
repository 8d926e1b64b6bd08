"""Bench output: a rich table on screen, JSON to a file, a PNG chart."""

from __future__ import annotations

import json
import math
from pathlib import Path

from rich.console import Console
from rich.table import Table


def _fmt(value, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def speedups(rows: list[dict]) -> None:
    """Annotate each RankServe row with its speed-up over the recipe row of the same model and workload."""
    base = {(r["model"], r["workload"]): r for r in rows if r["impl"] == "recipe" and "p50_ms" in r}
    for r in rows:
        b = base.get((r["model"], r["workload"]))
        if r["impl"] != "recipe" and b and "p50_ms" in r and r["p50_ms"] > 0:
            r["speedup"] = b["p50_ms"] / r["p50_ms"]
            r["peak_ratio"] = r["peak_gib"] / b["peak_gib"] if b["peak_gib"] else float("nan")


def table(rows: list[dict], title: str) -> Table:
    t = Table(title=title, title_justify="left")
    for col in (
        "model",
        "workload",
        "impl",
        "docs",
        "tokens",
        "p50 ms",
        "p95 ms",
        "pairs/s",
        "tok/s",
        "peak GiB",
        "TFLOP/s",
        "MFU",
        "floor ms",
        "speed-up",
    ):
        t.add_column(col, justify="left" if col in ("model", "workload", "impl") else "right")
    for r in rows:
        if "error" in r:
            t.add_row(r["model"], r["workload"], r["impl"], str(r["docs"]), str(r["tokens"]), r["error"])
            continue
        t.add_row(
            r["model"],
            r["workload"],
            r["impl"],
            str(r["docs"]),
            str(r["tokens"]),
            _fmt(r["p50_ms"], ".1f"),
            _fmt(r["p95_ms"], ".1f"),
            _fmt(r.get("pairs_per_s"), ".0f"),
            _fmt(r.get("tokens_per_s"), ".0f"),
            _fmt(r.get("peak_gib"), ".2f"),
            _fmt(r.get("tflops"), ".0f"),
            _fmt(r.get("mfu"), ".0%"),
            _fmt(r.get("floor_ms"), ".1f"),
            _fmt(r.get("speedup"), ".2f") + "x" if "speedup" in r else "",
        )
    return t


def write_json(path: str | Path, payload: dict) -> None:
    Path(path).write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=str), encoding="utf-8")


def write_png(path: str | Path, rows: list[dict], title: str) -> None:
    """Grouped bars: p50 latency per (model, workload), one bar per implementation."""
    from rankserve.extras import require

    matplotlib = require("matplotlib", "charts")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if "p50_ms" in r]
    groups = list(dict.fromkeys(f"{r['model']}\n{r['workload']}" for r in ok))
    impls = list(dict.fromkeys(r["impl"] for r in ok))
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(groups)), 4))
    width = 0.8 / max(1, len(impls))
    for k, impl in enumerate(impls):
        values = {f"{r['model']}\n{r['workload']}": r["p50_ms"] for r in ok if r["impl"] == impl}
        xs = [i + k * width for i in range(len(groups))]
        ax.bar(xs, [values.get(g, 0) for g in groups], width, label=impl)
    ax.set_xticks([i + width * (len(impls) - 1) / 2 for i in range(len(groups))])
    ax.set_xticklabels(groups, fontsize=7)
    ax.set_ylabel("p50 latency (ms, log)")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(str(path), dpi=120)
    plt.close(fig)


def print_all(console: Console, rows: list[dict], checks: list[dict], title: str) -> None:
    console.print(table(rows, title))
    for r in rows:
        if "vs_full_spearman" in r:
            console.print(
                f"[bold]{r['model']} {r['workload']}[/] {r['impl']} vs full precision: Spearman "
                f"{r['vs_full_spearman']:.4f}, max|Δscore| {r['vs_full_max_abs']:.2e}"
            )
    for c in checks:
        console.print(
            f"[bold]{c['model']}[/] scores on {c['docs']} docs: fp32 engine vs recipe max|Δ| = "
            f"{c['fp32_max_abs']:.2e} (must be ≤ 1e-3); native dtype: fast vs padded attention "
            f"max|Δ| = {c['fast_vs_padded_max_abs']:.2e}, engine vs recipe max|Δ| = "
            f"{c['native_vs_recipe_max_abs']:.2e}, Spearman {c['native_vs_recipe_spearman']:.4f}"
            + (
                f", CUDA graph vs launched max|Δ| = {c['graph_vs_launched_max_abs']:.2e}"
                if "graph_vs_launched_max_abs" in c
                else ""
            )
        )
