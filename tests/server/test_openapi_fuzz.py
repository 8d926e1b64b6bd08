"""Fuzz the real server from its own ``/openapi.json`` with schemathesis: every check, zero failures.

Bounded: 40 examples per operation and phase (about a minute on two CPU cores). Settings and the
one documented exception live in ``tests/server/schemathesis.toml``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.server import ServerProcess

CONFIG = Path(__file__).with_name("schemathesis.toml")
FUZZ_TIMEOUT = 300


@pytest.mark.slow
@pytest.mark.parametrize("keyed", [False, True], ids=["open", "api-key"])
def test_schemathesis_finds_nothing(tiny_qwen_dir, tmp_path, keyed):
    st = shutil.which("st") or shutil.which("schemathesis")
    if st is None:
        pytest.skip("schemathesis is not installed (pip install -e .[dev])")
    auth = ["--api-key", "fuzz-key"] if keyed else []
    proc = ServerProcess(tiny_qwen_dir, tmp_path / "server.log", *auth)
    try:
        proc.wait_ready()
        # every check runs by default; "--checks all" would override the config's one exception
        cmd = [st, "--config-file", str(CONFIG), "run", proc.url + "/openapi.json", "--no-color"]
        if keyed:
            cmd += ["--header", "Authorization: Bearer fuzz-key"]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=FUZZ_TIMEOUT, cwd=tmp_path)  # its cache too
        report = run.stdout[-6000:] + run.stderr[-2000:]
        assert run.returncode == 0, report
        assert "No issues found" in run.stdout, report
    finally:
        proc.stop()
    assert "Traceback" not in proc.log()
