"""The read models: projectors folding the log into views people work from.

A map:
- viewstore: the view database (SQLite beside the store, or PostgreSQL), tables declared
  once, tracking positions through the eventsourcing library's tracking recorders;
- projector: what every projector is (a fold of records into rows kept in memory between
  commits, with an event-time watermark for a clock);
- holds, cancellations, status, exceptions: one module per view (its tables, its fold, its
  report); the queue's rules themselves are domain (orderlog.domain.exceptions);
- sources: the store's log (embedded mode) or `orderlog.events` on Kafka, same records;
- runner: batches in, rows and positions out in one transaction: exactly-once effect;
- generations: blue/green tables, the atomic switch a replay ends with;
- service: the use cases the CLI calls (project, replay, open the views).
"""

from __future__ import annotations

from projections.cancellations import Cancellations
from projections.exceptions import Exceptions
from projections.holds import Holds
from projections.projector import Projector
from projections.status import OrderStatus

PROJECTORS: dict[str, type[Projector]] = {kind.name: kind for kind in (Holds, Cancellations, OrderStatus, Exceptions)}
"""Every projector by name, in the order `orderlog project` runs them."""


class UnknownProjector(ValueError):
    """A projector name that is not one of PROJECTORS."""


def chosen(names: tuple[str, ...] | list[str]) -> list[type[Projector]]:
    """The projectors named (all of them when none are), or UnknownProjector naming the choices."""
    unknown = [name for name in names if name not in PROJECTORS]
    if unknown:
        raise UnknownProjector(f"no projector named {', '.join(unknown)}: choose from {', '.join(PROJECTORS)}")
    return [PROJECTORS[name] for name in names] if names else list(PROJECTORS.values())
