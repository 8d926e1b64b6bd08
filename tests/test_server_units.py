"""Server pieces that need no subprocess: presets, error messages, the app factory in-process
(several apps in one process, a broken checkpoint's NaN scores never leaving the server)."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from test_server_support import build_nan_model, metric_value

from rankserve import Reranker
from rankserve.errors import InvalidInputError
from rankserve.server import ServerSettings, create_app
from rankserve.server.errors import validation_message
from rankserve.server.presets import PresetFileError, load_presets, resolve_instruction, shipped_presets
from rankserve.server.schemas.simple import compute_ranks
from rankserve.server.schemas.vllm import pair_up


def test_compute_ranks():
    assert compute_ranks([0.924, 0.317, 0.881]) == [1, 3, 2]
    assert compute_ranks([0.1, 0.1, 0.2]) == [2, 3, 1]


def test_pair_up():
    assert pair_up(["q"], ["a", "b"]) == [("q", "a"), ("q", "b")]
    assert pair_up(["q", "r"], ["a", "b"]) == [("q", "a"), ("r", "b")]
    assert pair_up(["q", "r"], ["a", "b", "c"]) is None


def test_shipped_presets_cover_the_brief():
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
