"""Command implementations for ``rankserve eval``, ``rankserve index`` and ``rankserve search``.

Plain functions with typer annotations; ``rankserve.cli`` registers them on the main app. Heavy
imports (torch, sentence-transformers) happen inside the commands so ``rankserve --help``
stays fast.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rankserve.cliutil import fail

console = Console(stderr=True, soft_wrap=True)  # messages with long paths stay on one line
out_console = Console()


def _need(*modules: str, feature: str) -> None:
    """Fail before any work (model loading included) when an optional package is missing."""
    from rankserve.extras import MissingExtraError, require

    try:
        for module in modules:
            require(module, feature)
    except MissingExtraError as exc:
        fail(str(exc))


def _unescape(prompt: str | None) -> str | None:
    """Shells make a literal newline awkward to type; Qwen3-Embedding's prompt needs one."""
    return None if prompt is None else prompt.replace("\\n", "\n")


def _progress(enabled: bool):
    from tqdm import tqdm

    def wrap(items: Iterable, desc: str) -> Iterable:
        return tqdm(items, desc=desc, unit="q", disable=not enabled, file=sys.stderr, leave=False)

    return wrap


def _scorer(model: str | None, server: str | None, api_key: str | None, instruction: str | None, **load: Any):
    if model and server:
        fail("give either --model or --server, not both")
    from rankserve.pipeline.evaluate import EngineScorer, ServerScorer

    if server:
        return ServerScorer(server, api_key=api_key, instruction=instruction)
    if model:
        console.print(f"loading reranker [bold]{escape(model)}[/] ...")
        return EngineScorer.from_model(model, instruction=instruction, **load)
    return None


def eval_cmd(
    data: Path = typer.Option(
        ...,
        "--data",
        help="BEIR directory (corpus.jsonl, queries.jsonl, qrels/) or MTEB-style reranking .jsonl.",
    ),
    first_stage: str = typer.Option("bm25", "--first-stage", help="bm25 | dense | hybrid | run:FILE (TREC run)."),
    model: str | None = typer.Option(None, "--model", help="Rerank in-process with this model (HF id or path)."),
    server: str | None = typer.Option(None, "--server", help="Rerank through a running server, e.g. http://host:8000."),
    api_key: str | None = typer.Option(None, "--api-key", envvar="RANKSERVE_API_KEY", help="Bearer key for --server."),
    top_k: int = typer.Option(100, "--top-k", min=1, help="Rerank this many first-stage candidates per query."),
    max_queries: int | None = typer.Option(None, "--max-queries", min=1, help="Only the first N judged queries."),
    split: str = typer.Option("test", "--split", help="BEIR qrels split (qrels/SPLIT.tsv)."),
    relevance_level: int = typer.Option(
        1, "--relevance-level", min=1, help="Grade at which MRR/Recall/MAP count a hit (TREC DL uses 2)."
    ),
    instruction: str | None = typer.Option(None, "--instruction", help="Reranker instruction (task description)."),
    dense_model: str | None = typer.Option(
        None, "--dense-model", help="sentence-transformers model for dense/hybrid (default all-MiniLM-L6-v2)."
    ),
    device: str = typer.Option("auto", "--device", help="Engine device for --model."),
    dtype: str = typer.Option("auto", "--dtype", help="Engine dtype for --model."),
    max_length: int = typer.Option(8192, "--max-length", help="Engine token budget per pair for --model."),
    out: Path = typer.Option(Path("rankserve-eval"), "--out", help="Directory for report.json/.md, chart.png, runs."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Measure NDCG/MRR/Recall/MAP of a first stage, then of the same candidates reranked."""
    from rankserve.pipeline.data import load_dataset, write_run
    from rankserve.pipeline.evaluate import run_eval
    from rankserve.pipeline.report import render_table, write_chart, write_json, write_markdown

    _need("bm25s", "ranx", "matplotlib", feature="rankserve eval")
    try:
        dataset = load_dataset(data, split).subset(max_queries)
        if not dataset.queries:
            fail(f"{data}: no judged queries found")
        scorer = _scorer(model, server, api_key, instruction, device=device, dtype=dtype, max_length=max_length)
        report, first_run, reranked_run = run_eval(
            dataset,
            first_stage=first_stage,
            scorer=scorer,
            top_k=top_k,
            relevance_level=relevance_level,
            dense_model=dense_model,
            progress=_progress(progress),
        )
    except (ValueError, FileNotFoundError, ImportError) as exc:
        fail(str(exc))
    render_table(report, out_console)
    out.mkdir(parents=True, exist_ok=True)
    files = [write_json(report, out / "report.json"), write_markdown(report, out / "report.md")]
    files.append(write_chart(report, out / "chart.png"))
    write_run(first_run, out / "first_stage.trec", tag=first_stage.split(":")[0])
    files.append(out / "first_stage.trec")
    if reranked_run is not None:
        write_run(reranked_run, out / "reranked.trec", tag="rankserve")
        files.append(out / "reranked.trec")
    else:
        console.print("no --model or --server given: first stage only")
    console.print("wrote " + ", ".join(str(f) for f in files))


def index_cmd(
    path: Path = typer.Argument(..., help="A file or folder of .txt, .md, .html, .pdf files."),
    out: Path = typer.Option(..., "--out", help="Index directory to write."),
    chunk_size: int = typer.Option(1000, "--chunk-size", min=50, help="Maximum characters per passage."),
    overlap: int = typer.Option(200, "--overlap", min=0, help="Characters shared by consecutive passages."),
    dense: bool = typer.Option(False, "--dense", help="Also store embeddings: enables dense/hybrid search."),
    dense_model: str | None = typer.Option(
        None, "--dense-model", help="sentence-transformers model for --dense (default all-MiniLM-L6-v2)."
    ),
    query_prompt: str | None = typer.Option(
        None,
        "--query-prompt",
        help="Prepend this to queries instead of the model's own query prompt ('' for none; \\n = newline).",
    ),
    document_prompt: str | None = typer.Option(
        None,
        "--document-prompt",
        help="Prepend this to documents instead of the model's own document prompt ('' for none; \\n = newline).",
    ),
    vector_index: str = typer.Option(
        "auto", "--vector-index", help="auto | exact | flat | ivf (auto: exact numpy below 200k passages, else IVF)."
    ),
) -> None:
    """Chunk documents (source file and position kept) and build a BM25 (+ optional dense) index."""
    from rankserve.pipeline.index import build_index
    from rankserve.pipeline.retrieval import DEFAULT_DENSE_MODEL

    _need("bm25s", feature="rankserve index")
    if overlap >= chunk_size:
        fail(f"--overlap ({overlap}) must be smaller than --chunk-size ({chunk_size})")
    embed_with = (dense_model or DEFAULT_DENSE_MODEL) if dense or dense_model else None
    if embed_with is None and (query_prompt is not None or document_prompt is not None or vector_index != "auto"):
        fail("--query-prompt, --document-prompt and --vector-index apply to embeddings: add --dense or --dense-model")
    try:
        meta = build_index(
            path,
            out,
            chunk_size,
            overlap,
            embed_with,
            _unescape(query_prompt),
            _unescape(document_prompt),
            vector_index,
        )
    except (ValueError, FileNotFoundError, ImportError) as exc:
        fail(str(exc))
    errors = [f for f in meta["files"] if "error" in f]
    for f in errors:
        console.print(f"[yellow]skipped[/] {escape(f['source'])}: {escape(f['error'])}")
    console.print(f"indexed {meta['chunks']} passages from {len(meta['files']) - len(errors)} files into {out}")
    if "dense_prompts" in meta:
        p = meta["dense_prompts"]
        console.print(
            f"embeddings: prompts from {p['source']} (query {p['query']!r}, document {p['document']!r}); "
            f"vector index {meta['vector_index']['kind']}",
            highlight=False,
            markup=False,
        )


def search_cmd(
    index: Path = typer.Argument(..., help="Index directory from `rankserve index`."),
    question: str = typer.Argument(..., help="The question."),
    server: str | None = typer.Option(None, "--server", help="Rerank through a running server."),
    model: str | None = typer.Option(None, "--model", help="Rerank in-process with this model."),
    api_key: str | None = typer.Option(None, "--api-key", envvar="RANKSERVE_API_KEY", help="Bearer key for --server."),
    top_k: int = typer.Option(100, "--top-k", min=1, help="First-stage candidates to rerank."),
    top_n: int = typer.Option(5, "--top-n", min=1, help="Passages to show."),
    first_stage: str = typer.Option("auto", "--first-stage", help="auto | bm25 | dense | hybrid."),
    instruction: str | None = typer.Option(None, "--instruction", help="Reranker instruction."),
    timeout: float = typer.Option(10.0, "--timeout", help="Seconds before falling back to first-stage order."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    vector_index: str | None = typer.Option(
        None, "--vector-index", help="Override the index's vector search: exact | flat | ivf."
    ),
) -> None:
    """Find the passages that answer a question: first stage top-k, reranked, best top-n."""
    from rankserve.client import RerankClient
    from rankserve.pipeline.search import load_index, search

    if model and server:
        fail("give either --model or --server, not both")
    _need("bm25s", feature="rankserve search")
    logging.getLogger("rankserve.client").setLevel(logging.ERROR)  # the fallback is reported below
    reranker: Any = model
    if server:
        reranker = RerankClient(server, api_key=api_key, timeout=timeout)
    try:
        hits = search(load_index(index, vector_index), question, top_k, top_n, reranker, instruction, first_stage)
    except (ValueError, FileNotFoundError, ImportError) as exc:
        fail(str(exc))
    if as_json:
        out_console.print_json(json.dumps(hits, ensure_ascii=False))
        return
    if hits and hits[0]["fallback"]:
        console.print(f"[yellow]reranker unavailable, first-stage order:[/] {escape(hits[0]['fallback_reason'])}")
    table = Table(show_lines=True)
    for col in ("#", "source", "first stage", "rerank", "passage"):
        table.add_column(col, overflow="fold")
    for h in hits:
        where = h["source"] + (f" p.{h['page']}" if h["page"] else "") + f" [{h['start']}:{h['end']}]"
        rerank = "-" if h["rerank_score"] is None else f"{h['rerank_score']:.4f}"
        first = f"#{h['first_stage_rank']} {h['first_stage_score']:.3f}"
        table.add_row(str(h["rank"]), escape(where), first, rerank, escape(h["text"][:400]))
    out_console.print(table)
