"""Human and machine outputs of `rankserve eval`: rich table, JSON, Markdown, PNG chart.

The JSON holds everything (per-query values included) so runs can be compared later; the
Markdown is what gets pasted into a pull request or a go-live review; the chart is for slides.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from rankserve.pipeline.evaluate import KEY_METRIC, EvalReport

_LABELS = {
    "ndcg": "NDCG",
    "mrr": "MRR",
    "recall": "Recall",
    "map": "MAP",
    "precision": "P",
}


def label(metric: str) -> str:
    """``ndcg@10`` → ``NDCG@10``."""
    name, _, k = metric.partition("@")
    return _LABELS.get(name, name.upper()) + (f"@{k}" if k else "")


def _fmt_lift(abs_: float, rel: float | None) -> str:
    rel_s = f" ({rel:+.1%})" if rel is not None else ""
    return f"{abs_:+.4f}{rel_s}"


def _key(report: EvalReport) -> str:
    return KEY_METRIC if KEY_METRIC in report.metrics else report.metrics[0]


def render_table(report: EvalReport, console: Console | None = None, examples: int = 5) -> None:
    """Print first stage vs reranked with the lift, then the queries that moved most."""
    console = console or Console()
    ds = report.dataset
    console.print(f"[bold]{ds['name']}[/]: {ds['queries']} queries, {ds['documents']} documents")
    table = Table()
    table.add_column("metric")
    table.add_column(report.first_stage, justify="right")
    if report.reranked is not None:
        table.add_column(f"reranked top-{report.top_k}", justify="right")
        table.add_column("lift", justify="right")
    lift = report.lift
    for m in report.metrics:
        row = [label(m), f"{report.first[m]:.4f}"]
        if report.reranked is not None:
            style = "green" if lift[m]["abs"] > 1e-9 else "red" if lift[m]["abs"] < -1e-9 else ""
            change = _fmt_lift(lift[m]["abs"], lift[m]["rel"])
            row += [f"{report.reranked[m]:.4f}", f"[{style}]{change}[/]" if style else change]
        table.add_row(*row)
    console.print(table)
    if report.reranked is None:
        return
    key = _key(report)
    outcome = report.outcomes(key)
    console.print(
        f"Per query ({label(key)}): [green]{len(outcome['wins'])} wins[/], "
        f"[red]{len(outcome['losses'])} losses[/], {len(outcome['ties'])} ties"
    )
    for qid, delta in _movers(report, key)[:examples]:
        console.print(f"  {delta:+.3f}  {qid}  {report.per_query[qid]['query'][:70]}")


def _movers(report: EvalReport, key: str) -> list[tuple[str, float]]:
    """Queries by absolute change on ``key``, largest first (query id breaks ties)."""
    deltas = [(q, r["reranked"][key] - r["first"][key]) for q, r in report.per_query.items()]
    return sorted((d for d in deltas if abs(d[1]) > 1e-9), key=lambda d: (-abs(d[1]), d[0]))


def write_json(report: EvalReport, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def to_markdown(report: EvalReport, examples: int = 10) -> str:
    ds = report.dataset
    lines = [
        f"# Reranking evaluation: {ds['name']}",
        "",
        f"- Data: `{ds['source']}` ({ds['format']}), {ds['queries']} queries, {ds['documents']} documents",
        f"- First stage: `{report.first_stage}`",
        f"- Reranker: `{report.reranker}` on the top {report.top_k}" if report.reranker else "- Reranker: none",
        f"- Relevance level for binary metrics: {report.relevance_level}; metrics by `{report.backend}`",
        f"- Created: {report.created}",
        "",
    ]
    if report.reranked is None:
        lines += ["| Metric | First stage |", "|---|---:|"]
        lines += [f"| {label(m)} | {report.first[m]:.4f} |" for m in report.metrics]
        return "\n".join(lines) + "\n"
    lines += ["| Metric | First stage | Reranked | Lift |", "|---|---:|---:|---:|"]
    for m in report.metrics:
        lift = report.lift[m]
        change = _fmt_lift(lift["abs"], lift["rel"])
        lines.append(f"| {label(m)} | {report.first[m]:.4f} | {report.reranked[m]:.4f} | {change} |")
    key = _key(report)
    outcome = report.outcomes(key)
    lines += [
        "",
        f"Per query on {label(key)}: **{len(outcome['wins'])} wins**, **{len(outcome['losses'])} losses**, "
        f"{len(outcome['ties'])} ties.",
        "",
    ]
    movers = _movers(report, key)
    if movers:
        lines += [f"| Query id | Query | {label(key)} before | after | change |", "|---|---|---:|---:|---:|"]
        for qid, delta in movers[:examples]:
            row = report.per_query[qid]
            query = row["query"].replace("|", "\\|")[:80]
            lines.append(f"| {qid} | {query} | {row['first'][key]:.3f} | {row['reranked'][key]:.3f} | {delta:+.3f} |")
    t = report.timing
    lines += [
        "",
        f"Timing: first stage {t.get('first_stage_s', 0)} s, rerank {t.get('rerank_s', 0)} s "
        f"({t.get('documents_reranked', 0)} documents, {t.get('documents_per_s', 0)} docs/s).",
    ]
    return "\n".join(lines) + "\n"


def write_markdown(report: EvalReport, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(to_markdown(report), encoding="utf-8")
    return path


def write_chart(report: EvalReport, path: str | Path) -> Path:
    """Grouped bars per metric: first stage vs reranked. Uses the Agg backend (no display)."""
    from rankserve.extras import require

    matplotlib = require("matplotlib", "charts")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    names = [label(m) for m in report.metrics]
    x = range(len(names))
    width = 0.38 if report.reranked is not None else 0.6
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(names)), 4.0), dpi=120)
    first = [report.first[m] for m in report.metrics]
    bars = [ax.bar([i - width / 2 if report.reranked else i for i in x], first, width, label=report.first_stage)]
    if report.reranked is not None:
        reranked = [report.reranked[m] for m in report.metrics]
        bars.append(ax.bar([i + width / 2 for i in x], reranked, width, label=f"reranked top-{report.top_k}"))
    for group in bars:
        ax.bar_label(group, fmt="%.3f", fontsize=7, padding=2)
    ax.set_xticks(list(x), names)
    ax.set_ylim(0, 1.22)  # headroom for the value labels and the legend
    ax.set_ylabel("score")
    ax.set_title(f"{report.dataset['name']} ({report.dataset['queries']} queries)")
    ax.legend(loc="upper left", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
