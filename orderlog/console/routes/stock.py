"""Holds: per SKU held by open orders, on hand, available, oversold first; per order its holds."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from orderlog.console.guard import guarded
from orderlog.console.roles import Permission
from projections import holds
from projections.viewstore import ViewStore

router = APIRouter()
PAGE_SIZE = 500


@guarded(router, "GET", "/holds", Permission.READ_HOLDS)
def holds_page(request: Request, sku: str = "", order: str = "") -> Response:
    console = request.app.state.console
    built = holds.built(console.views)
    found = (
        console.reading(request, ("holds", sku, order), lambda: _read(console.views, sku or None, order or None))
        if built
        else {"skus": [], "orders": [], "more": 0}
    )
    return console.page(request, "holds.html", built=built, **found, sku=sku, order=order)


def _read(views: ViewStore, sku: str | None, order: str | None) -> dict[str, Any]:
    """The first PAGE_SIZE SKUs (the most urgent), read by the database, and how many more."""
    found = holds.report(views, sku=sku, order_id=order, limit=PAGE_SIZE)
    more = holds.sku_count(views) - len(found["skus"]) if sku is None and order is None else 0
    return {"skus": found["skus"], "orders": found["orders"], "more": max(0, more)}
