"""The web UI in a real browser: headless Debian Chromium driven by Python Playwright.

One ``rankserve serve`` process (tiny model, API key set, UI mounted at ``/ui``) serves the
module; a second process runs ``rankserve ui`` alone against a dead URL. Chromium is the
system package (or ``$RANKSERVE_CHROMIUM``) (no browser download) with background networking off: CI has no internet.
The first test saves a screenshot in its temporary folder, or where ``$RANKSERVE_SCREENSHOT`` says
(``scripts/screenshot.sh`` regenerates ``docs/ui-screenshot.png``, shown in docs/ui.md, that way).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.browser import find_chromium

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = find_chromium()
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
API_KEY = "ui-test-key"
SCREENSHOT_ENV = "RANKSERVE_SCREENSHOT"
QUERY = "fastest way to merge two sorted lists in Python"
DOCS = [
    "list(heapq.merge(a, b))  # lazy O(n + m) merge of sorted inputs",
    "sorted(a + b) is simple but O(n log n)",
    "Paris is the capital of France.",
    "Use two pointers i and j and append the smaller element each step.",
    "合并两个有序列表可以用双指针，时间复杂度 O(n+m)。",
]
TIMEOUT_MS = 60_000

pytestmark = pytest.mark.browser  # skipped by tests/conftest.py where no Chromium is found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
    env.pop("RANKSERVE_API_KEY", None)
    return env


def _rankserve(*args: str) -> list[str]:
    """The installed ``rankserve`` command when it has ``serve``/``ui``; else the module entry points."""
    from rankserve.cli import app

    names = {c.name for c in app.registered_commands}
    exe = shutil.which("rankserve")
    if exe and args[0] in names:
        return [exe, *args]
    if args[0] == "serve":
        return [sys.executable, "-m", "rankserve.server", *args[1:]]
    return [sys.executable, "-c", "from rankserve.cli import app; app()", *args]


class Process:
    """A subprocess with its output in a file, shown when it fails to come up."""

    def __init__(self, cmd: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self._out = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=subprocess.STDOUT, env={**_env(), **(env or {})})

    def wait_http(self, url: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"exited with {self.proc.returncode}:\n{self.log.read_text(errors='replace')}")
            try:
                if httpx.get(url, timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{url} not up after {timeout} s:\n{self.log.read_text(errors='replace')}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._out.close()


SEARCH_FILES = {
    "docker.md": "# Docker 内存\n\ndocker run --memory=512m 限制容器内存，超过上限时 OOM Killer 会结束进程。",
    "merge.txt": "heapq.merge(a, b) merges two sorted lists lazily in O(n + m).\n\nsorted(a + b) is O(n log n).",
    "pandas.txt": "pd.read_csv('data.csv', encoding='gbk') fixes UnicodeDecodeError for GBK files.",
    "paris.txt": "Paris is the capital of France; lists of sorted cafés are merged by guides every year.",
}


def _build_index(tmp: Path) -> Path:
    """A tiny ``rankserve index`` over a few files, for the Search documents tab."""
    from rankserve.pipeline.index import build_index

    docs = tmp / "docs"
    docs.mkdir()
    for name, text in SEARCH_FILES.items():
        (docs / name).write_text(text, encoding="utf-8")
    build_index(docs, tmp / "index")
    return tmp / "index"


@pytest.fixture(scope="module")
def processes(tiny_qwen_dir, tmp_path_factory):
    """Both processes start at once (they boot in parallel): ``rankserve serve`` with the UI
    mounted and an API key, and ``rankserve ui`` alone against a port where nothing listens."""
    tmp = tmp_path_factory.mktemp("ui-procs")
    index = _build_index(tmp)
    port, ui_port, dead = _free_port(), _free_port(), f"http://127.0.0.1:{_free_port()}"
    serve = _rankserve(
        "serve", "--model", str(tiny_qwen_dir), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
        "--api-key", API_KEY, "--max-length", "512", "--served-model-name", "tiny-random-reranker (test)",
    )  # fmt: skip
    procs = {
        "server": (
            Process(serve, tmp / "server.log", env={"RANKSERVE_UI_INDEX": str(index)}),
            f"http://127.0.0.1:{port}",
        ),
        "standalone": (Process(_rankserve("ui", "--api-url", dead, "--port", str(ui_port)), tmp / "ui.log"), dead),
    }
    procs["standalone"][0].url = f"http://127.0.0.1:{ui_port}"
    try:
        yield procs
    finally:
        for proc, _ in procs.values():
            proc.stop()


@pytest.fixture(scope="module")
def server(processes) -> str:
    """Base URL of the API server, once its model is loaded."""
    proc, url = processes["server"]
    proc.wait_http(url + "/health")
    return url


@pytest.fixture(scope="module")
def standalone(processes) -> tuple[str, str]:
    """(URL of the standalone UI, the dead API URL it was given)."""
    proc, dead = processes["standalone"]
    proc.wait_http(proc.url + "/")
    return proc.url, dead


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1360, "height": 900}, locale="zh-CN")
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    yield pg
    context.close()


def _open(page, url: str) -> None:
    """Open the page; on the keyed server, pass Gradio's login first (the API key is the password)."""
    page.goto(url)
    page.wait_for_selector("#rs-query textarea, input[type=password]")
    if not page.locator("#rs-query textarea").count():  # the login page (the UI has a password field too)
        page.locator("input[type=text]").first.fill("tester")
        page.locator("input[type=password]").fill(API_KEY)
        page.locator("input[type=password]").press("Enter")  # the button's label is localised
    page.wait_for_selector("#rs-query textarea")


def _fill(page, query: str, docs: list[str], key: str | None = None) -> None:
    page.locator("#rs-query textarea").fill(query)
    page.locator("#rs-candidates textarea").fill("\n".join(docs))
    if key is not None:
        page.locator("#rs-api-key input").fill(key)


def _rows(page, table: str) -> list[dict]:
    rows = page.locator(f"{table} tr[data-rank]")
    return [
        {
            "rank": int(r.get_attribute("data-rank")),
            "index": int(r.get_attribute("data-index")),
            "score": float(r.get_attribute("data-score")),
            "cls": r.get_attribute("class"),
            "bg": r.locator("td").first.evaluate("e => getComputedStyle(e).backgroundColor"),
        }
        for r in rows.all()
    ]


def test_ranking_in_api_order_with_top1_highlight(server, page):
    direct = httpx.post(
        server + "/v1/rerank",
        json={"query": QUERY, "documents": DOCS},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=60,
    )
    assert direct.status_code == 200, direct.text
    expected = direct.json()["results"]

    _open(page, server + "/ui")
    # Without the key, the page says at once that the server needs one.
    page.wait_for_selector('#rs-server-msg .rs-error[data-kind="unauthorized"]')
    _fill(page, QUERY, DOCS, key=API_KEY)
    page.locator("#rs-run").click()
    page.wait_for_selector("#rs-rank-table tr[data-rank]")
    rows = _rows(page, "#rs-rank-table")

    assert [r["index"] for r in rows] == [r["index"] for r in expected]
    assert [r["rank"] for r in rows] == list(range(1, len(DOCS) + 1))
    for row, want in zip(rows, expected):
        assert row["score"] == pytest.approx(want["relevance_score"], abs=1e-5)
    assert rows[0]["cls"].split() == ["rs-row", "top1"]
    assert all("top1" not in r["cls"] for r in rows[1:])
    assert rows[0]["bg"] != rows[1]["bg"], "the Top-1 row must look different"
    stats = page.locator("#rs-stats").inner_text()
    assert "ms" in stats and "Tokens" in stats
    assert page.locator("#rs-chart rect.rs-chart-bar").count() == len(DOCS)
    assert page.locator("#rs-message .rs-error").count() == 0


def test_example_screenshot_and_compare(server, page, tmp_path):
    """Load the built-in Chinese example, rank it, save a screenshot, then compare."""
    from rankserve.ui.examples import SOFTWARE_COPYRIGHT

    _open(page, server + "/ui")
    page.locator("#rs-api-key input").fill(API_KEY)
    page.get_by_text(SOFTWARE_COPYRIGHT.label, exact=True).click()
    page.wait_for_function(
        "q => document.querySelector('#rs-query textarea').value === q", arg=SOFTWARE_COPYRIGHT.query
    )
    page.locator("#rs-run").click()
    page.wait_for_selector("#rs-rank-table tr.top1")
    assert page.locator("#rs-rank-table tr[data-rank]").count() == len(SOFTWARE_COPYRIGHT.candidates)
    page.locator("#rs-server-msg").evaluate("e => e.scrollIntoView()")
    shot = Path(os.environ.get(SCREENSHOT_ENV) or tmp_path / "ui-screenshot.png")
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000

    page.get_by_role("tab", name="对比指令 Compare instructions").click()
    page.locator("#rs-compare").click()
    page.wait_for_selector("#rs-table-b tr[data-rank]")
    a, b = _rows(page, "#rs-table-a"), _rows(page, "#rs-table-b")
    assert sorted(r["index"] for r in a) == sorted(r["index"] for r in b) == list(range(len(a)))
    rank_a = {r["index"]: r["rank"] for r in a}
    moves = page.locator("#rs-table-b tr[data-rank] .rs-move")
    assert moves.count() == len(b)
    for row, move in zip(b, moves.all()):
        assert int(move.get_attribute("data-move")) == rank_a[row["index"]] - row["rank"]
    assert "Top-1" in page.locator("#rs-compare-summary").inner_text()


def test_search_documents_tab(server, page):
    _open(page, server + "/ui")
    page.locator("#rs-api-key input").fill(API_KEY)
    page.get_by_role("tab", name="搜索文档 Search documents").click()
    page.locator("#rs-search-query textarea, #rs-search-query input").first.fill("merge two sorted lists")
    page.locator("#rs-search").click()
    page.wait_for_selector("#rs-search-table tr.top1")
    rows = _rows(page, "#rs-search-table")
    sources = page.locator("#rs-search-table td.rs-source").all_inner_texts()
    assert 1 <= len(rows) <= 5 and len(sources) == len(rows)
    assert set(sources) <= set(SEARCH_FILES) and "merge.txt" in sources
    assert page.locator("#rs-search-table .rs-move").count() == len(rows)


def test_friendly_errors_empty_query_and_missing_key(server, page):
    _open(page, server + "/ui")
    _fill(page, "", DOCS, key=API_KEY)
    page.locator("#rs-run").click()
    box = page.wait_for_selector('#rs-message .rs-error[data-kind="empty_query"]')
    assert "Please enter a query" in box.inner_text() and "请输入查询" in box.inner_text()

    _fill(page, QUERY, DOCS, key="")
    page.locator("#rs-run").click()
    box = page.wait_for_selector('#rs-message .rs-error[data-kind="unauthorized"]')
    assert "API key" in box.inner_text()
    assert "Traceback" not in page.content()


def test_standalone_ui_reports_an_unreachable_server(standalone, page):
    url, dead = standalone
    _open(page, url + "/")
    assert dead in page.wait_for_selector('#rs-server-msg .rs-error[data-kind="unreachable"]').inner_text()
    _fill(page, QUERY, DOCS)
    page.locator("#rs-run").click()
    box = page.wait_for_selector('#rs-message .rs-error[data-kind="unreachable"]')
    assert dead in box.inner_text() and "Cannot reach the RankServe server" in box.inner_text()
