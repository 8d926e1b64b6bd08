"""``rankserve ui``: the web UI alone, talking to any running RankServe server over HTTP.

Registered by ``rankserve.cli`` as ``app.command("ui")(ui)``. ``--api-key`` is used by the UI's
own backend when the user leaves the key field empty; it is never sent to the browser.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

from rankserve.cliutil import fail
from rankserve.netutil import MAX_PORT, MIN_PORT, BindError, bind

DEFAULT_API_URL = "http://127.0.0.1:8000"


def normalize_url(url: str) -> str:
    """``host:8000`` -> ``http://host:8000``; no trailing slash."""
    url = url.strip().rstrip("/")
    return url if "://" in url else f"http://{url}"


def ui(
    api_url: str = typer.Option(DEFAULT_API_URL, "--api-url", help="Base URL of a running `rankserve serve`."),
    host: str = typer.Option("127.0.0.1", help="Interface for the UI (0.0.0.0 to share it on the network)."),
    port: int = typer.Option(7860, min=MIN_PORT, max=MAX_PORT, help="TCP port of the UI."),
    api_key: str | None = typer.Option(
        None, "--api-key", help="The server's API key, used when the user leaves the key field empty."
    ),
    index: Path | None = typer.Option(
        None, "--index", help="A `rankserve index` directory: adds the Search documents tab."
    ),
) -> None:
    """Serve the web UI for checking rankings, against a RankServe server at --api-url."""
    import logging

    from rankserve.extras import MissingExtraError, require

    try:
        require("gradio", "rankserve ui")
    except MissingExtraError as exc:
        fail(str(exc), 2)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    url = normalize_url(api_url)
    loaded = _load_index(index)
    try:
        sock = bind(host, port)
    except BindError as exc:
        fail(str(exc), 1)
    app = build_app(url, (api_key or "").strip() or None, loaded)
    import uvicorn

    shown = f"[{host}]" if ":" in host else host
    logging.getLogger("rankserve.ui").info("RankServe UI for %s on http://%s:%d", url, shown, port)
    config = uvicorn.Config(app, log_config=None, access_log=False, log_level="warning")
    uvicorn.Server(config).run(sockets=[sock])


def build_app(api_url: str, api_key: str | None = None, index: Any = None):  # -> FastAPI (imported lazily)
    """A FastAPI app with the page at ``/``, calling the server at ``api_url``."""
    from rankserve.ui.mount import quiet_gradio

    quiet_gradio()
    import gradio as gr
    from fastapi import FastAPI

    from rankserve.ui.api import RankServeAPI
    from rankserve.ui.app import CSS, build_blocks, theme

    def make_api(key: str | None) -> RankServeAPI:
        return RankServeAPI(api_url, key or api_key)

    app = FastAPI(title="RankServe UI", docs_url=None, redoc_url=None, openapi_url=None)
    blocks = build_blocks(make_api, server_label=api_url, index=index)
    return gr.mount_gradio_app(
        app, blocks, path="/", theme=theme(), css=CSS, footer_links=[], ssr_mode=False, show_error=False
    )


def _load_index(path: Path | None) -> Any:
    """The index (or $RANKSERVE_UI_INDEX), or one clear line and exit 2 when it cannot be read."""
    from rankserve.ui.search import INDEX_ENV, open_index

    try:
        return open_index(path)
    except (OSError, ValueError) as exc:
        fail(f"cannot open index {path or os.environ.get(INDEX_ENV)}: {exc}", 2)
