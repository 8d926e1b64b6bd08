"""Mount the UI in a FastAPI app (the API server calls this from ``create_app``).

The mounted page calls the API *in-process* through ``httpx.ASGITransport(app)``: no host,
port, proxy or TLS to guess, yet each call still runs through the server's full middleware
stack, auth included, with the key the user typed. Set ``RANKSERVE_UI_INDEX`` to a
``rankserve index`` directory to add the "Search documents" tab. The page itself (HTML, assets, Gradio's
queue) is exempt from the API key, because a browser cannot send a bearer token when it opens
``/ui``; when the server has a key, Gradio's login (the key is the password) guards the whole
page instead, so its queue and its upload route are not reachable without the key. Uploaded
files are deleted an hour after upload.
"""

from __future__ import annotations

import hmac
import logging
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger("rankserve.ui")

UI_PATH = "/ui"
IN_PROCESS_URL = "http://rankserve.internal"


def quiet_gradio() -> None:
    """No analytics or update checks: servers often run on closed networks."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("GRADIO_RUN_HISTORY", "False")


def mount(app: FastAPI, settings: Any = None, *, path: str = UI_PATH) -> None:
    """Mount the page at ``path``; a missing Gradio only logs a warning (the API still serves)."""
    quiet_gradio()
    try:
        import gradio as gr
        import httpx

        from rankserve.ui.api import RankServeAPI
        from rankserve.ui.app import CSS, build_blocks, theme
    except ImportError as exc:
        log.warning("web UI disabled: %s (pip install gradio)", exc)
        return

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)

    def make_api(key: str | None) -> RankServeAPI:
        return RankServeAPI(IN_PROCESS_URL, key, transport=transport, display_url="this server")

    exempt = getattr(app.state, "auth_exempt_prefixes", None)
    if isinstance(exempt, list) and path not in exempt:
        exempt.append(path)
    index = _index()
    blocks = build_blocks(make_api, server_label="this server 本服务器", index=index)
    # cap what the upload route accepts (without a key it is open to anyone who can reach /ui)
    key = getattr(settings, "api_key", None)
    gr.mount_gradio_app(
        app,
        blocks,
        path=path,
        # with a key, nothing of the page (its queue runs the model, its upload route writes files)
        # answers before Gradio's login, whose password is the API key
        auth=(lambda _user, password: hmac.compare_digest(password.encode(), key.encode())) if key else None,
        auth_message=LOGIN_MESSAGE if key else None,
        theme=theme(),
        css=CSS,
        footer_links=[],
        ssr_mode=False,
        show_error=False,
        max_file_size=UPLOAD_LIMIT,
    )
    log.info("web UI mounted at %s", path)


LOGIN_MESSAGE = "This server has an API key: enter it as the password (any user name)."

UPLOAD_LIMIT = "5mb"
"""Largest candidates file the page accepts (a .txt/.jsonl of a few thousand passages fits)."""


def _index() -> Any:
    """The document index named by ``$RANKSERVE_UI_INDEX``, if any; a bad one only loses the tab."""
    from rankserve.ui.search import INDEX_ENV, open_index

    try:
        return open_index(None)
    except Exception as exc:  # noqa: BLE001 - the API must come up regardless
        log.warning("web UI: no document search (%s=%s): %s", INDEX_ENV, os.environ.get(INDEX_ENV), exc)
        return None
