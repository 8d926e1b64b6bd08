"""`rankserve eval` end to end: DL19 subset with BM25 + the tiny engine model, MTEB-style JSONL,
and a TREC run file as first stage. A few queries only (2 shared CPU cores)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rankserve.cli import app
from rankserve.pipeline.data import load_dataset
from rankserve.pipeline.evaluate import EngineScorer, run_eval

QUERIES = 3
# BM25 on the first 3 DL19-subset queries (k1=0.9, b=0.4, CJK-aware tokenizer), relevance >= 1.
BM25_DL19_FIRST3 = {
    "ndcg@1": 0.388889,
    "ndcg@3": 0.536311,
    "ndcg@10": 0.486990,
    "mrr@10": 1.0,
    "recall@10": 0.136589,
    "recall@100": 0.781698,
    "map": 0.698100,
}


@pytest.fixture(scope="module")
def dl19(shared_dir: Path) -> Path:
    path = shared_dir / "data" / "trec-dl19-subset"
    if not (path / "corpus.jsonl").exists():
        pytest.skip(f"{path} is not present")
    return path


def test_eval_dl19_bm25_plus_tiny_model(dl19: Path, tiny_qwen_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    args = ["eval", "--data", str(dl19), "--model", str(tiny_qwen_dir), "--device", "cpu"]
    args += ["--max-queries", str(QUERIES), "--top-k", "10", "--out", str(out), "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "NDCG@10" in result.output and "lift" in result.output and "Per query" in result.output

    report = json.loads((out / "report.json").read_text())
    assert report["dataset"]["queries"] == QUERIES and report["top_k"] == 10
    assert report["first"] == pytest.approx(BM25_DL19_FIRST3, abs=1e-6)
    assert set(report["reranked"]) == set(BM25_DL19_FIRST3)
    assert report["first"]["recall@100"] == report["reranked"]["recall@100"]  # only the top 10 moved
    o = report["outcomes"]
    assert o["wins"] + o["losses"] + o["ties"] == QUERIES
    assert set(report["per_query"]) == {"19335", "47923", "87181"}
    assert report["timing"]["documents_reranked"] == 10 * QUERIES

    markdown = (out / "report.md").read_text()
    assert "| NDCG@3 |" in markdown and "Per query on NDCG@10" in markdown
    assert (out / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    reranked_lines = (out / "reranked.trec").read_text().splitlines()
    assert reranked_lines[0].split()[1] == "Q0"

    # Deterministic: the same engine in-process gives the same reranked numbers.
    dataset = load_dataset(dl19).subset(QUERIES)
    again, _, _ = run_eval(dataset, "bm25", EngineScorer.from_model(str(tiny_qwen_dir), device="cpu"), top_k=10)
    assert again.reranked == pytest.approx(report["reranked"], abs=1e-9)

    # The written first-stage run, fed back as `run:FILE`, reproduces the BM25 numbers.
    args = ["eval", "--data", str(dl19), "--first-stage", f"run:{out / 'first_stage.trec'}"]
    args += ["--max-queries", str(QUERIES), "--out", str(tmp_path / "from-run"), "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    from_run = json.loads((tmp_path / "from-run" / "report.json").read_text())
    assert from_run["first"] == pytest.approx(report["first"], abs=1e-9) and from_run["reranked"] is None


class OverlapScorer:
    """Deterministic stand-in reranker: fraction of query words in the document."""

    name = "overlap"

    def score(self, query: str, documents: list[str]) -> list[float]:
        words = set(query.lower().split())
        return [len(words & set(d.lower().replace(".", "").split())) / len(words) for d in documents]


def test_eval_mteb_jsonl_reranks_each_candidate_pool(tmp_path: Path) -> None:
    rows = [
        {
            "query": "capital city of france",
            "positive": ["Paris is the capital city of France."],
            "negative": ["France France France France wine.", "Berlin is a city."],
        },
        {"query": "猫 睡觉", "positive": ["猫每天睡觉很久。"], "negative": ["狗喜欢散步。", "猫粮价格。"]},
    ]
    path = tmp_path / "rerank.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    report, first_run, reranked_run = run_eval(load_dataset(path), "bm25", OverlapScorer(), top_k=10)
    assert [len(v) for v in first_run.values()] == [3, 3]  # every candidate ranked, nothing else
    assert reranked_run["q1"][0][0] == "d0"
    assert report.reranked["mrr@10"] >= report.first["mrr@10"]
    assert report.reranked["ndcg@10"] == pytest.approx(1.0)


def test_eval_errors_are_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["eval", "--data", str(tmp_path / "nope"), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "no such file or directory" in result.output
    (tmp_path / "x.jsonl").write_text('{"query": "q", "positive": ["p"]}\n')
    result = CliRunner().invoke(app, ["eval", "--data", str(tmp_path / "x.jsonl"), "--first-stage", "bm42"])
    assert result.exit_code == 2 and "unknown first stage" in result.output
