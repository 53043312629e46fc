"""Generations of a projector's tables, and the atomic switch that makes one live.

Readers query SQL views named after the tables (`holds_by_sku`); each points at the live
generation's table (`holds_by_sku_g3`). A replay fills a new generation while the live one
goes on serving, then one transaction points every SQL view at the new tables and marks
them live: readers see the old views or the new, never a half-built one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from projections.projector import Projector
from projections.viewstore import ViewStore

LOCK_ATTEMPTS = 600
LOCK_PAUSE_SECONDS = 0.05
"""A reader's query holds a view for as long as it runs: the switch waits up to 30 s for a gap."""


def live_generation(views: ViewStore, projector: type[Projector]) -> int | None:
    rows = views.query("SELECT generation FROM view_generations WHERE projector = ? AND live = 1", (projector.name,))
    return int(rows[0][0]) if rows else None


def ensure_live(views: ViewStore, projector: type[Projector]) -> int:
    """The live generation, created (empty, generation 1) the first time a projector runs;
    two processes starting at once create one, not two. A live generation built by an
    earlier release gains the indexes this one declares."""
    with views.transaction() as cursor:
        cursor.execute("SELECT generation FROM view_generations WHERE projector = ? AND live = 1", (projector.name,))
        found = cursor.fetchall()
        if found:
            generation = int(found[0][0])
            for table in projector.tables:  # indexes a newer release reads by (built once, then a no-op)
                for statement in table.create_indexes(generation):
                    cursor.execute(statement)
            return generation
        generation = _create(cursor, views, projector, until=None)
        _point_at(cursor, projector, generation)
    return generation


def new_generation(views: ViewStore, projector: type[Projector], *, until: str | None) -> int:
    """Fresh, empty tables for a rebuild, not yet seen by readers."""
    with views.transaction() as cursor:
        return _create(cursor, views, projector, until=until)


def switch(views: ViewStore, chosen: Sequence[tuple[type[Projector], int]]) -> None:
    """Make each (projector, generation) live, all in one transaction; then drop what it replaced."""
    replaced: list[tuple[type[Projector], int]] = []
    with views.transaction() as cursor:
        if views.postgres:
            _lock_views(cursor, views, [table.name for projector, _ in chosen for table in projector.tables])
        for projector, generation in chosen:
            cursor.execute(
                "SELECT generation FROM view_generations WHERE projector = ? AND live = 1", (projector.name,)
            )
            replaced += [(projector, int(row[0])) for row in cursor.fetchall() if int(row[0]) != generation]
            _point_at(cursor, projector, generation)
    for projector, generation in replaced:
        drop(views, projector, generation)


def _lock_views(cursor: Any, views: ViewStore, names: list[str]) -> None:
    """PostgreSQL: every SQL view about to be replaced, locked at once or not at all (NOWAIT,
    retried), so that the switch never waits for one while holding another that a reader
    waits for (a deadlock PostgreSQL would end by killing one of them)."""
    existing = [name for name in names if views.has(name)]
    if not existing:
        return
    for attempt in range(LOCK_ATTEMPTS):
        try:
            cursor.execute("SAVEPOINT lock_views")
            cursor.execute(f"LOCK TABLE {', '.join(existing)} IN ACCESS EXCLUSIVE MODE NOWAIT")
            cursor.execute("RELEASE SAVEPOINT lock_views")
            return
        except Exception as error:  # psycopg's LockNotAvailable (psycopg is an extra)
            if type(error).__name__ != "LockNotAvailable" or attempt == LOCK_ATTEMPTS - 1:
                raise
            cursor.execute("ROLLBACK TO SAVEPOINT lock_views")
            time.sleep(LOCK_PAUSE_SECONDS)


def _create(cursor: Any, views: ViewStore, projector: type[Projector], *, until: str | None) -> int:
    cursor.execute("SELECT COALESCE(MAX(generation), 0) FROM view_generations WHERE projector = ?", (projector.name,))
    generation = int(cursor.fetchall()[0][0]) + 1
    for table in projector.tables:
        cursor.execute(f"DROP TABLE IF EXISTS {table.physical(generation)}")
        cursor.execute(table.create(generation, postgres=views.postgres))
        for statement in table.create_indexes(generation):
            cursor.execute(statement)
    cursor.execute(
        "INSERT INTO view_generations (projector, generation, watermark, until, live) VALUES (?, ?, '', ?, 0)",
        (projector.name, generation, until),
    )
    return generation


def _point_at(cursor: Any, projector: type[Projector], generation: int) -> None:
    """Readers' SQL views now show `generation`'s tables (inside the caller's transaction)."""
    cursor.execute("UPDATE view_generations SET live = 0 WHERE projector = ? AND live = 1", (projector.name,))
    cursor.execute(
        "UPDATE view_generations SET live = 1 WHERE projector = ? AND generation = ?", (projector.name, generation)
    )
    for table in projector.tables:
        cursor.execute(f"DROP VIEW IF EXISTS {table.name}")
        cursor.execute(f"CREATE VIEW {table.name} AS SELECT * FROM {table.physical(generation)}")


def abandoned(views: ViewStore, projector: type[Projector]) -> list[int]:
    """Generations a replay began and never switched to (it was stopped or crashed)."""
    rows = views.query("SELECT generation FROM view_generations WHERE projector = ? AND live = 0", (projector.name,))
    return [int(row[0]) for row in rows]


def drop(views: ViewStore, projector: type[Projector], generation: int) -> None:
    with views.transaction() as cursor:
        for table in projector.tables:
            cursor.execute(f"DROP TABLE IF EXISTS {table.physical(generation)}")
        cursor.execute(  # kept, retired: a generation number is never used twice (its positions are tracked)
            "UPDATE view_generations SET live = -1 WHERE projector = ? AND generation = ?", (projector.name, generation)
        )


def watermark(views: ViewStore, projector: type[Projector], generation: int) -> str:
    rows = views.query(
        "SELECT watermark FROM view_generations WHERE projector = ? AND generation = ?", (projector.name, generation)
    )
    return str(rows[0][0]) if rows else ""


def until_of(views: ViewStore, projector: type[Projector], generation: int) -> str | None:
    rows = views.query(
        "SELECT until FROM view_generations WHERE projector = ? AND generation = ?", (projector.name, generation)
    )
    return rows[0][0] if rows else None
