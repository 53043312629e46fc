"""How a route says who may use it: `guarded(router, "GET", path, permission)`.

The permission is checked before the handler runs (no session: sign in first; the wrong
role: 403), and every state-changing request must carry its session's CSRF token. The
permission is also written on the route itself (`openapi_extra["permission"]`), so the
security tests walk the application's route table and try every route with every role.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request

from orderlog.console.roles import Permission, may
from orderlog.console.security import CSRF_FIELD, CSRF_HEADER, SESSION_COOKIE, Session, same_token

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PUBLIC = "public"


class NotSignedIn(Exception):
    """No live session: pages send the browser to sign in, other requests get 401."""


class Forbidden(Exception):
    """Signed in, but this role may not do this (403)."""


class BadCsrfToken(Exception):
    """A state-changing request without its session's CSRF token (403)."""


def current_session(request: Request) -> Session:
    """The request's live session, whose account may still sign in; NotSignedIn otherwise."""
    console = request.app.state.console
    session = console.sessions.find(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise NotSignedIn()
    if not console.account_enabled(session.name):
        console.sessions.end(session.token)
        raise NotSignedIn()
    request.state.session = session
    return session


async def check_csrf(request: Request, expected: str | None) -> None:
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        given = str((await request.form()).get(CSRF_FIELD) or "")
    if not same_token(expected, given):
        raise BadCsrfToken()


def _requirement(permission: Permission, method: str) -> Callable[..., Any]:
    async def required(request: Request) -> Session:
        session = current_session(request)
        if not may(session.role, permission):
            raise Forbidden()
        if method in STATE_CHANGING:
            await check_csrf(request, session.csrf)
        return session

    return required


def guarded(
    router: APIRouter, method: str, path: str, permission: Permission, **options: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Registers the decorated handler for `method path`, allowed to roles holding `permission`."""

    def register(handler: Callable[..., Any]) -> Callable[..., Any]:
        router.add_api_route(
            path,
            handler,
            methods=[method],
            dependencies=[Depends(_requirement(permission, method))],
            openapi_extra={"permission": str(permission)},
            include_in_schema=False,
            **options,
        )
        return handler

    return register


def public(
    router: APIRouter, method: str, path: str, **options: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A route anyone may reach (the sign-in page): marked so, for the route-table tests."""

    def register(handler: Callable[..., Any]) -> Callable[..., Any]:
        router.add_api_route(
            path, handler, methods=[method], openapi_extra={"permission": PUBLIC}, include_in_schema=False, **options
        )
        return handler

    return register


def flash(request: Request, message: str) -> None:
    """A message for the next page this session sees (after the redirect that follows an action)."""
    session: Session | None = getattr(request.state, "session", None)
    if session is not None:
        with session.lock:
            session.messages.append(message)


def take_messages(session: Session | None) -> list[str]:
    """The session's messages, each said once: taken by the next whole page that shows them."""
    if session is None:
        return []
    with session.lock:
        messages, session.messages = session.messages, []
    return messages
