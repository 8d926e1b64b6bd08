"""The shipped locustfile, run for real (headless, a few seconds) against a real tiny-model server,
in each API dialect it speaks."""

from __future__ import annotations

import csv
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.paths import REPO
from tests.support.server import ServerProcess, server_env

LOCUSTFILE = REPO / "scripts" / "locustfile.py"


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tiny_qwen_dir, tmp_path_factory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("locust-serve") / "serve.log"
    proc = ServerProcess(tiny_qwen_dir, log, env={"RANKSERVE_API_KEY": "k"}).wait_ready()
    yield proc
    assert proc.stop() == 0, proc.log()


@pytest.mark.parametrize(("fmt", "suffix"), [("simple", ""), ("cohere", ""), ("tei", "/tei")])
def test_locustfile_headless_run(server: ServerProcess, tmp_path: Path, fmt: str, suffix: str) -> None:
    locust = shutil.which("locust")
    if locust is None:
        pytest.fail("locust is not installed (it is part of the dev extra)")
    cmd = [
        locust, "-f", str(LOCUSTFILE), "--headless", "--host", server.url + suffix, "-u", "2", "-r", "2",
        "-t", "4s", "--stop-timeout", "5", "--csv", str(tmp_path / "run"), "--only-summary",
        "--format", fmt, "--docs", "5", "--doc-words", "12", "--api-key", "k",
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=server_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    with open(tmp_path / "run_stats.csv", newline="") as f:
        rows = {row["Name"]: row for row in csv.DictReader(f)}
    total = rows["Aggregated"]
    assert int(total["Request Count"]) >= 5, rows
    assert int(total["Failure Count"]) == 0, rows
    assert any(name.endswith(f"({fmt}, 5 docs)") for name in rows), rows
