"""Signing in and out. The form carries a token from its own cookie (no session yet), wrong
passwords are throttled per name and per address, and a new session replaces any old one."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from orderlog.accounts import authenticate
from orderlog.console.guard import BadCsrfToken, guarded, public
from orderlog.console.roles import Permission
from orderlog.console.security import SESSION_COOKIE, SIGNIN_COOKIE, new_token, same_token

if TYPE_CHECKING:
    from orderlog.console.app import Console

router = APIRouter()
CHECKING = threading.BoundedSemaphore(2)
"""Passwords checked at once: each argon2id check takes 64 MiB and a core for a quarter of
a second, so a flood of sign-ins from many addresses waits here instead of taking the
machine's memory (the thread pool would otherwise run 40)."""
CHECK_QUEUE_SECONDS = 5


@public(router, "GET", "/signin")
def signin_page(request: Request, next: str = "/") -> Response:
    console = request.app.state.console
    token = new_token()
    response = console.page(request, "signin.html", next=_local(next), signin_token=token)
    _cookie(response, console, SIGNIN_COOKIE, token, max_age=3600)
    return response


@public(router, "POST", "/signin")
def signin(
    request: Request,
    name: str = Form(default="", max_length=200),
    password: str = Form(default="", max_length=4096),
    csrf: str = Form(default="", max_length=200),
    next: str = Form(default="/", max_length=2000),
) -> Response:
    console = request.app.state.console
    if not same_token(request.cookies.get(SIGNIN_COOKIE), csrf):
        raise BadCsrfToken()
    keys = [f"name:{name.strip().lower()}", f"address:{request.client.host if request.client else '-'}"]
    wait = console.throttle.admit(keys)
    if wait > 0:
        return _refused(request, next, csrf, f"Too many wrong passwords: try again in {int(wait) + 1} s.", wait)
    if not CHECKING.acquire(timeout=CHECK_QUEUE_SECONDS):
        return _refused(request, next, csrf, "Too many people are signing in at once: try again in a moment.", 2)
    try:
        account = authenticate(console.service, name.strip(), password)
    finally:
        CHECKING.release()
    if account is None:
        message = "Wrong name or password, or the account is disabled."
        return console.page(request, "signin.html", 401, next=_local(next), signin_token=csrf, error=message)
    console.throttle.succeeded(*keys)
    old = console.sessions.find(request.cookies.get(SESSION_COOKIE))
    if old is not None:
        console.sessions.end(old.token)
    session = console.sessions.start(account.name, account.role)
    response = RedirectResponse(_local(next), status_code=303)
    _cookie(response, console, SESSION_COOKIE, session.token)
    response.delete_cookie(SIGNIN_COOKIE, path="/")
    return response


def _refused(request: Request, next: str, csrf: str, message: str, wait: float) -> Response:
    console = request.app.state.console
    response = console.page(request, "signin.html", 429, next=_local(next), signin_token=csrf, error=message)
    response.headers["retry-after"] = str(int(wait) + 1)
    return response


@guarded(router, "POST", "/signout", Permission.SIGNED_IN)
def signout(request: Request) -> Response:
    """Ends the session (with its CSRF token, as every state change: no other site can sign a person out)."""
    request.app.state.console.sessions.end(request.state.session.token)
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _cookie(response: Response, console: Console, name: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        secure=console.secure_cookies,
        httponly=True,
        samesite="strict",
    )


def _local(target: str) -> str:
    """Where to go after signing in: a path on this console, never another site."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
