"""``/ui`` when the web UI's extra is not installed: one clear line instead of a bare 404."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from rankserve.extras import install_hint
from rankserve.server.errors import error_response

router = APIRouter(include_in_schema=False)

MESSAGE = f"the web UI is not installed: {install_hint('ui')}"


@router.get("/ui")
@router.get("/ui/{rest:path}")
async def ui_not_installed(rest: str = "") -> JSONResponse:
    return error_response(404, MESSAGE, "ui_not_installed")
