"""Binding a listening socket with one clear error, shared by ``rankserve serve`` and ``rankserve ui``.

The commands bind before starting uvicorn (and before loading a model), so a busy port or a
bad host is one line on stderr and exit code 1 instead of a traceback.
"""

from __future__ import annotations

import errno
import socket

MIN_PORT = 1
MAX_PORT = 65535


class BindError(Exception):
    """The socket could not be bound; the message is one line for the user."""


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (not listening yet), inheritable for uvicorn.

    Raises :class:`BindError` naming the port and what to do when it is in use, or the host
    when it does not resolve.
    """
    if not MIN_PORT <= port <= MAX_PORT:  # the OS would silently use port % 65536
        raise BindError(f"port {port} is out of range: use {MIN_PORT} to {MAX_PORT}")
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise BindError(f"cannot listen on host {host!r}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise BindError(
                f"port {port} is already in use on {host}: stop the other program or choose another port with --port"
            ) from None
        raise BindError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock
