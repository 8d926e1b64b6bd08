"""With an API key, the mounted web UI writes nothing and runs nothing before Gradio's login (the key)."""

from __future__ import annotations

import httpx
import pytest

from tests.support.server import ServerProcess

pytest.importorskip("gradio")

KEY = "ui-upload-key"


@pytest.fixture(scope="module")
def keyed_ui(tiny_qwen_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ui-auth")
    uploads = tmp / "gradio-tmp"
    uploads.mkdir()
    proc = ServerProcess(
        tiny_qwen_dir, tmp / "server.log", "--api-key", KEY, "--ui", env={"GRADIO_TEMP_DIR": str(uploads)}
    )
    try:
        yield proc.wait_ready(), uploads
    finally:
        proc.stop()


def stored(folder) -> list:
    return [p for p in folder.rglob("*") if p.is_file()]


def test_upload_needs_the_key(keyed_ui):
    proc, uploads = keyed_ui
    files = {"files": ("docs.txt", b"one\ntwo\n" * 1000)}
    for _ in range(3):
        r = httpx.post(proc.url + "/ui/gradio_api/upload", files=files)
        assert r.status_code in (401, 403), r.text
    assert stored(uploads) == []
    page = httpx.get(proc.url + "/ui/", follow_redirects=True)
    assert "RankServe UI" not in page.text or "login" in page.text.lower()

    with httpx.Client(base_url=proc.url) as client:
        wrong = client.post("/ui/login", data={"username": "me", "password": "nope"})
        assert wrong.status_code in (400, 401)
        ok = client.post("/ui/login", data={"username": "me", "password": KEY})
        assert ok.status_code == 200, ok.text
        r = client.post("/ui/gradio_api/upload", files=files)
        assert r.status_code == 200, r.text
    assert len(stored(uploads)) == 1


def test_root_redirects_to_the_ui(keyed_ui):
    proc, _ = keyed_ui
    r = httpx.get(proc.url + "/", follow_redirects=False)
    assert r.status_code in (302, 307) and r.headers["location"] == "/ui"
