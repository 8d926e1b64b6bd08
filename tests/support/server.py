"""Helpers for the server tests: run the real ``rankserve serve`` in a subprocess (no tests here).

Every server test talks HTTP to a real uvicorn process started on a free port with the tiny
model fixture, exactly as a user would run it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

STARTUP_TIMEOUT = 180.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"})
    env.pop("RANKSERVE_API_KEY", None)
    env.update(extra or {})
    return env


def serve_command(*args: str) -> list[str]:
    """``rankserve serve ...`` through the installed console script, else ``python -m rankserve.server``."""
    exe = shutil.which("rankserve")
    if exe and _cli_has_serve():
        return [exe, "serve", *args]
    return [sys.executable, "-m", "rankserve.server", *args]


def _cli_has_serve() -> bool:
    try:
        from rankserve.cli import app
    except Exception:
        return False
    return any(getattr(c, "name", None) == "serve" for c in app.registered_commands)


class ServerProcess:
    """One ``rankserve serve`` subprocess; output goes to ``log_path``."""

    def __init__(self, model: Path, log_path: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.health_seen: list[tuple[int, dict]] = []
        self.terminated = False
        cmd = serve_command(
            "--model", str(model), "--host", "127.0.0.1", "--port", str(self.port), "--device", "cpu",
            "--no-ui", *args,
        )  # fmt: skip
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=server_env(env))

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> ServerProcess:
        """Poll /health until 200, remembering every answer (to see the "loading" phase)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                r = httpx.get(self.url + "/health", timeout=5)
                self.health_seen.append((r.status_code, r.json()))
                if r.status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server not ready after {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def terminate(self) -> None:
        """One SIGTERM (a second one would interrupt the graceful shutdown)."""
        if self.proc.poll() is None and not self.terminated:
            self.proc.send_signal(signal.SIGTERM)
            self.terminated = True

    def stop(self) -> int:
        self.terminate()
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._log.close()
        return code


@contextmanager
def running(procs: dict[str, ServerProcess]) -> Iterator[dict[str, ServerProcess]]:
    """Wait until every server is ready, yield them, and stop them all however the block ends."""
    try:
        for proc in procs.values():
            proc.wait_ready()
        yield procs
    finally:
        for proc in procs.values():
            proc.stop()


def build_nan_model(tiny_qwen_dir: Path, out: Path) -> Path:
    """A copy of the tiny model whose final norm is NaN: a broken checkpoint, honestly broken."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(tiny_qwen_dir, out, dirs_exist_ok=True)
    files = sorted(out.glob("*.safetensors"))
    assert files, f"no safetensors in {tiny_qwen_dir}"
    for f in files:
        tensors = load_file(f)
        changed = False
        for name, t in tensors.items():
            if name.endswith("norm.weight") and "layers" not in name:
                tensors[name] = torch.full_like(t, float("nan"))
                changed = True
        if changed:
            save_file(tensors, f, metadata={"format": "pt"})
    return out


def build_vocab_mismatch_model(tiny_qwen_dir: Path, out: Path) -> Path:
    """A tiny reranker whose embedding table is smaller than its tokenizer's vocabulary.

    It loads (config and weights agree with each other), but the prompt's ``<think>`` tokens
    have ids past the table, so every forward pass fails with torch's IndexError: an engine
    failure that is not a planned :class:`EngineError`.
    """
    from transformers import AutoTokenizer, Qwen3ForCausalLM

    shutil.copytree(tiny_qwen_dir, out, dirs_exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    think = tokenizer.convert_tokens_to_ids("<think>")
    assert max(tokenizer.convert_tokens_to_ids(w) for w in ("yes", "no")) < think
    model = Qwen3ForCausalLM.from_pretrained(str(out))
    model.resize_token_embeddings(think)  # keeps rows 0..think-1, the yes/no rows among them
    model.save_pretrained(str(out))
    return out


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample (0.0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        metric, _, label_part = key.partition("{")
        if metric != name:
            continue
        got = ",".join(sorted(label_part.rstrip("}").split(","))) if label_part else ""
        if got == want:
            return float(value)
    return 0.0
