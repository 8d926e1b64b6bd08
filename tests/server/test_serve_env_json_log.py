"""``rankserve serve`` options from ``RANKSERVE_<OPTION>`` variables, and ``--log-format json``:
a real server on a free port, configured only through its environment."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.support.server import ServerProcess


def test_env_options_and_json_access_log(tiny_qwen_dir: Path, tmp_path: Path) -> None:
    env = {
        "RANKSERVE_MAX_DOCUMENTS": "2",
        "RANKSERVE_SERVED_MODEL_NAME": "from-env",
        "RANKSERVE_LOG_FORMAT": "json",
        "RANKSERVE_METRICS_PUBLIC": "true",
        "RANKSERVE_API_KEY": "k",
    }
    server = ServerProcess(tiny_qwen_dir, tmp_path / "serve.log", env=env).wait_ready()
    try:
        key = {"Authorization": "Bearer k"}
        auth = {**key, "X-Request-Id": "trace-123"}
        ok = httpx.post(server.url + "/rerank", json={"query": "q", "texts": ["a", "b"]}, headers=auth)
        assert ok.status_code == 200 and ok.json()["model"] == "from-env"
        too_many = httpx.post(server.url + "/rerank", json={"query": "q", "texts": ["a", "b", "c"]}, headers=key)
        assert too_many.status_code == 413 and "--max-documents" in too_many.text
        assert httpx.get(server.url + "/metrics").status_code == 200  # public through the variable
    finally:
        assert server.stop() == 0
    lines = [line for line in server.log().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert records and len(records) == len(lines), server.log()  # every line is one JSON object
    access = [r for r in records if r["logger"] == "rankserve.access" and r["request_id"] == "trace-123"]
    assert len(access) == 1, records
    assert access[0]["route"] == "/rerank" and access[0]["status"] == 200 and access[0]["docs"] == 2
    assert access[0]["method"] == "POST" and isinstance(access[0]["total_ms"], float)
    assert {"time", "level", "message"} <= set(access[0])
    refused = [r for r in records if r["logger"] == "rankserve.access" and r.get("status") == 413]
    assert len(refused) == 1
    assert any("Starting RankServe" in r["message"] and r["level"] == "info" for r in records)


def test_command_line_wins_over_environment(tiny_qwen_dir: Path, tmp_path: Path) -> None:
    env = {"RANKSERVE_SERVED_MODEL_NAME": "from-env"}
    server = ServerProcess(tiny_qwen_dir, tmp_path / "serve.log", "--served-model-name", "from-cli", env=env)
    try:
        server.wait_ready()
        assert httpx.get(server.url + "/v1/models").json()["data"][0]["id"] == "from-cli"
    finally:
        assert server.stop() == 0
