"""The console application: one service, one view store, the pages, and the guards around them."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orderlog.application import OrderLog
from orderlog.bootstrap import open_orderlog
from orderlog.config import Config
from orderlog.console import routes
from orderlog.console.guard import BadCsrfToken, Forbidden, NotSignedIn, take_messages
from orderlog.console.reads import ReadCache
from orderlog.console.roles import Permission, may
from orderlog.console.security import HEADERS, Session, Sessions, Throttle
from orderlog.domain.account import Account
from orderlog.domain.money import format_money
from orderlog.domain.text import escaped
from projections.service import catch_up, open_views
from projections.viewstore import ViewStore

HERE = Path(__file__).parent
T = TypeVar("T")


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.finalize = _visible
    templates.env.filters["money"] = lambda amount, currency: (
        "-" if amount is None else format_money(int(amount), currency)
    )
    templates.env.filters["data"] = lambda value: json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    templates.env.filters["percent"] = lambda share: "-" if share is None else f"{100 * share:.1f}%"
    return templates


def _visible(value: Any) -> Any:
    """Every text a page shows, with the characters nobody can see (zero-width, bidirectional
    overrides, controls) written as `\\u200b`: an id stored before the contract refused
    them must not pass for another (`SO-1` and `SO-1\\u200b`). Markup (already HTML) is
    the templates' own."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return escaped(value, keep_layout=True)
    return value


@dataclass
class Console:
    """What every page works with: the service (reads and people's actions), the views,
    the sessions and the sign-in throttle."""

    config: Config
    secure_cookies: bool = True
    sessions: Sessions = field(default_factory=Sessions)
    throttle: Throttle = field(default_factory=Throttle)
    templates: Jinja2Templates = field(default_factory=_templates)
    _service: OrderLog | None = None
    _views: ViewStore | None = None
    _writing: threading.Lock = field(default_factory=threading.Lock)
    _reads: ReadCache = field(default_factory=ReadCache)

    def open(self) -> None:
        """Opens the store and the views (once: the CLI opens them before serving, so that a
        missing store is a one-line error, not a failed startup)."""
        if self._service is None:
            self._service = open_orderlog(self.config, writing=True)
        if self._views is None:
            self._views = open_views(self.config.views_location)

    def close(self) -> None:
        if self._views is not None:
            self._views.close()
        if self._service is not None:
            self._service.close()

    @property
    def service(self) -> OrderLog:
        assert self._service is not None, "the console is not open"
        return self._service

    @property
    def views(self) -> ViewStore:
        assert self._views is not None, "the console is not open"
        return self._views

    def account_enabled(self, name: str) -> bool:
        account = self.service.stream(Account, name)
        return account is not None and account.enabled

    def reading(self, request: Request, key: tuple[Any, ...], compute: Callable[[], T]) -> T:
        """What `compute` reads from the views, kept while the views stand still (see ReadCache);
        as they are now for a session that has just acted, so that it sees what it did."""
        session: Session | None = getattr(request.state, "session", None)
        fresh = session is not None and session.acted
        value = self._reads.get(self.views, key, compute, fresh=fresh)
        if fresh and session is not None:
            session.acted = False
        return value

    def acting(self) -> threading.Lock:
        """Held while recording an action and folding it into the views: one writer at a time."""
        return self._writing

    def catch_up(self, kinds: list[Any]) -> None:
        """Embedded mode: fold the action just recorded, so the next page shows it."""
        if not self.config.kafka:
            catch_up(self.views, self.service, kinds)

    def page(self, request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        """A whole page (or, for a template named `*_table.html`, a part of one that leaves the
        session's messages for the next whole page)."""
        session: Session | None = getattr(request.state, "session", None)
        messages = [] if template.endswith("_table.html") else take_messages(session)
        allowed = {str(permission) for permission in Permission if session and may(session.role, permission)}
        return self.templates.TemplateResponse(
            request,
            template,
            {"session": session, "allowed": allowed, "flash": messages, **context},
            status_code=status_code,
        )


def create_app(config: Config, *, secure_cookies: bool = True) -> FastAPI:
    console = Console(config, secure_cookies=secure_cookies)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        console.open()
        try:
            yield
        finally:
            console.close()

    app = FastAPI(title="orderlog console", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.console = console
    for router in routes.ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    _handle_refusals(app, console)

    app.add_middleware(SecurityHeaders)
    return app


class SecurityHeaders:
    """Adds HEADERS to every response that does not set them itself (static files may be
    cached). Plain ASGI rather than `@app.middleware("http")`, which costs every request a
    task and a stream of its own."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    if name not in headers and not (static and name == "cache-control"):
                        headers.append(name, value)
            await send(message)

        await self.app(scope, receive, with_headers)


def route_table(app: FastAPI) -> list[APIRoute]:
    """Every route of the application, routers included (the security tests try each one)."""
    found: list[APIRoute] = []
    pending: list[Any] = list(app.routes)
    while pending:
        route = pending.pop(0)
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):  # FastAPI >= 0.16x keeps included routers whole
            pending.extend(route.original_router.routes)
    return found


def _handle_refusals(app: FastAPI, console: Console) -> None:
    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, _error: NotSignedIn) -> Response:
        if request.method == "GET":
            wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/signin?next={_quote(wanted)}", status_code=303)
        return PlainTextResponse("sign in first", status_code=401)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, _error: Forbidden) -> Response:
        return console.page(request, "refused.html", 403, reason="Your role may not open this page or do this.")

    @app.exception_handler(BadCsrfToken)
    async def bad_token(request: Request, _error: BadCsrfToken) -> Response:
        reason = "The form was stale or did not come from this console: reload the page and try again."
        return console.page(request, "refused.html", 403, reason=reason)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> Response:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())[1:]) or "the request"
        reason = f"{where}: {first.get('msg', 'not valid')}"
        return console.page(request, "refused.html", 400, heading="Not understood", reason=reason)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        if error.status_code == 404:
            return console.page(request, "refused.html", 404, reason=str(error.detail or "Not found."))
        headers = dict(error.headers or {})
        if error.status_code == 405:  # Starlette names the first matching route's methods only
            headers["Allow"] = ", ".join(_methods_at(app, request))
        return PlainTextResponse(escaped(str(error.detail)), status_code=error.status_code, headers=headers)


def _methods_at(app: FastAPI, request: Request) -> list[str]:
    """Every method some route serves at the request's path."""
    return sorted(
        {method for route in route_table(app) if route.path_regex.match(request.url.path) for method in route.methods}
    )


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/")
