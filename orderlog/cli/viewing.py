"""What the read-side commands share: opening the views, and output as text, JSON or CSV."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from orderlog.cli.common import current_config
from orderlog.store.location import StoreError, StoreLocation
from projections.service import open_views
from projections.viewstore import ViewStore

FORMAT_OPTIONS = (
    click.option("--json", "as_json", is_flag=True, help="JSON instead of text"),
    click.option("--csv", "as_csv", is_flag=True, help="CSV instead of text (the rows of the main table)"),
)


def output_formats(command: Callable[..., Any]) -> Callable[..., Any]:
    """--json and --csv, which every read-side command takes."""
    for option in reversed(FORMAT_OPTIONS):
        command = option(command)
    return command


@contextmanager
def views_opened(location: StoreLocation | None = None, *, reading: bool = False) -> Iterator[ViewStore]:
    """The configured views (or those at `location`) for this command; reading ones that were
    never built is a one-line error naming the command that builds them."""
    config = current_config()
    location = location or config.views_location
    if reading and location.kind == "sqlite" and not location.exists():
        raise StoreError(f"no views at {location.label} yet: run `orderlog project` first")
    views = open_views(location)
    try:
        yield views
    finally:
        views.close()


def require_view(views: ViewStore, view: str, projector: str) -> None:
    if not views.has(view):
        raise StoreError(
            f"the {projector} view has not been built in {views.location.label}: run `orderlog project {projector}`"
        )


def as_json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)
