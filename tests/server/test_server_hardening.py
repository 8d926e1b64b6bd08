"""Hostile and odd input against real server processes: every bad request a 4xx, bounded work and time.

Surrogates, deep JSON, unknown fields, per-request token caps and ceilings, stalled clients,
shutdown deadline, docs without a CDN, ``GET /`` and ``GET /v1/models/{id}``.
"""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from tests.support.server import ServerProcess, running

KEY = "harden-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
LONG_DOC = "CPU usage stays at 100 percent because of a busy loop. " * 60  # ~720 tokens
MAX_REQUEST_TOKENS = 3000


@pytest.fixture(scope="module")
def servers(tiny_qwen_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("harden")
    procs = {
        "open": ServerProcess(
            tiny_qwen_dir, tmp / "open.log", "--max-length", "512",
            "--max-request-tokens", str(MAX_REQUEST_TOKENS), "--body-timeout", "2",
        ),
        "keyed": ServerProcess(tiny_qwen_dir, tmp / "keyed.log", "--api-key", KEY),
    }  # fmt: skip
    with running(procs):
        yield procs


def post_raw(url: str, raw: bytes) -> httpx.Response:
    return httpx.post(url, content=raw, headers={"content-type": "application/json"}, timeout=30)


def error(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    body = r.json()["error"]
    assert body["code"] == status
    return body["message"]


# ---- bad input is a 400 naming the field ------------------------------------------------------
@pytest.mark.parametrize(
    "path, raw, field",
    [
        ("/rerank", '{"query": "\\ud800", "texts": ["a"]}', "query"),
        ("/rerank", '{"query": "q", "texts": ["a", "b", "c", "x\\udfff"]}', "texts[3]"),
        ("/v1/rerank", '{"query": "q", "documents": ["a", {"text": "\\ud83d"}]}', "documents[1].text"),
        ("/v2/rerank", '{"query": "q", "documents": ["a"], "instruction": "\\udc00"}', "instruction"),
        ("/score", '{"text_1": "\\ud800", "text_2": "a"}', "text_1"),
        ("/v1/score", '{"text_1": "q", "text_2": ["a", "\\ud800"]}', "text_2[1]"),
    ],
)
def test_unpaired_surrogate_is_400_naming_the_field(servers, path, raw, field):
    message = error(post_raw(servers["open"].url + path, raw.encode()), 400)
    assert message == f"{field} contains an unpaired surrogate (invalid Unicode)"


def test_raw_bytes_decoding_to_a_surrogate_are_400(servers):
    raw = b'{"query": "q", "documents": ["ok", "\xed\xa0\x80"]}'  # UTF-8 form of U+D800
    assert "documents[1] contains an unpaired surrogate" in error(
        post_raw(servers["open"].url + "/v1/rerank", raw), 400
    )
    r = httpx.post(servers["open"].url + "/v1/rerank", json={"query": "q", "documents": ["still serving"]})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("path", ["/rerank", "/v1/rerank", "/v2/rerank", "/score"])
def test_deeply_nested_json_is_400(servers, path):
    for raw in ("[" * 1000 + "]" * 1000, '{"query": "q", "documents": ' + "[" * 100 + "]" * 100 + "}"):
        assert "nested too deeply" in error(post_raw(servers["open"].url + path, raw.encode()), 400)


def test_both_texts_and_documents_is_400(servers):
    r = httpx.post(servers["open"].url + "/rerank", json={"query": "q", "texts": ["a"], "documents": ["b"]})
    assert "not both" in error(r, 400)


def test_missing_required_fields_are_422_everywhere(servers):
    url = servers["open"].url
    for path, body, field in [
        ("/rerank", {"query": "q"}, '"texts"'),
        ("/v1/rerank", {"query": "q"}, "documents: Field required"),
        ("/v2/rerank", {"documents": ["a"]}, "query: Field required"),
        ("/score", {"text_1": "q"}, "text_2: Field required"),
        ("/score", {"queries": "q"}, "documents: Field required"),
        ("/score", {"text_2": ["a"]}, "text_1: Field required"),
    ]:
        assert field in error(httpx.post(url + path, json=body), 422), (path, body)
    # present but empty is a 400 (the field is there, its value is unusable)
    assert "cannot be empty" in error(httpx.post(url + "/score", json={"text_1": "q", "text_2": []}), 400)


# ---- unknown fields are visible -------------------------------------------------------------
def test_unknown_fields_are_reported(servers):
    proc = servers["open"]
    body = {"query": "q", "documents": ["a", "b"], "top_k": 1, "max_length": 5}
    r = httpx.post(proc.url + "/v2/rerank", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["meta"]["warnings"] == ["unknown fields 'max_length', 'top_k' ignored"]
    assert len(r.json()["results"]) == 2  # top_k did nothing, and the caller is told so
    r = httpx.post(proc.url + "/v1/rerank", json=body)
    assert r.json()["meta"] == {"warnings": ["unknown fields 'max_length', 'top_k' ignored"]}
    r = httpx.post(proc.url + "/rerank", json={"query": "q", "texts": ["a", "b"], "top_n": 1})
    assert r.json()["warnings"] == ["unknown field 'top_n' ignored"] and len(r.json()["scores"]) == 2
    r = httpx.post(proc.url + "/score", json={"text_1": "q", "text_2": ["a"], "top_k": 3})
    assert r.status_code == 200 and "warnings" not in r.json()
    clean = httpx.post(proc.url + "/v1/rerank", json={"query": "q", "documents": ["a"]}).json()
    assert "meta" not in clean
    deadline = time.monotonic() + 5
    while "unknown field 'top_k' ignored" not in proc.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "unknown field 'top_k' ignored" in proc.log()


# ---- peers' token caps are honoured ------------------------------------------------------------
def test_max_tokens_per_doc_and_truncate_prompt_tokens(servers):
    url = servers["open"].url
    docs = [LONG_DOC, "short one"]
    full = httpx.post(url + "/v2/rerank", json={"query": "q", "documents": docs}).json()
    capped = httpx.post(url + "/v2/rerank", json={"query": "q", "documents": docs, "max_tokens_per_doc": 150}).json()
    assert capped["meta"]["tokens"]["input_tokens"] < full["meta"]["tokens"]["input_tokens"]
    assert capped["meta"]["tokens"]["input_tokens"] <= 2 * 150
    r = httpx.post(url + "/score", json={"text_1": "q", "text_2": docs, "truncate_prompt_tokens": 150})
    assert r.status_code == 200 and r.json()["usage"]["prompt_tokens"] <= 2 * 150
    r = httpx.post(url + "/v1/rerank", json={"query": "q", "documents": docs, "truncate_prompt_tokens": 150})
    assert r.status_code == 200 and r.json()["usage"]["prompt_tokens"] <= 2 * 150
    r = httpx.post(url + "/score", json={"text_1": "q", "text_2": docs, "truncate_prompt_tokens": -1})
    assert r.json()["usage"]["prompt_tokens"] > 2 * 150  # -1: the server's own budget
    r = httpx.post(url + "/score", json={"text_1": "q", "text_2": "a", "truncate_prompt_tokens": 0})
    assert "truncate_prompt_tokens must be >= 1 or -1" in error(r, 400)
    # a cap below the prompt's own size never cuts the prompt: the document keeps one token
    r = httpx.post(url + "/score", json={"text_1": "q", "text_2": LONG_DOC, "truncate_prompt_tokens": 5})
    assert r.status_code == 200 and 5 < r.json()["usage"]["prompt_tokens"] < 150
    error(httpx.post(url + "/v2/rerank", json={"query": "q", "documents": docs, "max_tokens_per_doc": 0}), 422)


def test_top_n_zero_means_all(servers):
    url = servers["open"].url
    r = httpx.post(url + "/v1/rerank", json={"query": "q", "documents": ["a", "b", "c"], "top_n": 0})
    assert r.status_code == 200 and len(r.json()["results"]) == 3
    assert "top_n" in error(httpx.post(url + "/v1/rerank", json={"query": "q", "documents": ["a"], "top_n": -1}), 422)


# ---- one request's work is bounded ---------------------------------------------------------------
def test_request_token_ceiling_counts_every_window(servers):
    url = servers["open"].url
    doc = LONG_DOC * 8  # ~5,800 tokens: a dozen windows of a 512-token budget
    r = httpx.post(url + "/v1/rerank", json={"query": "q", "documents": [doc], "truncation": "chunks"})
    message = error(r, 413)
    tokens = int(message.split("request is ")[1].split(" tokens")[0])
    assert tokens > MAX_REQUEST_TOKENS and f"limit of {MAX_REQUEST_TOKENS} tokens" in message
    assert "--max-request-tokens" in message
    # the same document cut to one window fits
    r = httpx.post(url + "/v1/rerank", json={"query": "q", "documents": [doc], "truncation": "head"})
    assert r.status_code == 200, r.text


def test_huge_chunked_input_refused_before_tokenizing(servers):
    doc = "x" * (MAX_REQUEST_TOKENS * 16 + 1)
    started = time.perf_counter()
    r = httpx.post(servers["open"].url + "/score", json={"text_1": "q", "text_2": doc, "truncation": "chunks"})
    assert "characters long" in error(r, 413)
    assert time.perf_counter() - started < 5


# ---- slow clients ---------------------------------------------------------------------------
def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=15)


def test_stalled_body_gets_408_and_close(servers):
    sock = _connect(servers["open"].url)
    body = json.dumps({"query": "q", "documents": ["a"]}).encode()
    head = (
        f"POST /v1/rerank HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    started = time.monotonic()
    sock.sendall(head.encode() + body[:10])
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    elapsed = time.monotonic() - started
    sock.close()
    assert data.startswith(b"HTTP/1.1 408"), data[:200]
    assert b"--body-timeout" in data and 1.5 < elapsed < 6


def test_dribbled_headers_are_cut_off(servers):
    sock = _connect(servers["open"].url)
    started = time.monotonic()
    sock.sendall(b"POST /v1/rerank HTTP/1.1\r\nHost: x\r\n")
    closed = False
    while time.monotonic() - started < 10:
        try:
            sock.sendall(b"X-a: b\r\n")
            sock.settimeout(1)
            if sock.recv(1) == b"":
                closed = True
                break
        except TimeoutError:
            continue
        except OSError:
            closed = True
            break
    sock.close()
    assert closed and time.monotonic() - started < 7


@pytest.mark.slow
def test_shutdown_deadline_closes_stalled_connections(tiny_qwen_dir, tmp_path):
    proc = ServerProcess(tiny_qwen_dir, tmp_path / "s.log", "--body-timeout", "0", "--shutdown-timeout", "2")
    try:
        proc.wait_ready()
        sock = _connect(proc.url)
        sock.sendall(
            b"POST /v1/rerank HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        )
        time.sleep(0.5)
        started = time.monotonic()
        proc.terminate()
        code = proc.proc.wait(timeout=20)
        assert code == 0 and time.monotonic() - started < 10, proc.log()
        sock.close()
    finally:
        proc.stop()


# ---- docs, root, model retrieval ------------------------------------------------------------
def test_docs_are_local_and_public_with_a_key(servers):
    url = servers["keyed"].url
    page = httpx.get(url + "/docs")
    assert page.status_code == 200 and "cdn" not in page.text.lower()
    assert "/docs/static/swagger-ui-bundle.js" in page.text
    js = httpx.get(url + "/docs/static/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 100_000
    schema = httpx.get(url + "/openapi.json").json()
    assert schema["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": "--api-key",
    }  # fmt: skip
    assert schema["paths"]["/v1/rerank"]["post"]["security"] == [{"bearer": []}]
    assert "401" in schema["paths"]["/v1/rerank"]["post"]["responses"]
    assert httpx.post(url + "/v1/rerank", json={"query": "q", "documents": ["a"]}).status_code == 401
    assert httpx.get(url + "/v1/models").status_code == 401


def test_openapi_documents_errors_and_metrics_as_text(servers):
    schema = httpx.get(servers["open"].url + "/openapi.json").json()
    ops = schema["paths"]
    for path in ("/rerank", "/v1/rerank", "/v2/rerank", "/score", "/v1/score"):
        responses = ops[path]["post"]["responses"]
        for code in ("400", "413", "422", "503", "504"):
            assert responses[code]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorResponse"
            }, (path, code)
        assert "security" not in ops[path]["post"]  # no key on this server
    assert list(ops["/metrics"]["get"]["responses"]["200"]["content"]) == ["text/plain"]
    docs = schema["components"]["schemas"]["RerankRequest"]["properties"]["documents"]
    assert docs["minItems"] == 1 and docs["maxItems"] == 1000


def test_root_redirects_to_docs_without_ui(servers):
    r = httpx.get(servers["open"].url + "/", follow_redirects=False)
    assert r.status_code in (302, 307) and r.headers["location"] == "/docs"


def test_models_retrieve(servers, tiny_qwen_dir):
    url = servers["open"].url
    name = httpx.get(url + "/v1/models").json()["data"][0]["id"]
    r = httpx.get(f"{url}/v1/models/{name}")
    assert r.status_code == 200 and r.json()["id"] == name and r.json()["object"] == "model"
    assert "no model 'other'" in error(httpx.get(url + "/v1/models/other"), 404)
