"""`orderlog console`: the operations console, a web application (orderlog.console)."""

from __future__ import annotations

import ipaddress
import socket

import click

from orderlog.cli.common import UserError, cli, current_config, echo


@cli.command("console")
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="address to listen on (see README before changing)"
)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
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
    if not _loopback(host):
        echo(
            f"orderlog console: listening on {host}, beyond this machine, over plain HTTP: "
            "put a TLS proxy in front of it (README: The operations console, Security)",
            err=True,
        )
    echo(f"orderlog console on http://{host}:{port}/ (Ctrl-C stops it)", err=True)
    settings = uvicorn.Config(app, log_level="warning", proxy_headers=True, forwarded_allow_ips="127.0.0.1")
    uvicorn.Server(settings).run(sockets=[listening])


def _listening_socket(host: str, port: int) -> socket.socket:
    """The socket to serve on, bound here so that a busy port or an unknown host is one line."""
    try:
        family, kind, protocol, _name, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        listening = socket.socket(family, kind, protocol)
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind(address)
        listening.listen(2048)
    except OSError as error:
        raise UserError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    return listening


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"
