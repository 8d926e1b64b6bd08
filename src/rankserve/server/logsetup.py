"""Logging for the server process: one format on stderr and, with ``--log-file``, in a file.

Uvicorn's own loggers are routed through the same handlers; its access log is turned off
because :class:`~rankserve.server.middleware.RequestContextMiddleware` writes a richer line.

``--log-format json`` writes one JSON object per line instead (for ELK, Loki, Cloud Logging):
``time``, ``level``, ``logger``, ``message``, and for access-log lines every ``key=value`` of the
line as its own field (``request_id``, ``route``, ``status``, ``total_ms``...).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
LOG_FORMATS = ("text", "json")
ACCESS_LOGGER = "rankserve.access"
_FIELD = re.compile(r"(\w+)=(\S+)")


class JSONFormatter(logging.Formatter):
    """One JSON object per record; access-log lines also carry their fields as numbers/strings."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        out: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": message,
        }
        if record.name == ACCESS_LOGGER:
            for key, value in _FIELD.findall(message):
                out["request_id" if key == "id" else key] = _number(value)
            if message.endswith("(client disconnected)"):
                out["client_disconnected"] = True
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def _number(value: str) -> object:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def setup_logging(level: str = "info", log_file: Path | None = None, fmt: str = "text") -> None:
    formatter = JSONFormatter() if fmt == "json" else logging.Formatter(FORMAT)
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
