"""Audit: the latest checkpoints, the last verification and when it ran, sources and their
keys; auditors and admins issue a checkpoint or verify the whole log from here."""

from __future__ import annotations

import threading

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from orderlog.console.guard import flash, guarded
from orderlog.console.roles import Permission
from orderlog.sources.signing import load_private_key

router = APIRouter()
SHOWN_CHECKPOINTS = 20
VERIFYING = threading.Lock()
"""One verification at a time: each reads the whole log, and a second would only repeat it."""


@guarded(router, "GET", "/audit", Permission.READ_AUDIT)
def audit_page(request: Request) -> Response:
    console = request.app.state.console
    service = console.service
    return console.page(
        request,
        "audit.html",
        checkpoints=list(reversed(service.checkpoints(latest=SHOWN_CHECKPOINTS))),
        verification=service.last_verification(),
        sources=service.sources(),
        can_sign=console.config.signing_key is not None,
    )


@guarded(router, "POST", "/audit/checkpoint", Permission.MANAGE_AUDIT)
def issue_checkpoint(request: Request) -> Response:
    """Signs a checkpoint at the end of the log with the instance's key (ORDERLOG_SIGNING_KEY)."""
    console = request.app.state.console
    if console.config.signing_key is None:
        flash(request, "No signing key: start the console with ORDERLOG_SIGNING_KEY set to the instance's key.")
        return RedirectResponse("/audit", status_code=303)
    with console.acting():
        checkpoint = console.service.checkpoint(load_private_key(console.config.signing_key))
    flash(request, f"Checkpoint issued at tree size {checkpoint['tree_size']:,}: keep a copy outside this system.")
    return RedirectResponse("/audit", status_code=303)


@guarded(router, "POST", "/audit/verify", Permission.MANAGE_AUDIT)
def verify(request: Request) -> Response:
    """Recomputes every hash chain, the Merkle tree and the map against the kept checkpoints."""
    console = request.app.state.console
    if not VERIFYING.acquire(blocking=False):
        flash(request, "A verification is already running: its result shows here when it ends.")
        return RedirectResponse("/audit", status_code=303)
    try:
        result = console.service.verify([], None)
        console.service.remember_verification(result)
    finally:
        VERIFYING.release()
    flash(request, result.headline())
    return RedirectResponse("/audit", status_code=303)
