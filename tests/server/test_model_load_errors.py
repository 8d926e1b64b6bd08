"""First-run load errors: one line saying what failed and what to do, without a retry storm."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.support.server import free_port, serve_command, server_env

MISSING_ID = "rankserve-tests/no-such-reranker-7f3a"


def serve_fails(model: str, tmp_path, offline: bool) -> tuple[str, float]:
    env = server_env({"HF_HOME": str(tmp_path / "hf-home")})  # an empty cache
    if not offline:
        env.pop("HF_HUB_OFFLINE")
    started = time.monotonic()
    cmd = serve_command("--model", model, "--host", "127.0.0.1", "--port", str(free_port()), "--device", "cpu")
    proc = subprocess.run([*cmd, "--no-ui"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr, time.monotonic() - started


@pytest.mark.parametrize("offline", [False, True])
def test_unknown_hub_id_fails_fast_in_one_line(tmp_path, offline):
    output, elapsed = serve_fails(MISSING_ID, tmp_path, offline)
    errors = [line for line in output.splitlines() if " ERROR " in line]
    assert len(errors) == 1, output
    assert "Retrying" not in output and "Traceback" not in output
    expected = (
        ["not in the local Hugging Face cache"]
        if offline
        else ["could not reach the Hugging Face Hub", "no such model repository"]
    )
    assert any(e in errors[0] for e in expected), errors[0]
    assert "HF_HUB_OFFLINE" in errors[0] and "rankserve make-tiny-model" in errors[0]
    assert elapsed < 20  # the server process start included; no 24 s of retries


def test_directory_without_config_says_so(tmp_path):
    (tmp_path / "weights").mkdir()
    output, _ = serve_fails(str(tmp_path / "weights"), tmp_path, offline=True)
    assert "no config.json in that directory" in output and "make-tiny-model" in output
