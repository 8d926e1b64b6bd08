"""Limits against real server processes: 401, 413, 503, 504, port in use, presets file, served name.

These need settings the main test server must not have (an API key, tiny limits, a tiny
timeout, a tiny queue), so this module starts three more servers at once, and one that must fail.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time

import httpx
import pytest

from rankserve import Reranker
from tests.support.server import ServerProcess, metric_value, running, serve_command, server_env

KEY = "sekret-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
MEDIUM_DOC = "CPU usage stays at 100 percent because of a busy loop. " * 8
PRESETS_YAML = "ops_runbook: Given an incident question, retrieve runbook steps that fix it\n"


@pytest.fixture(scope="module")
def servers(tiny_qwen_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("limits")
    (tmp / "presets.yaml").write_text(PRESETS_YAML, encoding="utf-8")
    procs = {
        "strict": ServerProcess(
            tiny_qwen_dir, tmp / "strict.log",
            "--api-key", KEY, "--max-documents", "5", "--max-request-bytes", "4000",
            "--max-queued-tokens", "1000", "--served-model-name", "tiny-reranker",
            "--presets", str(tmp / "presets.yaml"), "--max-length", "512",
        ),
        "timeout": ServerProcess(tiny_qwen_dir, tmp / "timeout.log", "--request-timeout", "0.001"),
        # a small queue and small batches: one big request keeps it busy for many batches
        "busy": ServerProcess(
            tiny_qwen_dir, tmp / "busy.log", "--max-queued-tokens", "1000", "--max-batch-tokens", "1024",
        ),
    }  # fmt: skip
    with running(procs):
        yield procs


# ---- auth -----------------------------------------------------------------------------------
def test_api_key_required_everywhere_but_health(servers):
    url = servers["strict"].url
    assert httpx.get(url + "/health").status_code == 200
    body = {"query": "q", "texts": ["a"]}
    for method, path in [
        ("POST", "/rerank"), ("POST", "/v1/rerank"), ("POST", "/v2/rerank"), ("POST", "/score"),
        ("POST", "/v1/score"), ("GET", "/v1/models"), ("GET", "/v1/presets"), ("GET", "/metrics"),
        ("GET", "/nope"), ("GET", "/v1/models/tiny-reranker"),
    ]:  # fmt: skip
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
            r = httpx.request(method, url + path, json=body if method == "POST" else None, headers=headers)
            assert r.status_code == 401, (path, headers, r.text)
            err = r.json()["error"]
            assert err["code"] == 401 and err["type"] == "authentication_error"
            assert "API key" in err["message"]
            assert r.headers["www-authenticate"] == "Bearer"
    r = httpx.post(url + "/rerank", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    assert httpx.get(url + "/metrics", headers=AUTH).status_code == 200


# ---- 413 ------------------------------------------------------------------------------------
def test_too_many_documents(servers):
    url = servers["strict"].url
    for path, body in [
        ("/rerank", {"query": "q", "texts": ["a"] * 6}),
        ("/v1/rerank", {"query": "q", "documents": ["a"] * 6}),
        ("/score", {"text_1": "q", "text_2": ["a"] * 6}),
    ]:
        r = httpx.post(url + path, json=body, headers=AUTH)
        assert r.status_code == 413, r.text
        assert "6 > limit 5" in r.json()["error"]["message"]
    assert httpx.post(url + "/rerank", json={"query": "q", "texts": ["a"] * 5}, headers=AUTH).status_code == 200


def test_body_too_large(servers):
    url = servers["strict"].url
    big = {"query": "q", "texts": ["x" * 5000]}
    for path in ("/rerank", "/v1/rerank"):
        r = httpx.post(url + path, json=big, headers=AUTH)
        assert r.status_code == 413, r.text
        assert "4000" in r.json()["error"]["message"]

    def chunks():  # no Content-Length: the limit applies while the body streams in
        yield b'{"query": "q", "texts": ["'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"]}'

    for path in ("/rerank", "/v1/rerank"):
        r = httpx.post(url + path, content=chunks(), headers={**AUTH, "content-type": "application/json"})
        assert r.status_code == 413, r.text
        assert "4000" in r.json()["error"]["message"]
    assert httpx.get(url + "/health").status_code == 200


# ---- 503 queue full -------------------------------------------------------------------------
def test_one_request_over_the_queue_limit_succeeds_on_an_idle_server(servers):
    """--max-queued-tokens stops work piling up; alone, a request bigger than it is served."""
    url = servers["strict"].url
    texts = [f"{i} {MEDIUM_DOC}" for i in range(5)]
    r = httpx.post(url + "/rerank", json={"query": "q", "texts": texts}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["prompt_tokens"] > 1000  # over the strict server's limit on its own
    assert len(r.json()["scores"]) == 5


def test_queue_full_is_503_with_retry_after(servers):
    """A 503 caused by real queued work: a big request is being scored, the next one is refused."""
    url = servers["busy"].url
    big_texts = [f"{i} {MEDIUM_DOC}" for i in range(150)]  # ~60k tokens, ~60 batches of 1024
    big: dict[str, httpx.Response] = {}

    def send_big() -> None:
        big["response"] = httpx.post(url + "/rerank", json={"query": "q", "texts": big_texts}, timeout=120)

    thread = threading.Thread(target=send_big)
    thread.start()
    try:
        while metric_value(httpx.get(url + "/metrics").text, "rankserve_pairs_scored_total") == 0:
            assert thread.is_alive(), big
            time.sleep(0.01)  # wait until the big request is being scored
        refused = None
        while thread.is_alive() and refused is None:
            r = httpx.post(url + "/rerank", json={"query": "q", "texts": ["short"]})
            refused = r if r.status_code == 503 else None
    finally:
        thread.join(120)
    assert refused is not None, "no request was refused while the big one was queued"
    assert int(refused.headers["retry-after"]) >= 1
    err = refused.json()["error"]
    assert err["code"] == 503 and err["type"] == "server_busy"
    assert "--max-queued-tokens" in err["message"] and "tokens queued" in err["message"]

    assert big["response"].status_code == 200, big["response"].text  # the big one still finishes
    assert len(big["response"].json()["scores"]) == len(big_texts)
    metrics = httpx.get(url + "/metrics").text
    assert metric_value(metrics, "rankserve_rejected_total") >= 1
    assert metric_value(metrics, "rankserve_requests_total", route="/rerank", status="503") >= 1
    assert metric_value(metrics, "rankserve_queue_tokens") == 0
    r = httpx.post(url + "/rerank", json={"query": "q", "texts": ["short"]})
    assert r.status_code == 200, r.text  # idle again: served


# ---- presets file and served name -----------------------------------------------------------
def test_presets_file_and_served_name(servers, tiny_qwen_dir):
    url = servers["strict"].url
    presets = httpx.get(url + "/v1/presets", headers=AUTH).json()["data"]
    names = [p["name"] for p in presets]
    assert "ops_runbook" in names and "legal_compliance" in names  # added to the shipped ones
    assert httpx.get(url + "/health").json() == {"status": "healthy", "model": "tiny-reranker"}
    assert httpx.get(url + "/v1/models", headers=AUTH).json()["data"][0]["id"] == "tiny-reranker"
    body = {"model": "tiny-reranker", "query": "q", "documents": ["a", "b"], "preset": "ops_runbook"}
    r = httpx.post(url + "/v1/rerank", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "tiny-reranker"
    engine = Reranker.from_pretrained(str(tiny_qwen_dir), device="cpu", max_length=512)
    instruction = PRESETS_YAML.split(": ", 1)[1].strip()
    want = {d.index: d.score for d in engine.score("q", ["a", "b"], instruction=instruction)}
    for item in r.json()["results"]:
        assert abs(item["relevance_score"] - want[item["index"]]) <= 1e-5


# ---- 504 ------------------------------------------------------------------------------------
def test_request_timeout_is_504(servers):
    url = servers["timeout"].url
    body = {"query": "服务器CPU使用率持续100%怎么办", "texts": [MEDIUM_DOC] * 200}
    for path in ("/rerank", "/v1/rerank"):
        payload = body if path == "/rerank" else {"query": body["query"], "documents": body["texts"]}
        r = httpx.post(url + path, json=payload, timeout=60)
        assert r.status_code == 504, r.text
        assert "--request-timeout" in r.json()["error"]["message"]
    assert httpx.get(url + "/health").status_code == 200
    assert re.search(r"route=/rerank status=504 docs=200", servers["timeout"].log())


# ---- port in use ----------------------------------------------------------------------------
def test_second_server_on_same_port_fails_clearly(servers, tiny_qwen_dir):
    port = servers["strict"].port
    cmd = serve_command("--model", str(tiny_qwen_dir), "--host", "127.0.0.1", "--port", str(port), "--no-ui")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=server_env())
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert f"port {port} is already in use" in lines[0] and "--port" in lines[0]
    assert httpx.get(servers["strict"].url + "/health").status_code == 200  # the first one is unharmed
