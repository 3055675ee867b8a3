"""Serving the app: a listening socket bound before the model loads, and uvicorn on it.

Binding first turns a port in use or an unknown host into one error line at once (uvicorn would
log it and exit), and ``--port 0`` gets a free port whose number :func:`listen` reports.
"""

from __future__ import annotations

import socket

from ..errors import InputError


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host:port`` (``port`` 0: a free one), for uvicorn to serve.

    Raises:
        InputError: an unknown host, or an address that cannot be bound (in use, not allowed).
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise InputError(f"--host {host!r}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)  # connections wait in the backlog until uvicorn accepts them
    except OSError as exc:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def address(sock: socket.socket) -> str:
    """``http://host:port/`` of a bound socket (IPv6 hosts in brackets)."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def run_server(app, sock: socket.socket, *, quiet: bool = False) -> None:
    """Serve ``app`` on ``sock`` with uvicorn until interrupted (Ctrl+C, SIGTERM)."""
    import uvicorn

    config = uvicorn.Config(
        app, log_level="warning" if quiet else "info", access_log=not quiet, timeout_keep_alive=5
    )
    uvicorn.Server(config).run(sockets=[sock])


__all__ = ["address", "listen", "run_server"]
