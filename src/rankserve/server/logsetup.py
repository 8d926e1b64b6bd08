"""Logging for the server process: one format on stderr and, with ``--log-file``, in a file.

Uvicorn's own loggers are routed through the same handlers; its access log is turned off
because :class:`~rankserve.server.middleware.RequestContextMiddleware` writes a richer line.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(level: str = "info", log_file: Path | None = None) -> None:
    formatter = logging.Formatter(FORMAT)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(formatter)
    root = logging.getLogger("rankserve")
    root.handlers[:] = handlers
    root.setLevel(level.upper())
    root.propagate = False
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers if name == "uvicorn" else []
        logger.setLevel(level.upper())
        logger.propagate = name != "uvicorn"
    logging.getLogger("uvicorn.access").disabled = True
