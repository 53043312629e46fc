"""`orderlog console`: the operations console, a web application (orderlog.console)."""

from __future__ import annotations

import click

from orderlog.cli.common import cli, current_config, echo


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

    Sign in with an account from `orderlog users add`. It listens on 127.0.0.1 only unless
    told otherwise; put it behind a reverse proxy with TLS for a team (README).
    """
    import uvicorn

    from orderlog.console.app import create_app

    app = create_app(current_config(), secure_cookies=not insecure_http)
    echo(f"orderlog console on http://{host}:{port}/ (Ctrl-C stops it)", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=True, forwarded_allow_ips="127.0.0.1")
