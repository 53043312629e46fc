"""`orderlog console`: the operations console, a web application (orderlog.console)."""

from __future__ import annotations

import ipaddress
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from orderlog.cli.common import UserError, cli, current_config, echo
from orderlog.domain.instants import shown
from orderlog.domain.text import escaped


@cli.command("console")
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="address to listen on (see README before changing)"
)
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="0: any free port (it says which)"
)
@click.option(
    "--insecure-http",
    is_flag=True,
    help="send the session cookie over plain HTTP to hosts other than localhost (never in production)",
)
def console_command(host: str, port: int, insecure_http: bool) -> None:
    """Serve the operations console: the exception queue, orders, holds, analytics, audit.

    Sign in with an account from `orderlog users add`. It listens on 127.0.0.1 unless --host
    says otherwise; put it behind a reverse proxy with TLS for a team (README).
    """
    import uvicorn

    from orderlog.console.app import create_app

    app = create_app(current_config(), secure_cookies=not insecure_http)
    app.state.console.open()  # a store or views that cannot be opened: one line, before serving
    listening = _listening_socket(host, port)
    address = listening.getsockname()[0]
    if not _loopback(address):
        echo(
            f"orderlog console: listening on {escaped(address)}, beyond this machine, over plain HTTP: passwords "
            "cross the network in clear, and browsers keep the Secure session cookie only over HTTPS; put a TLS "
            "proxy in front of it (README: The operations console, Security)",
            err=True,
        )
    server = _server(uvicorn.Config(app, log_level="warning", proxy_headers=True, forwarded_allow_ips="127.0.0.1"))
    with _stopping(server):
        echo(
            f"orderlog console on http://{_url_host(address)}:{listening.getsockname()[1]}/ (Ctrl-C stops it)", err=True
        )
        server.run(sockets=[listening])
    echo("orderlog console: stopped", err=True)


def _listening_socket(host: str, port: int) -> socket.socket:
    """The socket to serve on, bound here so that a busy port or an unknown host is one line."""
    name = host[1:-1] if host.startswith("[") and host.endswith("]") else host  # [::1], as in a URL
    try:
        family, kind, protocol, _name, address = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)[0]
        listening = socket.socket(family, kind, protocol)
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind(address)
        listening.listen(2048)
    except (OSError, UnicodeError, ValueError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise UserError(f"cannot listen on {shown(host)} port {port}: {reason}") from None
    return listening


def _loopback(address: str) -> bool:
    """Whether the bound address is this machine's own (127.0.0.0/8, ::1, ::ffff:127.x)."""
    try:
        ip = ipaddress.ip_address(address.partition("%")[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def _url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def _server(settings: Any) -> Any:
    """uvicorn's server, whose stop signals are handled by `_stopping` instead of by itself:
    uvicorn raises them again once it has stopped, which would end the process by the signal
    (Ctrl-C reported as aborted, SIGTERM as killed) after a clean stop."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return Server(settings)


@contextmanager
def _stopping(server: Any) -> Iterator[None]:
    """Ctrl-C and SIGTERM, from before the console says it serves, stop it after the requests
    under way (a second Ctrl-C at once), and it exits 0."""
    previous = {number: signal.signal(number, server.handle_exit) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
