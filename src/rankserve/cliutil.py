"""What every ``rankserve`` command shares: one way to stop with a clear message.

Kept apart from :mod:`rankserve.cli` so that sub-commands (serve, ui, eval, bench...) can use it
without importing the top-level command, which imports them.
"""

from __future__ import annotations

import logging
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

err_console = Console(stderr=True, soft_wrap=True)  # messages with long paths stay on one line
log = logging.getLogger("rankserve.cli")


def print_error(message: str) -> None:
    """``error: <message>`` as one line on stderr (markup in ``message`` is printed as is)."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: <message>`` as one line on stderr and exit: users get a message, never a traceback.

    Exit status 2 is a usage error (a bad option or input), 1 a failure at run time.
    """
    print_error(message)
    log.debug("exiting with status %d: %s", code, message)
    raise typer.Exit(code) from None
