"""The ``rankserve`` command line. Thin: each command parses options and calls a library function.

Commands that belong to a layer live with it (``rankserve.server.cli``, ``rankserve.pipeline.cli``...)
and are registered here.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rankserve.cliutil import fail, print_error
from rankserve.defaults import DEFAULT_MODEL
from rankserve.errors import RankServeError

app = typer.Typer(
    name="rankserve",
    help="Self-hosted reranking for Qwen3-Reranker and cross-encoder models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()


def read_documents(path: Path) -> list[str]:
    """Documents from a .txt file (one per line) or .jsonl (a string, or an object with "text")."""
    if not path.is_file():
        fail(f"docs file not found: {path}")
    try:
        # split on newlines only (a document may contain U+2028); tolerate Windows line ends
        lines = [line.rstrip("\r") for line in path.read_text(encoding="utf-8").split("\n")]
    except UnicodeDecodeError:
        fail(f"{path}: not UTF-8 text; save the file as UTF-8")
    if path.suffix.lower() != ".jsonl":
        return [line for line in lines if line.strip()]
    docs = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            fail(f"{path}:{n}: not valid JSON ({exc.msg})")
        if isinstance(item, dict):
            item = item.get("text", item.get("document", item.get("content")))
        if not isinstance(item, str):
            fail(f'{path}:{n}: expected a string or an object with a "text" field')
        docs.append(item)
    return docs


@app.command()
def rerank(
    query: str = typer.Option(..., "--query", "-q", help="The search query."),
    doc: list[str] = typer.Option(None, "--doc", "-d", help="A candidate document (repeat for several)."),
    docs_file: Path = typer.Option(None, "--docs-file", help=".txt (one per line) or .jsonl documents."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Hugging Face id or local directory."),
    instruction: str = typer.Option(None, help="Task instruction (default: web search)."),
    truncation: str = typer.Option("head_tail", help="head | head_tail | chunks"),
    top_n: int = typer.Option(None, "--top-n", help="Only show the best N."),
    max_length: int = typer.Option(8192, help="Token budget per (query, document) pair."),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N"),
    dtype: str = typer.Option("auto", help="auto | float32 | bfloat16 | float16"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    family: str = typer.Option(None, help="Reranker family recipe for a fine-tune (see docs/models.md)."),
) -> None:
    """Rank documents for a query with a reranker model and print the ranking."""
    docs = list(doc or [])
    if docs_file is not None:
        docs += read_documents(docs_file)
    if not docs:
        fail("no documents: pass --doc TEXT (repeatable) or --docs-file FILE")
    logging.basicConfig(level=logging.WARNING)
    from rankserve.engine import Reranker

    try:
        reranker = Reranker.from_pretrained(model, device=device, dtype=dtype, max_length=max_length, family=family)
        ranked = reranker.rerank(query, docs, instruction=instruction, truncation=truncation, top_n=top_n)
    except RankServeError as exc:
        fail(str(exc))
    if as_json:
        out = {
            "model": model,
            "query": query,
            "results": [
                {
                    "rank": rank,
                    "index": r.index,
                    "score": r.score,
                    "truncated": r.truncated,
                    "prompt_tokens": r.prompt_tokens,
                    "text": docs[r.index],
                }
                for rank, r in enumerate(ranked, 1)
            ],
        }
        typer.echo(json.dumps(out, ensure_ascii=False, indent=2))
        return
    table = Table(title=f"Query: {query}", title_justify="left")
    table.add_column("rank", justify="right")
    table.add_column("score", justify="right")
    table.add_column("index", justify="right")
    table.add_column("document")
    for rank, r in enumerate(ranked, 1):
        text = " ".join(docs[r.index].split())
        preview = text if len(text) <= 80 else text[:77] + "..."
        mark = " [dim](truncated)[/]" if r.truncated else ""
        table.add_row(str(rank), f"{r.score:.4f}", str(r.index), escape(preview) + mark)
    console.print(table)


@app.command("make-tiny-model")
def make_tiny_model(
    path: Path = typer.Argument(..., help="Directory to write the checkpoint to."),
    kind: str = typer.Option("qwen3", help="qwen3 | qwen3-seq-cls | bert"),
    tokenizer: Path = typer.Option(None, help="Use this tokenizer (e.g. the real Qwen3 one) instead of a tiny one."),
) -> None:
    """Write a tiny random-weight reranker checkpoint, to try RankServe offline (scores are meaningless)."""
    from rankserve import synthetic

    if kind == "qwen3":
        synthetic.build_tiny_qwen_reranker(path, tokenizer_dir=tokenizer)
    elif kind == "qwen3-seq-cls":
        causal = synthetic.build_tiny_qwen_reranker(path / "_causal", tokenizer_dir=tokenizer)
        synthetic.convert_to_seq_cls(causal, path)
    elif kind == "bert":
        synthetic.build_tiny_bert_cross_encoder(path)
    else:
        fail(f"unknown kind {kind!r}: use qwen3, qwen3-seq-cls or bert")
    console.print(f"wrote a tiny {kind} reranker to {path}")


from rankserve.server.cli import SERVE_CONTEXT, serve  # noqa: E402

app.command("serve", context_settings=SERVE_CONTEXT)(serve)

from rankserve.pipeline.cli import eval_cmd, index_cmd, search_cmd  # noqa: E402

app.command("eval")(eval_cmd)
app.command("index")(index_cmd)
app.command("search")(search_cmd)

from rankserve.ui.cli import ui  # noqa: E402

app.command("ui")(ui)


from rankserve.bench.cli import bench  # noqa: E402

app.command("bench")(bench)


def main() -> None:
    """The ``rankserve`` command (and ``python -m rankserve``): a missing extra is one line, not a traceback."""
    from rankserve.extras import MissingExtraError

    try:
        app()
    except MissingExtraError as exc:
        print_error(str(exc))
        raise SystemExit(2) from None


if __name__ == "__main__":  # pragma: no cover
    main()
