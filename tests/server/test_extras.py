"""The lean install: the server runs with every optional package hidden, and each command or
page that needs one says in one line which extra to install.

Optional packages are hidden for real, in a subprocess: a folder of shim modules that raise
ImportError comes first on its ``sys.path``, as if the package were not installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from rankserve.extras import EXTRAS
from tests.support.server import ServerProcess

OPTIONAL = sorted({m.split(".")[0] for m in EXTRAS} | {"pandas", "numba"})


def _shims(folder: Path, modules: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in modules:
        (folder / f"{name}.py").write_text(f"raise ImportError('{name} is not installed (hidden)', name='{name}')\n")
    return folder


def _env(shim_dir: Path) -> dict[str, str]:
    path = [str(shim_dir), os.environ.get("PYTHONPATH", "")]
    return {"PYTHONPATH": os.pathsep.join(p for p in path if p)}


def _run(args: list[str], shim_dir: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **_env(shim_dir), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "rankserve", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)


def _one_line_error(result: subprocess.CompletedProcess[str], extra: str) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert f"pip install 'rankserve[{extra}]'" in lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("args", "extra", "feature"),
    [
        (["ui", "--port", "65000"], "ui", "rankserve ui"),
        (["eval", "--data", "nowhere"], "eval", "rankserve eval"),
        (["index", "nowhere", "--out", "idx"], "eval", "rankserve index"),
        (["search", "idx", "question"], "eval", "rankserve search"),
    ],
)
def test_missing_extra_is_one_line(args: list[str], extra: str, feature: str, tmp_path: Path) -> None:
    shim_dir = _shims(tmp_path / "shims", OPTIONAL)
    line = _one_line_error(_run(args, shim_dir, tmp_path), extra)
    assert feature in line


def test_missing_pdf_extra_names_it(tmp_path: Path) -> None:
    from rankserve.extras import MissingExtraError

    shim_dir = _shims(tmp_path / "shims", ["pypdf"])
    code = "from rankserve.pipeline.index import read_file; from pathlib import Path; read_file(Path('x.pdf'))"
    env = {**os.environ, **_env(shim_dir)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 1
    assert f"{MissingExtraError.__module__}.MissingExtraError: PDF files needs the 'pdf' extra" in result.stderr


def test_python_dash_m_rankserve_is_the_cli(tmp_path: Path) -> None:
    shim_dir = _shims(tmp_path / "shims", [])
    result = _run(["--help"], shim_dir, tmp_path)
    assert result.returncode == 0, result.stderr
    for command in ("serve", "rerank", "eval", "ui", "bench", "make-tiny-model"):
        assert command in result.stdout
    made = _run(["make-tiny-model", str(tmp_path / "tiny"), "--kind", "bert"], shim_dir, tmp_path)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "tiny" / "config.json").is_file()


def test_server_runs_without_any_extra(tiny_qwen_dir: Path, tmp_path: Path) -> None:
    shim_dir = _shims(tmp_path / "shims", OPTIONAL)
    env = {**_env(shim_dir), "RANKSERVE_API_KEY": "k"}
    server = ServerProcess(tiny_qwen_dir, tmp_path / "serve.log", "--ui", env=env).wait_ready()
    try:
        auth = {"Authorization": "Bearer k"}
        r = httpx.post(server.url + "/rerank", json={"query": "q", "texts": ["a", "b"]}, headers=auth)
        assert r.status_code == 200, r.text
        page = httpx.get(server.url + "/ui")  # no key: the message is public
        assert page.status_code == 404
        assert page.json()["error"]["message"] == "the web UI is not installed: pip install 'rankserve[ui]'"
        assert httpx.get(server.url + "/ui/some/asset.js").status_code == 404
        assert httpx.get(server.url + "/metrics", headers=auth).status_code == 200
    finally:
        assert server.stop() == 0
    log = server.log()
    assert "web UI disabled: the web UI is not installed: pip install 'rankserve[ui]'" in log
    assert "Traceback" not in log
