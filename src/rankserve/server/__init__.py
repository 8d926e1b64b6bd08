"""RankServe's HTTP server: FastAPI app factory, dialect schemas, batching glue, CLI command.

Attributes resolve lazily so that ``rankserve serve`` can check its port before importing
torch (a busy port must fail at once, not after seconds of imports).
"""

from __future__ import annotations

from typing import Any

__all__ = ["ServerSettings", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from rankserve.server.app import create_app

        return create_app
    if name == "ServerSettings":
        from rankserve.server.settings import ServerSettings

        return ServerSettings
    raise AttributeError(f"module 'rankserve.server' has no attribute {name!r}")
