"""End to end against the real ``rankserve serve`` (tiny model, subprocess on a free port):
the client's answers equal the engine's, a 400 is raised, a killed server falls back, and
``rankserve eval --server`` gives the same numbers as ``--model``."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from rankserve.cli import app
from rankserve.client import AsyncRerankClient, RerankClient, RerankRequestError

_PROCS: dict[str, subprocess.Popen] = {}
DOCS = ["Paris is the capital of France.", "Cats sleep a lot.", "Berlin is in Germany.", "法国的首都是巴黎。"]


def _serve_command(model: Path, port: int) -> list[str]:
    """``rankserve serve`` exactly as a user runs it (through the CLI module of this checkout)."""
    args = ["--model", str(model), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    return [sys.executable, "-m", "rankserve.cli", "serve", *args]


@pytest.fixture(scope="module")
def server(tiny_qwen_dir: Path, tmp_path_factory) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(_serve_command(tiny_qwen_dir, port), stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"rankserve serve exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"rankserve serve did not become healthy:\n{log.read_text()}")
            time.sleep(0.2)
        _PROCS[url] = proc
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_client_matches_engine(server: str, tiny_reranker) -> None:
    expected = tiny_reranker.rerank("capital of France", DOCS)
    response = RerankClient(server, timeout=30).rerank("capital of France", DOCS)
    assert not response.fallback
    assert [r.index for r in response.results] == [e.index for e in expected]
    for got, want in zip(response.results, expected, strict=True):
        assert got.relevance_score == pytest.approx(want.score, abs=1e-5)
        assert got.document == DOCS[got.index]
    top = RerankClient(server, timeout=30).rerank("capital of France", DOCS, top_n=2)
    assert [r.index for r in top.results] == [e.index for e in expected[:2]]


async def test_async_client_and_400(server: str) -> None:
    async with AsyncRerankClient(server, timeout=30) as client:
        response = await client.rerank("巴黎", DOCS, top_n=1)
        assert len(response.results) == 1 and not response.fallback
        with pytest.raises(RerankRequestError) as err:
            await client.rerank("query", ["fine", ""])
    assert err.value.status_code == 400 and "1" in err.value.message
    with pytest.raises(RerankRequestError) as err:
        RerankClient(server).rerank("", DOCS)
    assert err.value.status_code == 400


def test_eval_through_server_equals_in_process(server: str, tiny_qwen_dir: Path, tmp_path: Path) -> None:
    rows = [
        {"query": "capital of France", "positive": [DOCS[0]], "negative": DOCS[1:]},
        {"query": "sleeping cats", "positive": [DOCS[1]], "negative": [DOCS[0], DOCS[2]]},
    ]
    data = tmp_path / "data.jsonl"
    data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    reports = {}
    for mode, target in (("server", server), ("model", str(tiny_qwen_dir))):
        out = tmp_path / mode
        args = ["eval", "--data", str(data), f"--{mode}", target, "--out", str(out), "--no-progress"]
        if mode == "model":
            args += ["--device", "cpu"]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        reports[mode] = json.loads((out / "report.json").read_text())
    assert reports["server"]["reranked"] == pytest.approx(reports["model"]["reranked"], abs=1e-6)


def test_stopped_server_falls_back_last(server: str) -> None:
    """Runs last in this module: stop the real server, then the client degrades, no error."""
    proc = _PROCS[server]
    proc.terminate()
    proc.wait(15)
    response = RerankClient(server, timeout=2.0, fallback="bm25").rerank("capital of France", DOCS)
    assert response.fallback and "connection error" in response.fallback_reason
    assert response.results[0].index == 0  # BM25 order of the caller's documents
