"""Sources, for admins: which upstream systems may publish which event types, with which
Ed25519 key; register one (its public key pasted as PEM) or revoke its key. Both are
recorded as events on the source's stream, as `orderlog sources add|revoke` records them,
and publishers pick the change up from the store."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from orderlog.audit_verify import load_public_key
from orderlog.console.guard import flash, guarded
from orderlog.console.roles import Permission
from orderlog.domain.contract import UPSTREAM_TYPES
from orderlog.sources.registry import SourceError, SourceRequest

router = APIRouter()
PEM_LIMIT = 4096
"""An Ed25519 public key in PEM is 113 characters; room for comments and line ends."""


@guarded(router, "GET", "/sources", Permission.MANAGE_SOURCES)
def sources_page(request: Request) -> Response:
    console = request.app.state.console
    return console.page(request, "sources.html", sources=console.service.sources(), types=UPSTREAM_TYPES)


@guarded(router, "POST", "/sources/add", Permission.MANAGE_SOURCES)
def add_source(
    request: Request,
    name: Annotated[str, Form(max_length=200)],
    public_key: Annotated[str, Form(max_length=PEM_LIMIT)],
    types: Annotated[list[str], Form()] = [],  # noqa: B006 (FastAPI copies a form default)
) -> Response:
    console = request.app.state.console
    pem = public_key.strip().replace("\r\n", "\n") + "\n"
    try:
        load_public_key(pem)
    except ValueError:
        flash(request, f"source {name.strip()!r}: the public key is not an Ed25519 public key in PEM form")
        return RedirectResponse("/sources", status_code=303)
    try:
        with console.acting():
            key, new = console.service.register_source(
                SourceRequest(name.strip(), types, pem), request.state.session.name
            )
        said = "may now publish" if new else "was already registered with this key; it may publish"
        flash(request, f"Source {name.strip()} (key {key.key_id}) {said} {', '.join(key.types)}.")
    except SourceError as error:
        flash(request, str(error))
    return RedirectResponse("/sources", status_code=303)


@guarded(router, "POST", "/sources/revoke", Permission.MANAGE_SOURCES)
def revoke_source(
    request: Request,
    name: Annotated[str, Form(max_length=200)],
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    console = request.app.state.console
    try:
        with console.acting():
            key = console.service.revoke_source(name.strip(), reason.strip(), request.state.session.name)
        flash(request, f"Source {name.strip()}: key {key.key_id} revoked; its events are refused from now on.")
    except SourceError as error:
        flash(request, str(error))
    return RedirectResponse("/sources", status_code=303)
