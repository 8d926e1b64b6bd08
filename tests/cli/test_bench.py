"""``rankserve bench`` end to end on the CPU with the tiny model: engine mode and HTTP mode.

Timings on two shared CPU cores mean nothing; these tests check that the benchmark runs the
engine and the official recipe side by side, that its score check really compares them, and
that it writes its table, JSON and chart.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.paths import SHARED
from tests.support.server import ServerProcess

DL19 = SHARED / "data" / "trec-dl19-subset"
DATA_ARGS = ["--data", str(DL19)] if DL19.is_dir() else []  # without it: a built-in text


def bench(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "rankserve.cli", "bench", *args], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_engine_mode_against_the_recipe(tiny_qwen_dir, tmp_path):
    out, png = tmp_path / "bench.json", tmp_path / "bench.png"
    proc = bench(
        "--model", str(tiny_qwen_dir), "--tokenizer", str(tiny_qwen_dir),
        *DATA_ARGS,
        "--workloads", "W8,docs4", "--baseline", "--repeat", "1", "--warmup", "0",
        "--device", "cpu", "--json", str(out), "--png", str(png),
    )  # fmt: skip
    result = json.loads(out.read_text())
    rows = {(r["workload"], r["impl"]): r for r in result["rows"]}
    assert set(rows) == {(w, i) for w in ("W8", "docs4") for i in ("rankserve", "recipe")}
    w8 = rows[("W8", "rankserve")]
    assert w8["docs"] == 8 and w8["tokens"] > 8 * 32 and w8["p50_ms"] > 0 and w8["speedup"] > 0
    assert result["checks"][0]["fp32_max_abs"] <= 1e-5
    assert result["meta"]["torch"] and result["meta"]["transformers"]
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"
    assert "speed-up" in proc.stdout and "fp32 engine vs recipe" in proc.stdout


def test_workload_lengths_are_exact(tiny_qwen_dir, shared_dir):
    from transformers import AutoTokenizer

    from rankserve.bench.workloads import build, spread

    tok = AutoTokenizer.from_pretrained(str(tiny_qwen_dir))
    w = build(["W20"], tok, shared_dir / "data" / "trec-dl19-subset")[0]
    lengths = [len(tok(d, add_special_tokens=False)["input_ids"]) for d in w.documents]
    # decoding then re-encoding a cut token stream may merge a token or two at the edges
    assert all(abs(a - b) <= 3 for a, b in zip(lengths, spread(20)))
    capped = build(["W20-100"], tok, shared_dir / "data" / "trec-dl19-subset")[0]  # lengths up to 100, not 512
    lengths = [len(tok(d, add_special_tokens=False)["input_ids"]) for d in capped.documents]
    assert len(lengths) == 20 and all(abs(a - b) <= 3 for a, b in zip(lengths, spread(20, high=100)))
    for bad in ("W0x", "W20-", "W-100"):
        with pytest.raises(ValueError, match="unknown workload"):
            build([bad], tok, None)


def test_http_mode_against_a_real_server(tiny_qwen_dir, tmp_path):
    server = ServerProcess(tiny_qwen_dir, tmp_path / "server.log").wait_ready()
    try:
        out = tmp_path / "http.json"
        proc = bench(
            "--http", server.url, "--tokenizer", str(tiny_qwen_dir), "--docs", "4",
            "--rates", "1,2", "--duration", "2", "--concurrency", "2", "--json", str(out),
            "--target-p95-ms", "10000",  # the sweep's logic, not this machine's speed (CI hosts get busy)
        )  # fmt: skip
    finally:
        server.stop()
    result = json.loads(out.read_text())["http"]
    assert [r["rate_rps"] for r in result["open_loop"]][0] == 1.0
    assert all(r["errors"] == 0 and r["completed"] > 0 for r in result["open_loop"])
    assert result["target_p95_ms"] == 10000.0 and len(result["open_loop"]) == 2  # no rate went over the target
    assert result["saturation"]["completed"] > 0 and result["best_rate_rps"] == 2.0
    assert "best rate with p95" in proc.stdout


def test_fp8_variant_reports_its_rank_correlation(tiny_qwen_dir, tmp_path):
    out = tmp_path / "fp8.json"
    proc = bench(
        "--model", str(tiny_qwen_dir), "--tokenizer", str(tiny_qwen_dir), *DATA_ARGS,
        "--workloads", "W8", "--variants", "eager,fp8", "--repeat", "1", "--warmup", "0",
        "--device", "cpu", "--json", str(out),
    )  # fmt: skip
    rows = {r["impl"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"rankserve", "rankserve+fp8"}
    fp8 = rows["rankserve+fp8"]
    assert 0.5 < fp8["vs_full_spearman"] <= 1.0 and 0.0 < fp8["vs_full_max_abs"] < 0.5
    assert "rankserve+fp8 vs full precision: Spearman" in proc.stdout


def test_bench_rejects_unknown_variants(tiny_qwen_dir):
    proc = subprocess.run(
        [sys.executable, "-m", "rankserve.cli", "bench", "--model", str(tiny_qwen_dir), "--variants", "eager,turbo"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert (
        proc.returncode != 0
        and "--variants takes a comma-separated list of eager, compile, nograph, flash, fp8 (or auto alone)"
        in proc.stderr + proc.stdout
    )
    assert "Traceback" not in proc.stderr
