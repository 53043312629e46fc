"""An order: status, progress, lines, its whole history, as it stood at any moment or
version, its exceptions and holds, and its audit proof against the latest checkpoint."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from orderlog.application import OrderLog, OrderNotFound
from orderlog.audit import AuditError
from orderlog.console.guard import guarded
from orderlog.console.roles import Permission, may
from orderlog.domain.instants import InstantError, format_instant, parse_instant
from orderlog.domain.moment import Moment
from orderlog.domain.status import Status
from orderlog.domain.text import is_whole_number
from orderlog.presentation import order_view, record_view
from orderlog.privacy.vault import MaskingVault, Vault
from orderlog.sources.signing import load_private_key, public_pem
from projections import exceptions as queue_view
from projections import holds

router = APIRouter()

PROGRESS = ("submitted", "confirmed", "paid", "shipped", "completed")
REACHED = {
    Status.PENDING_CONFIRMATION: 1,
    Status.PENDING_PAYMENT: 2,
    Status.PARTIALLY_PAID: 2,
    Status.PENDING_SHIPMENT: 3,
    Status.PARTIALLY_SHIPPED: 3,
    Status.SHIPPED: 4,
    Status.COMPLETED: 5,
}
"""How many steps of PROGRESS an order in each status has taken."""


@guarded(router, "GET", "/orders", Permission.READ_ORDERS)
def order_page(request: Request, id: str = "", as_of: str = "", version: str = "") -> Response:
    console = request.app.state.console
    if not id.strip():
        return console.page(request, "order.html", order=None, error=None, query="")
    try:
        moment = _moment(as_of, version)
    except (InstantError, ValueError) as error:
        return console.page(request, "order.html", 400, order=None, error=str(error), query=id)
    try:
        return _order(request, id.strip(), moment)
    except OrderNotFound as error:
        return console.page(request, "order.html", 404, order=None, error=str(error), query=id)


def _order(request: Request, order_id: str, moment: Moment) -> Response:
    console = request.app.state.console
    service: OrderLog = console.service
    vault = _vault_for(request, service.vault)
    state, records = service.order_with_history(order_id, moment)
    view = order_view(state, vault)
    steps = _progress(state.status, requires_confirmation=state.requires_confirmation)
    views = console.views
    return console.page(
        request,
        "order.html",
        order=view,
        steps=steps,
        history=[record_view(record, vault) for record in records],
        shown_version=state.version,
        versions=len(records),
        moment=moment,
        as_of=moment.as_of or "",
        exceptions=queue_view.queue(views, status="all", order_id=order_id) if queue_view.built(views) else [],
        holds=holds.report(views, order_id=order_id)["orders"] if holds.built(views) else [],
        checkpoint=(service.checkpoints(latest=1) or [None])[-1],
        error=None,
        query=order_id,
    )


@guarded(router, "GET", "/orders/proof", Permission.READ_ORDERS)
def proof(request: Request, id: str = "") -> Response:
    """The order's records with inclusion proofs against the latest checkpoint, and the proof
    that they are all of them: check it offline with `python -m orderlog.audit_verify`."""
    service: OrderLog = request.app.state.console.service
    kept = service.checkpoints(latest=1)
    if not kept:
        raise HTTPException(404, "No checkpoint yet: an auditor issues one on the Audit page.")
    try:
        found = service.prove(id, kept[-1], _log_public_key(request))
    except AuditError as error:
        raise HTTPException(404, str(error)) from None
    return _download(found, f"proof-{_file_safe(id)}.json")


@guarded(router, "GET", "/audit/checkpoint.json", Permission.READ_ORDERS)
def latest_checkpoint(request: Request) -> Response:
    """The latest checkpoint, to verify a proof against (auditors compare it with copies kept elsewhere)."""
    kept = request.app.state.console.service.checkpoints(latest=1)
    if not kept:
        raise HTTPException(404, "No checkpoint yet: an auditor issues one on the Audit page.")
    return _download(kept[-1], f"checkpoint-{kept[-1]['tree_size']}.json")


def _moment(as_of: str, version: str) -> Moment:
    if version.strip():
        if not is_whole_number(version.strip()) or int(version) < 1:
            raise ValueError(f"version {version!r}: give a whole number from 1")
        return Moment(version=int(version))
    if as_of.strip():
        return Moment(as_of=format_instant(parse_instant(as_of.strip())))
    return Moment()


def _vault_for(request: Request, vault: Vault) -> Vault:
    """Personal fields in clear for customer service; masked (or [erased]) for everyone else."""
    return vault if may(request.state.session.role, Permission.SEE_PERSONAL_DATA) else MaskingVault(vault)


def _progress(status: Status, *, requires_confirmation: bool) -> list[dict[str, Any]]:
    """The steps of PROGRESS and which are done; an order that needs no confirmation has no
    such step (it goes straight from submitted to payment)."""
    reached = REACHED.get(status, 1)  # cancelled: the page says so beside the bar
    return [
        {"name": name, "done": index < reached}
        for index, name in enumerate(PROGRESS)
        if name != "confirmed" or requires_confirmation
    ]


def _log_public_key(request: Request) -> str:
    signing_key = request.app.state.console.config.signing_key
    return public_pem(load_private_key(signing_key)).decode() if signing_key else ""


def _download(document: dict[str, Any], filename: str) -> Response:
    return Response(
        json.dumps(document, indent=2, ensure_ascii=False) + "\n",
        media_type="application/json",
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )


def _file_safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:100]
