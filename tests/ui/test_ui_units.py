"""The web UI's pieces without a browser: input parsing, error mapping, HTML, examples, mount.

The browser tests (``test_ui_browser.py``) cover the page end to end; these pin down each
friendly message and rendering rule exactly, and run in a second or two.
"""

from __future__ import annotations

import json
import re

import httpx
import pytest

from rankserve.ui import inputs, messages, render
from rankserve.ui.api import Ranking, RankServeAPI
from rankserve.ui.examples import EXAMPLES

# --- inputs ----------------------------------------------------------------------------------


def test_parse_lines_drops_blank_lines():
    assert inputs.parse_lines("  a \n\n b\n   \n") == ["a", "b"]
    assert inputs.parse_lines(None) == []


def test_read_upload_txt_and_jsonl(tmp_path):
    txt = tmp_path / "c.txt"
    txt.write_text("\ufeffone\n\ntwo\n", encoding="utf-8")
    assert inputs.read_upload(txt) == ["one", "two"]
    jl = tmp_path / "c.jsonl"
    jl.write_text('"plain"\n{"text": "multi\\nline"}\n\n{"content": "c"}\n', encoding="utf-8")
    assert inputs.read_upload(jl) == ["plain", "multi\nline", "c"]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [("{not json}\n", "line 1 is not valid JSON"), ('"ok"\n{"x": 1}\n', "line 2: expected a string or an object")],
)
def test_read_upload_bad_jsonl_names_the_line(tmp_path, content, fragment):
    jl = tmp_path / "bad.jsonl"
    jl.write_text(content, encoding="utf-8")
    with pytest.raises(messages.FriendlyError) as err:
        inputs.read_upload(jl)
    assert err.value.kind == "bad_file" and fragment in err.value.message


def test_collect_empty_query_and_no_candidates():
    with pytest.raises(messages.FriendlyError) as err:
        inputs.collect("   ", "a", None)
    assert err.value.kind == "empty_query" and "Please enter a query" in err.value.message
    with pytest.raises(messages.FriendlyError) as err:
        inputs.collect("q", "\n \n", None)
    assert err.value.kind == "no_candidates"
    assert inputs.collect(" q ", "a\nb", None) == ("q", ["a", "b"])


# --- API client: friendly errors --------------------------------------------------------------


def _api(handler, key: str | None = None) -> RankServeAPI:
    return RankServeAPI("http://server.test:8000", key, transport=httpx.MockTransport(handler))


def _error(status: int, message: str, type_: str, headers: dict | None = None):
    body = {"error": {"message": message, "type": type_, "code": status}}
    return lambda request: httpx.Response(status, json=body, headers=headers)


@pytest.mark.parametrize(
    ("handler", "key", "kind", "fragments"),
    [
        (_error(401, "missing API key", "authentication_error"), None, "unauthorized", ["enter it in the API key"]),
        (_error(401, "invalid API key", "authentication_error"), "bad", "unauthorized", ["was rejected"]),
        (
            _error(413, "too many texts: 3 > limit 2 (--max-documents)", "too_many_documents"),
            None,
            "too_many_documents",
            ["at most 2 per request", "you sent 3", "最多接受 2 个"],
        ),
        (_error(413, "request body is 99 bytes, over the limit", "request_too_large"), None, "too_large", ["3"]),
        (_error(503, "queue full", "server_busy", {"Retry-After": "7"}), None, "busy", ["retry in 7 seconds"]),
        (_error(503, "model is still loading; retry shortly", "model_loading"), None, "loading", ["still loading"]),
        (_error(504, "request took longer than 1 s", "timeout_error"), None, "server_timeout", ["longer than 1 s"]),
        (_error(400, "texts[1] is empty", "invalid_request_error"), None, "invalid_request", ["texts[1] is empty"]),
        (_error(500, "scoring failed: boom", "internal_error"), None, "server_error", ["HTTP 500", "boom"]),
        (lambda r: httpx.Response(404, text="<html>nope</html>"), None, "not_rankserve", ["server.test:8000"]),
    ],
)
async def test_http_errors_become_friendly(handler, key, kind, fragments):
    with pytest.raises(messages.FriendlyError) as err:
        await _api(handler, key).rerank("q", ["a", "b", "c"])
    assert err.value.kind == kind
    for fragment in fragments:
        assert fragment in err.value.message
    assert "Traceback" not in err.value.message


async def test_unreachable_names_the_url():
    def refuse(request):
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(messages.FriendlyError) as err:
        await _api(refuse).rerank("q", ["a"])
    assert err.value.kind == "unreachable" and "http://server.test:8000" in err.value.message


async def test_rerank_sends_the_key_and_fields_and_reads_the_answer():
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = {"model": "m", "scores": [0.2, 0.9, 0.5], "ranks": [3, 1, 2], "truncated": False}
        return httpx.Response(200, json={**body, "usage": {"prompt_tokens": 42}}, headers={"X-Request-Id": "r1"})

    ranking = await _api(answer, "k").rerank("q", ["a", "b", "c"], preset="legal_compliance", truncation="head")
    assert seen[0].headers["authorization"] == "Bearer k"
    assert json.loads(seen[0].content) == {
        "query": "q",
        "texts": ["a", "b", "c"],
        "preset": "legal_compliance",
        "truncation": "head",
    }
    assert ranking.order() == [1, 2, 0]
    assert ranking.prompt_tokens == 42 and ranking.truncated == [False] * 3 and ranking.request_id == "r1"


async def test_truncated_documents_are_found_one_by_one():
    def answer(request: httpx.Request) -> httpx.Response:
        texts = json.loads(request.content)["texts"]
        cut = any(len(t) > 10 for t in texts)
        n = len(texts)
        body = {"model": "m", "scores": [0.5] * n, "ranks": list(range(1, n + 1)), "truncated": cut}
        return httpx.Response(200, json={**body, "usage": {"prompt_tokens": 1}})

    docs = ["short", "x" * 50, "tiny", "y" * 20]
    ranking = await _api(answer).rerank("q", docs)
    assert ranking.any_truncated and ranking.truncated == [False, True, False, True]
    chunks = await _api(answer).rerank("q", docs, truncation="chunks")
    assert chunks.truncated == [False] * 4


# --- HTML ------------------------------------------------------------------------------------


def _ranking(scores, docs=None, truncated=None) -> Ranking:
    from rankserve.server.schemas.simple import compute_ranks

    docs = docs or [f"doc {i}" for i in range(len(scores))]
    return Ranking(
        documents=docs,
        scores=scores,
        ranks=compute_ranks(scores),
        any_truncated=any(truncated or []),
        truncated=truncated or [False] * len(scores),
        prompt_tokens=123,
        latency_s=0.0456,
        model="tiny",
    )


def _rows(table: str) -> list[tuple[int, int, str]]:
    return [
        (int(rank), int(index), cls)
        for cls, rank, index in re.findall(r'<tr class="([^"]+)" data-rank="(\d+)" data-index="(\d+)"', table)
    ]


def test_table_order_top1_scores_and_top_n():
    r = _ranking([0.1, 0.9, 0.5, 0.5])
    table = render.ranking_table(r, None, table_id="t")
    assert _rows(table) == [(1, 1, "rs-row top1"), (2, 2, "rs-row"), (3, 3, "rs-row"), (4, 0, "rs-row")]
    assert "<code>0.9000</code>" in table and 'style="width:90.0%"' in table
    assert len(_rows(render.ranking_table(r, 2, table_id="t"))) == 2


def test_table_escapes_previews_and_marks_truncation():
    long = "<script>alert(1)</script> " + "word " * 60
    r = _ranking([0.3, 0.7], docs=[long, "ok"], truncated=[True, False])
    table = render.ranking_table(r, None, table_id="t")
    assert "<script>" not in table and "&lt;script&gt;" in table
    summary = re.search(r"<summary>(.*?)</summary>", table).group(1)
    assert summary.endswith("…") and len(render.preview(long)) == render.PREVIEW_CHARS
    assert 'class="rs-full"' in table and table.count("截断 truncated") == 1
    assert 'dir="auto"' in table


def test_movement_arrows_against_another_ranking():
    a = _ranking([0.9, 0.5, 0.1])  # order 0, 1, 2
    b = _ranking([0.1, 0.5, 0.9])  # order 2, 1, 0
    table = render.ranking_table(b, None, table_id="b", before=a)
    moves = re.findall(r'data-index="(\d+)".*?data-move="(-?\d+)"', table)
    assert moves == [("2", "2"), ("1", "0"), ("0", "-2")]
    assert "▲2" in table and "▼2" in table and "＝" in table
    assert "Top-1 改变 changed: doc 0 → doc 2" in render.compare_summary(a, b)


def test_stats_and_chart():
    r = _ranking([0.25, 0.75], truncated=[True, False])
    stats = render.stats_html(r, None)
    assert "46 ms" in stats and "123" in stats and 'data-stat="truncated"' in stats
    chart = render.score_chart(r, None)
    assert chart.count("<rect") == 2 and 'class="rs-chart-bar top1"' in chart and "0.7500" in chart


def test_error_message_box():
    html = render.message_html(messages.unreachable("http://h:1"))
    assert 'data-kind="unreachable"' in html and "http://h:1" in html and 'role="alert"' in html
    assert render.message_html() == ""


# --- examples --------------------------------------------------------------------------------


def test_examples_cover_the_documented_scenarios():
    from rankserve.server.presets import shipped_presets

    assert len(EXAMPLES) == 5
    text = " ".join(e.query + " ".join(e.candidates) for e in EXAMPLES)
    assert "UnicodeDecodeError" in text and "如何申请软件著作权" in text and "merge two sorted lists" in text
    assert re.search(r"[\u3040-\u30ff]", text), "Japanese documents"
    assert re.search(r"[\u0600-\u06ff]", text), "Arabic query"
    for e in EXAMPLES:
        assert len(e.candidates) >= 4 and all("\n" not in c for c in e.candidates)
        assert e.preset in shipped_presets()


# --- mounted in the server: the page is public, scoring still needs the key -----------------


async def test_mounted_ui_keeps_the_api_key(tiny_reranker):
    from rankserve.server.app import create_app
    from rankserve.server.settings import ServerSettings
    from rankserve.ui.mount import IN_PROCESS_URL

    app = create_app(ServerSettings(api_key="s3cret"), reranker=tiny_reranker)
    assert "/ui" in app.state.auth_exempt_prefixes
    transport = httpx.ASGITransport(app=app)
    docs = ["heapq.merge(a, b)", "Paris is the capital of France", "sorted(a + b)"]
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=transport, base_url=IN_PROCESS_URL) as client:
            page = await client.get("/ui/")
            assert page.status_code == 200 and "<html" in page.text.lower()
            assert (await client.post("/v1/rerank", json={"query": "q", "documents": docs})).status_code == 401
            direct = await client.post(
                "/v1/rerank",
                json={"query": "merge sorted lists", "documents": docs},
                headers={"Authorization": "Bearer s3cret"},
            )
        api = RankServeAPI(IN_PROCESS_URL, None, transport=transport)
        with pytest.raises(messages.FriendlyError) as err:
            await api.rerank("merge sorted lists", docs)
        assert err.value.kind == "unauthorized"
        api.api_key = "s3cret"
        ranking = await api.rerank("merge sorted lists", docs)
    assert ranking.order() == [r["index"] for r in direct.json()["results"]]
    for r in direct.json()["results"]:
        assert ranking.scores[r["index"]] == pytest.approx(r["relevance_score"], abs=1e-6)


async def test_mounted_ui_caps_uploads(tiny_reranker):
    """Without a key /ui is open, so its upload route must not accept unbounded files from anyone."""
    from rankserve.server.app import create_app
    from rankserve.server.settings import ServerSettings
    from rankserve.ui.mount import IN_PROCESS_URL

    app = create_app(ServerSettings(), reranker=tiny_reranker)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=transport, base_url=IN_PROCESS_URL) as client:
            small = await client.post("/ui/gradio_api/upload", files={"files": ("ok.txt", b"one\ntwo\n")})
            big = await client.post("/ui/gradio_api/upload", files={"files": ("big.txt", b"x" * (6 * 2**20))})
    assert small.status_code == 200
    assert big.status_code == 413


# --- handlers: whatever fails, the page gets a message box -----------------------------------


async def test_handlers_turn_every_failure_into_a_message():
    from rankserve.ui.handlers import Handlers

    def refuse(request):
        raise httpx.ConnectError("connection refused", request=request)

    act = Handlers(lambda key: _api(refuse, key))
    args = ("a\nb", None, "", "default", "", 0, "head_tail", None)
    out = await act.run("q", *args)
    assert 'data-kind="unreachable"' in out[0] and out[1:] == ("", "", "")
    out = await act.run("  ", *args)
    assert 'data-kind="empty_query"' in out[0]
    loaded = await act.load_server(None)
    assert 'data-kind="unreachable"' in loaded[0] and all(isinstance(u, dict) for u in loaded[1:])

    def broken(key):
        raise RuntimeError("boom")

    out = await Handlers(broken).compare("q", "a", None, "", "default", "", "step_by_step", "", 0, "head", None)
    assert 'data-kind="unexpected"' in out[0] and "RuntimeError: boom" in out[0] and "Traceback" not in out[0]


async def test_truncation_markers_against_the_real_app(tiny_qwen_dir):
    """A short token budget: only the long candidate is marked truncated, found by the probe."""
    from rankserve import Reranker
    from rankserve.server.app import create_app
    from rankserve.server.settings import ServerSettings

    engine = Reranker.from_pretrained(str(tiny_qwen_dir), device="cpu", max_length=256)
    app = create_app(ServerSettings(max_length=256), reranker=engine, mount_ui=False)
    docs = ["short one", "word " * 600, "another short one"]
    async with app.router.lifespan_context(app):
        api = RankServeAPI("http://app", None, transport=httpx.ASGITransport(app=app))
        ranking = await api.rerank("q", docs, truncation="head")
        chunks = await api.rerank("q", docs, truncation="chunks")
    assert ranking.any_truncated and ranking.truncated == [False, True, False]
    assert chunks.truncated == [False, False, False]
    assert "截断 truncated" in render.ranking_table(ranking, None, table_id="t")
