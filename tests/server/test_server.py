"""The HTTP API against a real server process: shapes, scores, errors, concurrency, disconnects.

One server (tiny model, ``--max-length 512``) serves every test in this module; expected
scores come from the same tiny model loaded in this process with the same settings.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import threading
import time

import httpx
import pytest

from rankserve import Reranker
from rankserve.server.schemas.simple import compute_ranks
from tests.support.server import ServerProcess, metric_value

TOL = 1e-5
MAX_LENGTH = 512
QUERY_ZH = "服务器CPU使用率持续100%怎么办"
DOCS_ZH = [
    "先用 top 或 htop 找出占用CPU最高的进程, 再分析是否有死循环。",
    "今天天气很好, 适合去公园散步。",
    "Check for runaway processes with `top`, then profile the hot code path.",
    "CPU使用率持续100%通常意味着程序陷入死循环或者负载过高, 可以考虑扩容。",
]
QUERIES = [
    QUERY_ZH,
    "fastest way to merge two sorted lists in Python",
    "如何申请软件著作权?",
    "كيف أحول ملف PDF إلى نص في بايثون؟",
    "Dockerコンテナのメモリを制限するには?",
]
POOL = [
    *DOCS_ZH,
    "def merge(a, b):\n    return list(heapq.merge(a, b))",
    "Use sorted(a + b); it is simple but O(n log n).",
    "向国家版权局提交申请表、源代码和说明书。",
    "استخدم مكتبة pypdf لاستخراج النص من ملفات PDF.",
    "docker run --memory=512m で上限を設定できます。",
    "Paris is the capital of France.",
]
LONG_DOC = "CPU usage stays at 100 percent because of a busy loop. " * 30  # > 512 tokens
MEDIUM_DOC = "CPU usage stays at 100 percent because of a busy loop. " * 8  # fits, no truncation


@pytest.fixture(scope="module")
def server(tiny_qwen_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("server")
    proc = ServerProcess(
        tiny_qwen_dir,
        tmp / "stdout.log",
        "--max-length", str(MAX_LENGTH),
        "--log-file", str(tmp / "server.log"),
    )  # fmt: skip
    proc.file_log = tmp / "server.log"
    try:
        yield proc.wait_ready()
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def engine(tiny_qwen_dir):
    return Reranker.from_pretrained(str(tiny_qwen_dir), device="cpu", max_length=MAX_LENGTH)


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def engine_scores(engine, query, docs, instruction=None, truncation="head_tail"):
    return [r.score for r in engine.score(query, docs, instruction=instruction, truncation=truncation)]


def assert_close(got, want):
    assert len(got) == len(want)
    assert max(abs(a - b) for a, b in zip(got, want, strict=True)) <= TOL, (got, want)


def assert_error(r: httpx.Response, status: int, *fragments: str) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "code"}
    assert err["code"] == status and isinstance(err["type"], str)
    for fragment in fragments:
        assert fragment in err["message"], err["message"]
    return err


# ---- info endpoints -------------------------------------------------------------------------
def test_health_models_presets(server, client, tiny_qwen_dir):
    assert client.get("/health").json() == {"status": "healthy", "model": str(tiny_qwen_dir)}
    models = client.get("/v1/models").json()
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == [str(tiny_qwen_dir)]
    assert models["data"][0]["object"] == "model"
    presets = client.get("/v1/presets").json()
    names = {p["name"] for p in presets["data"]}
    assert {"default", "web_search", "legal_compliance", "technical_accuracy", "step_by_step"} <= names
    assert presets["default"] == "default"


def test_health_said_loading_first(server):
    """The model loads after the port opens; probes see 503 "loading" until it is ready."""
    loading = [body for status, body in server.health_seen if status == 503]
    assert loading and all(b["status"] == "loading" for b in loading), server.health_seen
    assert server.health_seen[-1][0] == 200


def test_startup_log_order(server):
    text = server.file_log.read_text(encoding="utf-8")
    start = text.index(f"model {server_model(server)}, device cpu, dtype float32, max length {MAX_LENGTH}")
    started = text.index(f"HTTP server started on http://127.0.0.1:{server.port}")
    assert start < started
    assert "CUDA graphs: not used on cpu" in text  # on by default; said why they do not run here


def server_model(server) -> str:
    return httpx.get(server.url + "/health").json()["model"]


def test_openapi_docs(client):
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    for path in ("/rerank", "/v1/rerank", "/v2/rerank", "/score", "/v1/score", "/health", "/v1/models"):
        assert path in spec["paths"], path
    body = spec["paths"]["/rerank"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert len(body["oneOf"]) == 2
    assert "SimpleRerankRequest" in spec["components"]["schemas"]


# ---- scoring endpoints ----------------------------------------------------------------------
def test_ranks_example():
    assert compute_ranks([0.924, 0.317, 0.881]) == [1, 3, 2]
    assert compute_ranks([0.5, 0.9, 0.5, 0.5]) == [2, 1, 3, 4]  # ties keep input order
    assert compute_ranks([]) == []


def test_simple_rerank(client, engine, tiny_qwen_dir):
    r = client.post("/rerank", json={"query": QUERY_ZH, "texts": DOCS_ZH})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"model", "scores", "ranks", "truncated", "usage"}
    assert body["model"] == str(tiny_qwen_dir)
    assert_close(body["scores"], engine_scores(engine, QUERY_ZH, DOCS_ZH))
    assert sorted(body["ranks"]) == [1, 2, 3, 4]
    by_rank = sorted(range(len(DOCS_ZH)), key=lambda i: body["ranks"][i])
    assert [body["scores"][i] for i in by_rank] == sorted(body["scores"], reverse=True)
    assert body["truncated"] is False
    expected_tokens = sum(d.prompt_tokens for d in engine.score(QUERY_ZH, DOCS_ZH))
    assert body["usage"] == {"prompt_tokens": expected_tokens}


@pytest.mark.parametrize("path", ["/rerank", "/v1/rerank"])
def test_documents_rerank(client, engine, path):
    docs = [DOCS_ZH[0], {"text": DOCS_ZH[1]}, DOCS_ZH[2], {"text": DOCS_ZH[3], "id": "x"}]
    body = {"model": server_name(client), "query": QUERY_ZH, "documents": docs, "top_n": 3}
    r = client.post(path, json=body)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"id", "model", "usage", "results"}
    assert body["id"] == r.headers["x-request-id"]
    want = engine_scores(engine, QUERY_ZH, DOCS_ZH)
    order = sorted(range(4), key=lambda i: (-want[i], i))[:3]
    assert [x["index"] for x in body["results"]] == order
    assert_close([x["relevance_score"] for x in body["results"]], [want[i] for i in order])
    assert [x["document"] for x in body["results"]] == [{"text": DOCS_ZH[i]} for i in order]
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0

    r = client.post(path, json={"query": QUERY_ZH, "documents": DOCS_ZH, "return_documents": False})
    results = r.json()["results"]
    assert len(results) == 4 and all(set(x) == {"index", "relevance_score"} for x in results)


def server_name(client) -> str:
    return client.get("/health").json()["model"]


def test_cohere_v2(client, engine):
    body = {"model": server_name(client), "query": QUERY_ZH, "documents": DOCS_ZH}
    r = client.post("/v2/rerank", json=body)
    assert r.status_code == 200, r.text
    body = r.json()
    assert {"id", "results", "meta"} <= set(body)
    assert body["meta"]["api_version"]["version"] == "2"
    assert body["meta"]["tokens"]["input_tokens"] > 0
    want = engine_scores(engine, QUERY_ZH, DOCS_ZH)
    assert [x["index"] for x in body["results"]] == sorted(range(4), key=lambda i: (-want[i], i))
    assert_close([x["relevance_score"] for x in body["results"]], sorted(want, reverse=True))
    assert all("document" not in x for x in body["results"])
    r = client.post("/v2/rerank", json={"query": QUERY_ZH, "documents": DOCS_ZH, "return_documents": True})
    assert r.json()["results"][0]["document"]["text"] in DOCS_ZH


@pytest.mark.parametrize("path", ["/score", "/v1/score"])
def test_score_vllm(client, engine, path):
    def post(body):
        r = client.post(path, json=body)
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["object"] == "list" and out["id"].startswith("score-") and isinstance(out["created"], int)
        assert out["model"] == server_name(client)
        assert [d["index"] for d in out["data"]] == list(range(len(out["data"])))
        assert all(d["object"] == "score" for d in out["data"])
        assert out["usage"]["prompt_tokens"] == out["usage"]["total_tokens"] > 0
        return [d["score"] for d in out["data"]]

    want = engine_scores(engine, QUERY_ZH, DOCS_ZH)
    assert_close(post({"text_1": QUERY_ZH, "text_2": DOCS_ZH[0]}), want[:1])  # 1:1
    assert_close(post({"text_1": QUERY_ZH, "text_2": DOCS_ZH}), want)  # 1:N
    assert_close(post({"queries": [QUERY_ZH], "documents": DOCS_ZH}), want)
    assert_close(post({"text_1": QUERY_ZH, "documents": DOCS_ZH}), want)  # aliases, side by side
    # N:N, element by element, with a repeated query
    queries = [QUERIES[0], QUERIES[1], QUERIES[0]]
    docs = [POOL[0], POOL[4], POOL[1]]
    want = [engine_scores(engine, q, [d])[0] for q, d in zip(queries, docs, strict=True)]
    assert_close(post({"queries": queries, "documents": docs}), want)


def test_instruction_and_presets(client, engine):
    presets = {p["name"]: p["instruction"] for p in client.get("/v1/presets").json()["data"]}
    legal = presets["legal_compliance"]
    base = {"query": QUERY_ZH, "texts": DOCS_ZH}
    default = client.post("/rerank", json=base).json()["scores"]
    assert_close(default, engine_scores(engine, QUERY_ZH, DOCS_ZH))  # engine default instruction
    by_preset = client.post("/rerank", json={**base, "preset": "legal_compliance"}).json()["scores"]
    assert_close(by_preset, engine_scores(engine, QUERY_ZH, DOCS_ZH, instruction=legal))
    assert by_preset != default
    custom = "Judge technical correctness only"
    wins = client.post("/rerank", json={**base, "preset": "legal_compliance", "instruction": custom}).json()
    assert_close(wins["scores"], engine_scores(engine, QUERY_ZH, DOCS_ZH, instruction=custom))
    r = client.post("/v1/rerank", json={"query": QUERY_ZH, "documents": DOCS_ZH, "preset": "nope"})
    assert_error(r, 400, "unknown preset 'nope'", "legal_compliance", "web_search")


@pytest.mark.parametrize("policy", ["head", "head_tail", "chunks"])
def test_truncation_policies(client, engine, policy):
    docs = [DOCS_ZH[0], LONG_DOC]
    r = client.post("/rerank", json={"query": QUERY_ZH, "texts": docs, "truncation": policy})
    assert r.status_code == 200, r.text
    body = r.json()
    assert_close(body["scores"], engine_scores(engine, QUERY_ZH, docs, truncation=policy))
    assert body["truncated"] is (policy != "chunks")


# ---- errors ---------------------------------------------------------------------------------
ERRORS = [
    ("/rerank", {"query": "", "texts": ["a"]}, 400, "query and texts cannot be empty"),
    ("/rerank", {"query": "q", "texts": []}, 400, "query and texts cannot be empty"),
    ("/rerank", {"query": "q", "texts": ["a", ""]}, 400, "texts[1] is empty"),
    ("/rerank", {"query": "q", "documents": []}, 400, "query and documents cannot be empty"),
    ("/v1/rerank", {"query": "  ", "documents": ["a"]}, 400, "query and documents cannot be empty"),
    ("/v1/rerank", {"query": "q", "documents": ["a", "b", ""]}, 400, "documents[2] is empty"),
    ("/v2/rerank", {"query": "q", "documents": [{"text": ""}]}, 400, "documents[0] is empty"),
    (
        "/rerank",
        {"query": "q", "documents": ["a"], "top_n": -2},
        422,
        "top_n: Input should be greater than or equal to 0",
    ),
    ("/rerank", {"query": "q", "texts": ["a", 3]}, 422, "texts[1]"),
    ("/rerank", {"query": 5, "texts": ["a"]}, 422, "query"),
    ("/rerank", {"query": "q"}, 422, '"texts"'),
    ("/rerank", ["q"], 422, '"documents"'),
    ("/v1/rerank", {"query": "q", "documents": ["a", 7]}, 422, "documents", "item 1"),
    ("/v1/rerank", {"query": "q"}, 422, "documents"),
    ("/v1/rerank", {"query": "q", "documents": ["a"], "top_n": "x"}, 422, "top_n"),
    ("/rerank", {"query": "q", "texts": ["a"], "truncation": "tail"}, 422, "truncation"),
    ("/v1/rerank", {"model": "other", "query": "q", "documents": ["a"]}, 404, "'other' not found"),
    ("/score", {"text_1": ["a", "b"], "text_2": ["x", "y", "z"]}, 400, "text_1 has 2 items", "text_2 has 3"),
    ("/v1/score", {"queries": "q", "documents": []}, 400, "queries and documents cannot be empty"),
    ("/score", {"text_1": "q"}, 422, "text_2: Field required"),
    ("/v1/score", {"text_1": "q", "text_2": ["a", ""]}, 400, "text_2[1] is empty"),
    # messages name the fields the caller sent
    ("/score", {"text_1": "q", "documents": []}, 400, "text_1 and documents cannot be empty"),
    ("/score", {"queries": "q"}, 422, "documents: Field required"),
    ("/score", {"text_2": ["a"]}, 422, "text_1: Field required"),
    ("/score", {"queries": "q", "text_1": "q", "text_2": "a"}, 400, "text_1 or queries, not both"),
    # top_n is a count: JSON true is not 1
    ("/v1/rerank", {"query": "q", "documents": ["a"], "top_n": True}, 422, "top_n"),
    ("/rerank", {"query": "q", "documents": ["a"], "top_n": False}, 422, "top_n"),
    ("/v2/rerank", {"query": "q", "documents": ["a"], "top_n": True}, 422, "top_n"),
    ("/v1/rerank", {"query": "q", "documents": "a"}, 422, 'documents: must be a list of strings or {"text": str}'),
    ("/rerank", {"query": "q", "texts": ["a"] * 1001}, 413, "1001", "1000"),
    # found by the engine while tokenizing: still the caller's error
    ("/rerank", {"query": "q", "texts": ["a"], "instruction": "rank " * 1000}, 400, "instruction is too long"),
]


@pytest.mark.parametrize(("path", "body", "status", *["f"]), [(p, b, s, f) for p, b, s, f, *_ in ERRORS])
def test_bad_input(client, path, body, status, f):
    assert_error(client.post(path, json=body), status, f)


def test_documents_shape_message_has_single_braces(client):
    r = client.post("/v1/rerank", json={"query": "q", "documents": {"text": "a"}})
    message = assert_error(r, 422)["message"]
    assert 'or {"text": str} objects' in message and "{{" not in message, message


def test_malformed_json_and_more_fragments(client):
    for path in ("/rerank", "/v1/rerank", "/v2/rerank", "/score"):
        r = client.post(path, content=b'{"query": "q", ', headers={"content-type": "application/json"})
        assert_error(r, 400, "malformed JSON")
    for path, body, status, *fragments in ERRORS:
        assert_error(client.post(path, json=body), status, *fragments)
    assert_error(client.get("/nope"), 404, "/nope")
    assert_error(client.get("/rerank"), 405)
    assert client.get("/health").status_code == 200  # still serving


# ---- request id, log line, metrics -----------------------------------------------------------
def test_request_id_and_log_line(server, client):
    body = {"query": QUERY_ZH, "texts": DOCS_ZH}
    r = client.post("/rerank", json=body, headers={"X-Request-Id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    generated = client.post("/rerank", json={"query": "q", "texts": [""]}).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    deadline = time.monotonic() + 5
    pattern = (
        r"request id=abc-123 method=POST route=/rerank status=200 docs=4 tokens=[1-9]\d* "
        r"queue_ms=\d+\.\d compute_ms=\d+\.\d"
    )
    while time.monotonic() < deadline:
        text = server.file_log.read_text(encoding="utf-8")
        if re.search(pattern, text) and f"id={generated} " in text:
            break
        time.sleep(0.05)
    assert re.search(pattern, text), text[-2000:]
    assert re.search(rf"id={generated} method=POST route=/rerank status=400 docs=0", text)


def test_metrics(client):
    client.post("/rerank", json={"query": QUERY_ZH, "texts": [DOCS_ZH[0], LONG_DOC]})
    client.post("/rerank", json={"query": "", "texts": ["a"]})
    text = client.get("/metrics").text
    assert metric_value(text, "rankserve_requests_total", route="/rerank", status="200") >= 1
    assert metric_value(text, "rankserve_requests_total", route="/rerank", status="400") >= 1
    assert metric_value(text, "rankserve_request_duration_seconds_count", route="/rerank") >= 2
    assert metric_value(text, "rankserve_pairs_scored_total") >= 2
    assert metric_value(text, "rankserve_truncations_total") >= 1
    assert metric_value(text, "rankserve_batch_tokens_count") >= 1
    assert metric_value(text, "rankserve_model_loaded") == 1
    assert "rankserve_queue_depth" in text and "rankserve_queue_tokens" in text


# ---- concurrency ----------------------------------------------------------------------------
def _mixed_requests(n: int) -> list[tuple[str, dict, str, list[str]]]:
    rng = random.Random(7)
    out = []
    for i in range(n):
        query = QUERIES[i % len(QUERIES)]
        docs = rng.sample(POOL, rng.randint(1, 5))
        kind = i % 4
        if kind == 0:
            out.append(("/rerank", {"query": query, "texts": docs}, "simple", docs))
        elif kind == 1:
            out.append(("/v1/rerank", {"query": query, "documents": docs}, "jina", docs))
        elif kind == 2:
            out.append(("/v2/rerank", {"query": query, "documents": docs}, "jina", docs))
        else:
            out.append(("/score", {"text_1": query, "text_2": docs}, "score", docs))
    return out


def _expected(engine, requests) -> list[list[float]]:
    """What the engine answers for each request, scored one by one."""
    return [engine_scores(engine, body.get("query") or body["text_1"], docs) for _, body, _, docs in requests]


def _scores_from(kind: str, body: dict, n: int) -> list[float]:
    if kind == "simple":
        return body["scores"]
    if kind == "score":
        return [d["score"] for d in body["data"]]
    scores = [math.nan] * n
    for item in body["results"]:
        scores[item["index"]] = item["relevance_score"]
    return scores


async def test_50_concurrent_mixed_requests(server, engine):
    requests = _mixed_requests(50)
    expected = _expected(engine, requests)
    async with httpx.AsyncClient(base_url=server.url, timeout=120) as ac:
        responses = await asyncio.gather(*(ac.post(path, json=body) for path, body, _, _ in requests))
    for (_, _, kind, docs), r, want in zip(requests, responses, expected, strict=True):
        assert r.status_code == 200, r.text
        assert_close(_scores_from(kind, r.json(), len(docs)), want)


async def test_disconnecting_client_disturbs_no_one(server, engine):
    """A client that leaves while its 1000 documents are queued: its pairs are dropped, others served."""
    big = {"query": QUERY_ZH, "texts": [f"{i} " + MEDIUM_DOC for i in range(1000)]}
    small = _mixed_requests(12)
    expected = _expected(engine, small)
    async with httpx.AsyncClient(base_url=server.url, timeout=120) as ac:
        before = metric_value((await ac.get("/metrics")).text, "rankserve_pairs_dropped_total")
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as leaving:
            big_task = asyncio.create_task(leaving.post("/rerank", json=big))
            queued = 0.0
            deadline = time.monotonic() + 30
            while queued == 0 and not big_task.done() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
                queued = metric_value((await ac.get("/metrics")).text, "rankserve_queue_tokens")
            assert queued > 0 and not big_task.done(), "the big request never sat in the queue"
            others = asyncio.gather(*(ac.post(path, json=body) for path, body, _, _ in small))
            big_task.cancel()  # the client goes away mid-flight
        responses = await others
        for (_, _, kind, docs), r, want in zip(small, responses, expected, strict=True):
            assert r.status_code == 200, r.text
            assert_close(_scores_from(kind, r.json(), len(docs)), want)
        dropped = before
        deadline = time.monotonic() + 30
        while dropped <= before and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            dropped = metric_value((await ac.get("/metrics")).text, "rankserve_pairs_dropped_total")
        assert dropped > before, "the disconnected request's queued pairs were not dropped"
        text = (await ac.get("/metrics")).text
        assert metric_value(text, "rankserve_queue_tokens") == 0
        assert metric_value(text, "rankserve_pairs_scored_total") < 1000 + 200  # most were never scored
        assert (await ac.get("/health")).status_code == 200
    log_text = server.file_log.read_text(encoding="utf-8")
    assert re.search(r"route=/rerank status=499 docs=1000 .*client disconnected", log_text)


# ---- SIGTERM: keep last, it stops the server ------------------------------------------------
@pytest.mark.slow
def test_zz_sigterm_finishes_in_flight_requests(server, engine):
    """Runs last in this module: it shuts the module's server down (gracefully) while it works."""
    proc = server
    docs = [f"{i} {MEDIUM_DOC}" for i in range(60)]
    result: dict[str, httpx.Response] = {}

    def call() -> None:
        result["r"] = httpx.post(proc.url + "/rerank", json={"query": "q", "texts": docs}, timeout=120)

    thread = threading.Thread(target=call)
    thread.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait until the request is queued (the only one now)
        if metric_value(httpx.get(proc.url + "/metrics").text, "rankserve_queue_tokens") > 0:
            break
        time.sleep(0.02)
    else:
        pytest.fail("the request never reached the model")
    proc.terminate()
    time.sleep(0.3)
    with pytest.raises(httpx.TransportError):  # no new connections once shutdown began
        httpx.get(proc.url + "/health", timeout=2)
    thread.join(timeout=120)
    r = result["r"]
    assert r.status_code == 200, r.text
    want = [d.score for d in engine.score("q", docs)]
    assert max(abs(a - b) for a, b in zip(r.json()["scores"], want, strict=True)) <= 1e-5
    assert proc.stop() == 0
    assert "Shutting down" in proc.log()


def test_fp8_server_serves_the_fp8_engine_scores(tiny_qwen_dir, tmp_path):
    """--quantize fp8 reaches the engine: the server answers what an FP8 engine computes."""
    docs = ["GPU scheduling in Kubernetes", "apple pie recipe", "CUDA device plugins for clusters"]
    engine = Reranker.from_pretrained(str(tiny_qwen_dir), device="cpu", max_length=MAX_LENGTH, quantize="fp8")
    full = Reranker.from_pretrained(str(tiny_qwen_dir), device="cpu", max_length=MAX_LENGTH)
    want = [r.score for r in engine.score("gpu kubernetes", docs)]
    proc = ServerProcess(
        tiny_qwen_dir, tmp_path / "fp8.log", "--max-length", str(MAX_LENGTH), "--quantize", "fp8", "--no-cuda-graphs"
    )
    try:
        proc.wait_ready()
        assert "CUDA graphs: off" in proc.log()  # --no-cuda-graphs reaches the engine
        r = httpx.post(proc.url + "/rerank", json={"query": "gpu kubernetes", "texts": docs}, timeout=60)
        assert r.status_code == 200, r.text
        got = r.json()["scores"]
        assert max(abs(a - b) for a, b in zip(got, want)) < 1e-5
        assert max(abs(a - b) for a, b in zip(got, [x.score for x in full.score("gpu kubernetes", docs)])) > 1e-4
    finally:
        proc.stop()
