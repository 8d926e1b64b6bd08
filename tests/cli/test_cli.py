"""The CLI, run as a user runs it: the installed ``rankserve`` command in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rankserve import Reranker

QUERY = "服务器CPU使用率持续100%怎么办"
DOCS = ["使用 top 命令找到占用CPU最高的进程", "Paris is the capital of France.", "def f():\n    pass"]


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "rankserve.cli", *args], capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_help_lists_commands():
    out = run("--help").stdout
    for command in ("rerank", "make-tiny-model"):
        assert command in out


@pytest.fixture(scope="module")
def expected(tiny_qwen_dir):
    return Reranker.from_pretrained(str(tiny_qwen_dir), device="cpu").rerank(QUERY, DOCS)


def test_rerank_json_matches_engine(tiny_qwen_dir, expected):
    args = ["rerank", "--model", str(tiny_qwen_dir), "--query", QUERY, "--json"]
    for d in DOCS:
        args += ["--doc", d]
    out = json.loads(run(*args).stdout)
    assert [r["index"] for r in out["results"]] == [r.index for r in expected]
    assert [r["rank"] for r in out["results"]] == [1, 2, 3]
    for got, want in zip(out["results"], expected):
        assert abs(got["score"] - want.score) < 1e-6
        assert got["text"] == DOCS[want.index]


def test_rerank_table_from_docs_files(tiny_qwen_dir, expected, tmp_path):
    txt = tmp_path / "docs.txt"
    txt.write_text("\n".join(d.replace("\n", " ") for d in DOCS) + "\n\n", encoding="utf-8")
    out = run("rerank", "-m", str(tiny_qwen_dir), "-q", QUERY, "--docs-file", str(txt)).stdout
    assert "rank" in out and "score" in out
    top = expected[0]
    assert f"{top.score:.4f}" in out

    jl = tmp_path / "docs.jsonl"
    jl.write_text("\n".join(json.dumps({"text": d}, ensure_ascii=False) for d in DOCS), encoding="utf-8")
    out = json.loads(run("rerank", "-m", str(tiny_qwen_dir), "-q", QUERY, "--docs-file", str(jl), "--json").stdout)
    assert [r["index"] for r in out["results"]] == [r.index for r in expected]


def test_clear_errors_without_traceback(tmp_path, tiny_qwen_dir):
    proc = run("rerank", "-m", str(tmp_path), "-q", "q", "-d", "a", check=False)
    assert proc.returncode == 2 and "is not a model" in proc.stderr and "Traceback" not in proc.stderr
    proc = run("rerank", "-m", str(tiny_qwen_dir), "-q", "", "-d", "a", check=False)
    assert proc.returncode == 2 and "query cannot be empty" in proc.stderr and "Traceback" not in proc.stderr
    proc = run("rerank", "-m", str(tiny_qwen_dir), "-q", "q", check=False)
    assert proc.returncode == 2 and "no documents" in proc.stderr


def test_docs_file_that_is_not_utf8(tiny_qwen_dir, tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("café crème\n".encode("latin-1"))
    proc = run("rerank", "-m", str(tiny_qwen_dir), "-q", "q", "--docs-file", str(bad), check=False)
    assert proc.returncode == 2 and "not UTF-8" in proc.stderr and "Traceback" not in proc.stderr


def test_bracketed_text_is_printed_as_is(tiny_qwen_dir):
    """Rich markup must not eat user text such as "[dense]" in documents or error messages."""
    out = run("rerank", "-m", str(tiny_qwen_dir), "-q", "q", "-d", "[dense] doc", "-d", "other").stdout
    assert "[dense] doc" in out
    proc = run("rerank", "-m", str(tiny_qwen_dir), "-q", "q", "--docs-file", "/no/such/[dir].txt", check=False)
    assert "/no/such/[dir].txt" in proc.stderr
