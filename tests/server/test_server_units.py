"""Server pieces that need no subprocess: presets, error messages, the app factory in-process
(several apps in one process, a broken checkpoint's NaN scores never leaving the server, engine
failures and a crashed batcher answered as JSON errors with the request id), CLI option checks
and the shared bind helper."""

from __future__ import annotations

import logging
import socket
import time

import pytest
import typer
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Histogram
from typer.testing import CliRunner

from rankserve import Reranker
from rankserve.engine.validation import check_texts
from rankserve.errors import InvalidInputError, InvalidTextError
from rankserve.netutil import BindError, bind
from rankserve.server import ServerSettings, create_app
from rankserve.server.cli import serve
from rankserve.server.errors import APIError, validation_message
from rankserve.server.presets import PresetFileError, load_presets, resolve_instruction, shipped_presets
from rankserve.server.schemas.simple import compute_ranks
from rankserve.server.schemas.vllm import pair_up
from rankserve.server.scoring import check_inputs, renamed
from rankserve.server.state import AppState
from tests.support.server import build_nan_model, build_vocab_mismatch_model, metric_value


def test_compute_ranks():
    assert compute_ranks([0.924, 0.317, 0.881]) == [1, 3, 2]
    assert compute_ranks([0.1, 0.1, 0.2]) == [2, 3, 1]


def test_pair_up():
    assert pair_up(["q"], ["a", "b"]) == [("q", "a"), ("q", "b")]
    assert pair_up(["q", "r"], ["a", "b"]) == [("q", "a"), ("r", "b")]
    assert pair_up(["q", "r"], ["a", "b", "c"]) is None


def test_shipped_presets_include_the_documented_set():
    presets = shipped_presets()
    assert {"default", "web_search", "legal_compliance", "technical_accuracy", "step_by_step"} <= set(presets)
    assert presets["default"] == "Given a web search query, retrieve relevant passages that answer the query"


def test_presets_files(tmp_path):
    (tmp_path / "p.toml").write_text('mine = "Find answers"\nlegal_compliance = "Overridden"\n')
    (tmp_path / "p.yaml").write_text("other: Judge code\n")
    merged = load_presets(tmp_path / "p.toml")
    assert merged["mine"] == "Find answers" and merged["legal_compliance"] == "Overridden"
    assert "web_search" in merged
    assert load_presets(tmp_path / "p.yaml")["other"] == "Judge code"
    (tmp_path / "bad.toml").write_text("x = 3\n")
    with pytest.raises(PresetFileError, match="'x'"):
        load_presets(tmp_path / "bad.toml")
    (tmp_path / "broken.yaml").write_text("a: [\n")
    with pytest.raises(PresetFileError, match="cannot parse"):
        load_presets(tmp_path / "broken.yaml")
    with pytest.raises(PresetFileError, match="cannot read"):
        load_presets(tmp_path / "missing.toml")


def test_resolve_instruction():
    presets = {"default": "D", "legal": "L"}
    assert resolve_instruction(presets, None, None) == "D"
    assert resolve_instruction(presets, None, "legal") == "L"
    assert resolve_instruction(presets, "free text", "legal") == "free text"
    assert resolve_instruction(presets, "  ", "legal") == "L"
    assert resolve_instruction({}, None, None) is None
    with pytest.raises(InvalidInputError, match="available presets: default, legal"):
        resolve_instruction(presets, None, "nope")


def test_validation_message_names_fields():
    status, message = validation_message(
        [{"type": "string_type", "loc": ("body", "texts", 1), "msg": "Input should be a valid string"}]
    )
    assert status == 422 and "texts[1]: Input should be a valid string" in message
    status, message = validation_message([{"type": "json_invalid", "loc": ("body", 3), "ctx": {"error": "bad"}}])
    assert status == 400 and "malformed JSON" in message


def test_two_apps_in_one_process_and_nan_guard(tiny_qwen_dir, tiny_reranker, tmp_path):
    """Metrics registries are per app; a NaN-producing checkpoint gets a 500, never a NaN score."""
    broken = Reranker.from_pretrained(str(build_nan_model(tiny_qwen_dir, tmp_path / "nan")), device="cpu")
    good_app = create_app(ServerSettings(model=str(tiny_qwen_dir)), reranker=tiny_reranker, mount_ui=False)
    nan_app = create_app(ServerSettings(model="broken"), reranker=broken, mount_ui=False)
    with TestClient(good_app) as good, TestClient(nan_app) as bad:
        r = good.post("/rerank", json={"query": "q", "texts": ["a", "b"]})
        assert r.status_code == 200
        want = [d.score for d in tiny_reranker.score("q", ["a", "b"])]
        assert max(abs(a - b) for a, b in zip(r.json()["scores"], want, strict=True)) <= 1e-5

        r = bad.post("/rerank", json={"query": "q", "texts": ["a", "b"]}, headers={"X-Request-Id": "nan-1"})
        assert r.status_code == 500, r.text
        assert "non-finite" in r.json()["error"]["message"]
        assert bad.post("/v1/score", json={"text_1": "q", "text_2": "a"}).status_code == 500
        assert bad.get("/health").json() == {"status": "healthy", "model": "broken"}

        good_metrics, bad_metrics = good.get("/metrics").text, bad.get("/metrics").text
        assert metric_value(good_metrics, "rankserve_requests_total", route="/rerank", status="200") == 1
        assert metric_value(good_metrics, "rankserve_requests_total", route="/rerank", status="500") == 0
        assert metric_value(bad_metrics, "rankserve_requests_total", route="/rerank", status="500") == 1


def test_nan_error_is_logged_with_request_id(tiny_qwen_dir, tmp_path, caplog):
    broken = Reranker.from_pretrained(str(build_nan_model(tiny_qwen_dir, tmp_path / "nan")), device="cpu")
    app = create_app(ServerSettings(model="broken"), reranker=broken, mount_ui=False)
    with TestClient(app) as client, caplog.at_level("ERROR", logger="rankserve"):
        client.post("/rerank", json={"query": "q", "texts": ["a"]}, headers={"X-Request-Id": "nan-42"})
    assert any("request nan-42" in r.getMessage() and "non-finite" in r.getMessage() for r in caplog.records)


def test_model_that_cannot_load(tmp_path):
    """Health says "failed" with the reason, scoring answers 503, and the CLI's callback fires."""
    (tmp_path / "not-a-model").mkdir()
    failures: list[BaseException] = []
    app = create_app(ServerSettings(model=str(tmp_path / "not-a-model")), mount_ui=False, on_load_error=failures.append)
    with TestClient(app) as client:
        deadline = time.monotonic() + 60
        while not failures and time.monotonic() < deadline:
            time.sleep(0.05)
        assert failures, "the load error callback never fired"
        r = client.get("/health")
        assert r.status_code == 503 and r.json()["status"] == "failed"
        assert "not-a-model" in r.json()["error"]
        r = client.post("/rerank", json={"query": "q", "texts": ["a"]})
        assert r.status_code == 503 and "failed to load" in r.json()["error"]["message"]


def _errors_logged(caplog, request_id: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR and request_id in r.getMessage()]


def test_unexpected_engine_failure_is_a_json_500_with_the_request_id(tiny_qwen_dir, tmp_path, caplog):
    """A checkpoint whose embeddings are smaller than its vocabulary makes torch raise IndexError
    (not an EngineError): the client still gets the JSON 500 with X-Request-Id, logged once."""
    model_dir = build_vocab_mismatch_model(tiny_qwen_dir, tmp_path / "vocab-mismatch")
    broken = Reranker.from_pretrained(str(model_dir), device="cpu")
    app = create_app(ServerSettings(model="broken"), reranker=broken, mount_ui=False)
    calls = [
        ("/rerank", {"query": "q", "texts": ["a", "b"]}),
        ("/v1/rerank", {"query": "q", "documents": ["a"]}),
        ("/v2/rerank", {"query": "q", "documents": ["a"]}),
        ("/score", {"text_1": "q", "text_2": ["a"]}),
    ]
    with TestClient(app, raise_server_exceptions=False) as client, caplog.at_level(logging.ERROR, logger="rankserve"):
        for i, (path, body) in enumerate(calls):
            rid = f"boom-{i}"
            r = client.post(path, json=body, headers={"X-Request-Id": rid})
            assert r.status_code == 500, r.text
            assert r.headers["x-request-id"] == rid
            assert r.json() == {
                "error": {
                    "message": "scoring failed: internal error (IndexError); see the server log",
                    "type": "internal_error",
                    "code": 500,
                }
            }
            logged = _errors_logged(caplog, f"request {rid}:")
            assert len(logged) == 1, [x.getMessage() for x in logged]
            assert "IndexError" in logged[0].getMessage() and logged[0].exc_info is not None
        assert client.get("/health").status_code == 200  # one broken batch does not take the server down
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "unexpected error" not in text  # the catch-all did not see it a second time


def test_unexpected_error_in_any_route_is_a_json_500_with_the_request_id(tiny_qwen_dir, tiny_reranker, caplog):
    app = create_app(ServerSettings(model=str(tiny_qwen_dir)), reranker=tiny_reranker, mount_ui=False)

    @app.get("/boom")
    async def boom() -> None:
        raise KeyError("a bug")

    with TestClient(app, raise_server_exceptions=False) as client, caplog.at_level(logging.ERROR, logger="rankserve"):
        r = client.get("/boom", headers={"X-Request-Id": "bug-7"})
        assert r.status_code == 500
        assert r.headers["x-request-id"] == "bug-7"
        assert r.json()["error"] == {
            "message": "internal server error (KeyError); see the server log",
            "type": "internal_error",
            "code": 500,
        }
        assert metric_value(client.get("/metrics").text, "rankserve_requests_total", route="/boom", status="500") == 1
    logged = _errors_logged(caplog, "bug-7")
    assert len(logged) == 1 and logged[0].exc_info is not None


def test_crashed_batcher_fails_requests_and_marks_the_server_unhealthy(tiny_qwen_dir, tiny_reranker, caplog):
    """A batcher worker that dies fails the request in flight at once (no hang until the timeout)
    and /health turns 503 so an orchestrator restarts the server."""
    app = create_app(
        ServerSettings(model=str(tiny_qwen_dir), request_timeout=30), reranker=tiny_reranker, mount_ui=False
    )
    # a misconfigured real metric (a label the batcher never sets) raises in the worker after its
    # first model call: a bug that kills the worker task
    state = app.state.rankserve
    state.metrics.batch_seconds = Histogram("bad_batch_seconds", "x", ["model"], registry=CollectorRegistry())
    with TestClient(app) as client, caplog.at_level(logging.ERROR, logger="rankserve"):
        assert client.get("/health").status_code == 200
        started = time.monotonic()
        r = client.post("/rerank", json={"query": "q", "texts": ["a", "b"]}, headers={"X-Request-Id": "crash-1"})
        assert time.monotonic() - started < 10
        assert r.status_code == 503, r.text
        assert r.headers["x-request-id"] == "crash-1"
        assert "worker crashed" in r.json()["error"]["message"]
        health = client.get("/health")
        assert health.status_code == 503
        assert health.json()["status"] == "failed" and "worker crashed" in health.json()["error"]
        r = client.post("/rerank", json={"query": "q", "texts": ["a"]})
        assert r.status_code == 503 and "unhealthy" in r.json()["error"]["message"]
        assert metric_value(client.get("/metrics").text, "rankserve_model_loaded") == 0
    assert any("worker crashed" in r.getMessage() and r.levelno == logging.CRITICAL for r in caplog.records)


def _command(function) -> typer.Typer:
    app = typer.Typer()
    app.command()(function)
    return app


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--port", "99999"], "Invalid value for '--port': Input should be less than or equal to 65535"),
        (["--port", "0"], "Invalid value for '--port': Input should be greater than or equal to 1"),
        (["--log-level", "verbose"], "'verbose' is not one of 'debug', 'info', 'warning', 'error'"),
        (["--quantize", "int4"], "--quantize must be none or fp8, not 'int4'"),
        (["--compile", "maybe"], "--compile must be auto, on or off, not 'maybe'"),
    ],
)
def test_serve_rejects_bad_options(args, fragment):
    """Usage errors (exit 2) before anything starts: no port 99999 & 0xFFFF, no traceback."""
    result = CliRunner().invoke(_command(serve), ["--model", "unused", *args])
    assert result.exit_code == 2, result.output
    assert fragment in _one_line(result.output)
    assert "Traceback" not in result.output and not isinstance(result.exception, ValueError)


def test_serve_log_level_and_port_bounds_accepted():
    command = typer.main.get_command(_command(serve))
    params = command.make_context("serve", ["--log-level", "WARNING", "--port", "65535"]).params
    assert params["log_level"].value == "warning" and params["port"] == 65535
    assert command.make_context("serve", ["--port", "1"]).params["port"] == 1


def _one_line(output: str) -> str:
    """Typer's boxed error message as one line of words."""
    return " ".join(output.replace("│", " ").split())


def test_ui_rejects_bad_port_and_reports_a_busy_one(monkeypatch):
    from rankserve.ui.cli import ui

    monkeypatch.delenv("RANKSERVE_UI_INDEX", raising=False)
    command = typer.main.get_command(_command(ui))
    for port in ("70000", "0"):  # parsed only: were it accepted, the UI would start serving
        with pytest.raises(typer.BadParameter, match="less than or equal to 65535|greater than or equal to 1"):
            command.make_context("ui", ["--port", port])
    assert command.make_context("ui", ["--port", "65535"]).params["port"] == 65535
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(_command(ui), ["--host", "127.0.0.1", "--port", str(port)])
    assert result.exit_code == 1, result.output
    assert f"error: port {port} is already in use on 127.0.0.1" in result.output and "--port" in result.output


def test_bind_helper():
    sock = bind("127.0.0.1", _free_port())
    try:
        port = sock.getsockname()[1]
        sock.listen()
        with pytest.raises(BindError, match=f"port {port} is already in use on 127.0.0.1: .*--port"):
            bind("127.0.0.1", port)
    finally:
        sock.close()
    with pytest.raises(BindError, match="port 99999 is out of range: use 1 to 65535"):
        bind("127.0.0.1", 99999)
    with pytest.raises(BindError, match="cannot listen on host 'no-such-host.invalid'"):
        bind("no-such-host.invalid", 8000)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("query_field", "docs_field", "queries", "docs", "message"),
    [
        ("query", "texts", ["q"], ["a", ""], "texts[1] is empty"),
        ("query", "documents", ["q"], ["a", "b", " \u00a0"], "documents[2] is empty"),
        ("text_1", "text_2", ["q", "r"], ["a", "\ufeff"], "text_2[1] is empty"),
        ("query", "texts", [" "], ["a"], "query and texts cannot be empty"),
        ("queries", "documents", ["q"], [], "queries and documents cannot be empty"),
    ],
)
def test_http_input_messages_are_the_engine_messages_renamed(query_field, docs_field, queries, docs, message):
    """One check, one wording: the 400's text is the engine error's with the dialect's field names."""
    state = AppState(ServerSettings(model="m"), {})
    with pytest.raises(InvalidTextError) as engine:
        check_texts(queries, docs)
    with pytest.raises(APIError) as http:
        check_inputs(state, query_field, docs_field, queries, docs)
    assert http.value.status == 400 and http.value.message == message
    assert http.value.__cause__ is not None and str(http.value.__cause__) == str(engine.value)
    assert message == renamed(engine.value, query_field, docs_field)
    if engine.value.index is not None:  # an item's message is the engine's, field renamed and nothing else
        assert message.replace(f"{docs_field}[{engine.value.index}]", f"document {engine.value.index}") == str(
            engine.value
        )


def test_too_many_documents_is_checked_after_the_text():
    state = AppState(ServerSettings(model="m", max_documents=2), {})
    with pytest.raises(APIError) as info:
        check_inputs(state, "query", "texts", ["q"], ["a", "b", "c"])
    assert info.value.status == 413 and info.value.message == "too many texts: 3 > limit 2 (--max-documents)"
    with pytest.raises(APIError, match=r"texts\[2\] is empty"):
        check_inputs(state, "query", "texts", ["q"], ["a", "b", ""])
