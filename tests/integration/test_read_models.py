"""The read models as a whole: however they are built (incrementally in several runs, in one
replay, as of a past moment, by a process killed again and again, on SQLite or PostgreSQL)
they are the same views; readers never see a half-built one; a batch applied twice, or
crashed inside its transaction, changes nothing; and no personal data reaches them.

(The same views from Kafka: tests/integration/test_read_models_kafka.py.)"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orderlog.domain.instants import format_instant, parse_instant
from orderlog.simulate import simulate
from projections import PROJECTORS, generations, projector
from projections.holds import Holds
from projections.runner import Runner
from projections.service import project, replay
from projections.sources import LogSource
from projections.viewstore import ViewStore
from tests import builders as b
from tests.conftest import postgres_answers
from tests.read_models import ALL, ListSource, Scene, batch_of, fresh_postgres_database, snapshot, views_files

EXAMPLES = settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
NAMES = sorted(PROJECTORS)


def a_scene(tmp_path: Path, views_url: str | None = None) -> Scene:
    """A fresh store for one hypothesis example (tmp_path is shared by the examples of a test)."""
    return Scene(tmp_path / uuid.uuid4().hex[:12], views_url)


@pytest.fixture
def postgres_views() -> Iterator[str]:
    """The URL of a PostgreSQL database of the test's own, for views."""
    reason = postgres_answers()
    if reason:
        pytest.skip(reason)
    yield from fresh_postgres_database()


# ------------------------------------------------------------ one set of views, however built


@EXAMPLES
@given(
    seed=st.integers(0, 10**6),
    orders=st.integers(1, 60),
    cuts=st.lists(st.floats(0, 1), max_size=4),
    batch=st.sampled_from([1, 3, 17, 5_000]),
    runs=st.lists(st.sets(st.sampled_from(NAMES), min_size=1), min_size=5, max_size=5),
    cache=st.sampled_from([3, projector.CACHE_ENTITIES]),
)
def test_incremental_runs_with_publishing_in_between_equal_one_full_replay(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    seed: int,
    orders: int,
    cuts: list[float],
    batch: int,
    runs: list[set[str]],
    cache: int,
) -> None:
    """Projectors run on their own or together, in batches of any size, their caches emptied
    between batches or not: the same views as one replay (in a fresh database, and in place)."""
    monkeypatch.setattr(projector, "CACHE_ENTITIES", cache)
    lines = list(simulate(orders, seed))
    scene = a_scene(tmp_path)
    try:
        done = 0
        for number, cut in enumerate([*sorted(int(cut * len(lines)) for cut in cuts), len(lines)]):
            scene.publish(*lines[done:cut], accepted=False)
            done = cut
            scene.project([PROJECTORS[name] for name in NAMES if name in runs[number]], batch=batch)
        scene.project(batch=batch)  # every projector up to date
        incremental = snapshot(scene.views)

        rebuilt = scene.open_views("rebuilt.views.db")
        replay(rebuilt, ALL, LogSource(scene.app.log_reader))
        assert snapshot(rebuilt) == incremental
        rebuilt.close()

        replay(scene.views, ALL, LogSource(scene.app.log_reader, batch=batch))  # blue/green, in place
        assert snapshot(scene.views) == incremental
    finally:
        scene.close()


@EXAMPLES
@given(seed=st.integers(0, 10**6), orders=st.integers(1, 60), moment=st.floats(0, 1), between=st.booleans())
def test_replay_until_equals_the_views_built_from_only_the_records_up_to_then(
    tmp_path: Path, seed: int, orders: int, moment: float, between: bool
) -> None:
    scene = a_scene(tmp_path)
    try:
        scene.publish(*simulate(orders, seed), accepted=False)
        records = scene.records()
        times = sorted(record.occurred_at for _position, record in records)
        until = times[int(moment * (len(times) - 1))]  # a moment something happened: included
        if between:
            until = format_instant(parse_instant(until) + timedelta(milliseconds=1))  # a moment in between
        as_of = scene.open_views("as-of.views.db")
        replay(as_of, ALL, LogSource(scene.app.log_reader, batch=11), until=until)

        expected = scene.open_views("expected.views.db")
        up_to_then = [(position, record) for position, record in records if record.occurred_at <= until]
        project(expected, ALL, ListSource(up_to_then), follow=False)
        assert snapshot(as_of) == snapshot(expected)
        built_until = {generations.until_of(as_of, kind, generations.live_generation(as_of, kind) or 0) for kind in ALL}
        assert built_until == {until}
        as_of.close()
        expected.close()
    finally:
        scene.close()


def test_views_on_postgresql_equal_views_on_sqlite(tmp_path: Path, postgres_views: str) -> None:
    lines = list(simulate(80, 17))
    on_postgres = Scene(tmp_path, views_url=postgres_views)
    try:
        on_postgres.publish(*lines[: len(lines) // 2], accepted=False)
        on_postgres.project(batch=13)
        on_postgres.publish(*lines[len(lines) // 2 :], accepted=False)
        on_postgres.project(batch=13)
        on_sqlite = on_postgres.open_views("sqlite.views.db")
        replay(on_sqlite, ALL, LogSource(on_postgres.app.log_reader))
        assert snapshot(on_postgres.views) == snapshot(on_sqlite)
        on_sqlite.close()
    finally:
        on_postgres.close()


def test_views_on_postgresql_live_in_the_schema_the_url_names(tmp_path: Path, postgres_views: str) -> None:
    """(They once landed in the connection's search path, public, beside everyone else's.)"""
    scene = Scene(tmp_path, views_url=f"{postgres_views}?schema=views_here")
    try:
        scene.publish(b.submitted("SO-1"))
        scene.project()
        tables = {
            row[0]
            for row in scene.views.query(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'views_here'"
            )
        }
        assert {"holds_by_sku", "holds_by_sku_g1", "order_status", "view_generations"} <= tables
        assert scene.views.has("holds_by_sku")
    finally:
        scene.close()


# ------------------------------------------------------------ no personal data


@settings(EXAMPLES, max_examples=3)
@given(seed=st.integers(0, 10**6), orders=st.integers(5, 40))
def test_the_view_database_holds_no_personal_data(tmp_path: Path, seed: int, orders: int) -> None:
    lines = [
        *simulate(orders, seed),
        b.line(b.submitted("SO-PII", at="2026-03-01T10:00:00Z")),  # Zhang Wei, 13800138000
        b.line(b.address_corrected("SO-PII", {**b.ADDRESS, "name": "Li Na", "phone": "13900139000"})),
    ]
    scene = a_scene(tmp_path)
    try:
        scene.publish(*lines, accepted=False)
        scene.project(batch=50)
        replay(scene.views, ALL, LogSource(scene.app.log_reader))
        ciphertexts = [
            record.data["shipping_address"]["encrypted"]
            for _position, record in scene.records()
            if "shipping_address" in record.data
        ]
        assert scene.config.views_location.path is not None
        path = scene.config.views_location.path
    finally:
        scene.close()

    personal = {"Zhang Wei", "13800138000", "88 Nanjing Road", "Li Na", "13900139000"}
    for address in addresses(lines):
        personal |= {address["name"], address["line1"]}
        if len(address["phone"]) == 11:  # not the simulator's invalid phones ("12345" could be anywhere)
            personal.add(address["phone"])
    assert ciphertexts
    stored = b"".join(file.read_bytes() for file in views_files(path))
    assert stored
    found = [value for value in [*personal, *ciphertexts] if value.encode() in stored]
    assert found == []


def addresses(lines: list[str]) -> Iterator[dict[str, str]]:
    """The shipping addresses in upstream lines (the simulator's malformed lines included)."""
    for text in lines:
        try:
            envelope = json.loads(text)
            address = envelope["data"]["shipping_address"]
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(address, dict) and {"name", "phone", "line1"} <= set(address):
            yield address


# ------------------------------------------------------------ exactly-once effect


def test_a_batch_applied_twice_changes_nothing(tmp_path: Path) -> None:
    scene = Scene(tmp_path)
    scene.publish(*simulate(40, 3), accepted=False)
    records = scene.records()
    first, rest = records[: len(records) // 2], records[len(records) // 2 :]

    runner = Runner(scene.views, ALL)
    runner.apply(batch_of(first))
    once = snapshot(scene.views)
    assert once["holds_by_order"] and once["order_timeline"]
    runner.apply(batch_of(first))  # redelivered to the runner that applied it
    assert snapshot(scene.views) == once
    Runner(scene.views, ALL).apply(batch_of(first))  # redelivered to a runner started afresh
    assert snapshot(scene.views) == once

    runner.apply(batch_of(rest))
    clean = scene.open_views("clean.views.db")
    replay(clean, ALL, LogSource(scene.app.log_reader))
    assert snapshot(scene.views) == snapshot(clean)
    scene.close()


def test_a_followers_lag_reports_count_what_this_run_has_folded(tmp_path: Path) -> None:
    scene = Scene(tmp_path)
    scene.publish(*simulate(30, 8), accepted=False)
    total = len(scene.records())
    heard: list[list[Any]] = []

    project(scene.views, ALL, LogSource(scene.app.log_reader, batch=50), follow=False, lags=heard.append, lag_every=0)

    assert len(heard) == -(-total // 50)  # one report per batch at lag_every=0
    holds = [next(report for report in reports if report.name == "holds") for reports in heard]
    assert [report.folded for report in holds] == [min(50 * n, total) for n in range(1, len(heard) + 1)]
    assert holds[-1].lag == 0 and holds[0].lag == total - 50
    scene.close()


def test_a_follower_idle_after_catching_up_still_reports_its_lag(tmp_path: Path) -> None:
    scene = Scene(tmp_path)
    scene.publish(*simulate(10, 9), accepted=False)
    total = len(scene.records())
    heard: list[list[Any]] = []

    deadline = time.monotonic() + 30

    def enough() -> bool:
        return len(heard) >= 5 or time.monotonic() > deadline

    project(
        scene.views,
        ALL,
        LogSource(scene.app.log_reader),
        follow=True,
        should_stop=enough,
        lags=heard.append,
        lag_every=0,
    )

    assert len(heard) >= 5
    idle = heard[-1]  # nothing new came after the first batch: these came from the empty ones
    assert {report.name: (report.folded, report.lag) for report in idle} == dict.fromkeys(PROJECTORS, (total, 0))
    scene.close()


def test_a_batch_another_runner_applied_first_is_not_applied_again(tmp_path: Path) -> None:
    scene = Scene(tmp_path)
    scene.publish(*simulate(40, 4), accepted=False)
    records = scene.records()
    first, rest = records[: len(records) // 2], records[len(records) // 2 :]
    ours, theirs = Runner(scene.views, ALL), Runner(scene.views, ALL)
    assert ours.start("log") == theirs.start("log") == 0  # both know where they stand

    theirs.apply(batch_of(first))
    applied = snapshot(scene.views)
    ours.apply(batch_of(first))  # PositionTaken: handled, not raised, nothing folded twice
    assert snapshot(scene.views) == applied
    assert ours.start("log") == first[-1][0]  # it moved on to where the other one got

    ours.apply(batch_of(rest))
    clean = scene.open_views("clean.views.db")
    replay(clean, ALL, LogSource(scene.app.log_reader))
    assert snapshot(scene.views) == snapshot(clean)
    scene.close()


def test_a_batch_overlapping_what_another_runner_applied_is_not_folded_twice(tmp_path: Path) -> None:
    scene = Scene(tmp_path)
    scene.publish(b.submitted("SO-0", lines=[("SKU-A", 10, 100)], at="2026-03-01T10:00:00Z"))
    scene.project([Holds])  # the views hold rows already: a runner reads what it has not seen from them
    scene.publish(*(b.submitted(f"SO-{n}", lines=[("SKU-A", n, 100)], at="2026-03-01T10:00:00Z") for n in (1, 2, 3)))
    new = scene.records()[1:]
    ours, theirs = Runner(scene.views, [Holds]), Runner(scene.views, [Holds])
    ours.start("log")  # both know where they stand, as two `project --follow` do
    theirs.start("log")

    theirs.apply(batch_of(new[:2]))  # SO-1, SO-2
    ours.apply(batch_of(new))  # SO-1, SO-2 again, and SO-3: it was read before the other one's commit
    ours.run(LogSource(scene.app.log_reader), follow=False)

    assert scene.views.query("SELECT held FROM holds_by_sku") == [(16,)]
    scene.close()


def test_a_runner_handed_records_another_runner_began_on_reads_their_rows_from_the_views(tmp_path: Path) -> None:
    """A Kafka rebalance moves a partition, and its orders' rows, from one process to another:
    what the new holder kept in memory (here: "the tables are empty", from when it started)
    no longer holds, and the batch says so."""
    scene = Scene(tmp_path)
    scene.publish(*simulate(60, 11), accepted=False)
    records = scene.records()
    first, rest = records[: len(records) // 2], records[len(records) // 2 :]
    ours, theirs = Runner(scene.views, ALL), Runner(scene.views, ALL)  # both start on empty views

    theirs.apply(batch_of(first))
    ours.apply(dataclasses.replace(batch_of(rest), reassigned=True))

    clean = scene.open_views("clean.views.db")
    replay(clean, ALL, LogSource(scene.app.log_reader))
    assert snapshot(scene.views) == snapshot(clean)
    scene.close()


def test_a_crash_inside_the_commit_leaves_views_and_positions_as_they_were(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scene = Scene(tmp_path)
    scene.publish(*simulate(40, 5), accepted=False)
    records = scene.records()
    first, rest = records[: len(records) // 2], records[len(records) // 2 :]
    runner = Runner(scene.views, ALL)
    runner.apply(batch_of(first))
    before = snapshot(scene.views)
    positions = {kind.name: scene.views.position(f"{kind.name}/g1/log") for kind in ALL}

    calls: list[int] = []
    recorded = ViewStore.record_positions

    def crash_at_the_second_projector(store: ViewStore, cursor: Any, tracked: Any, *read_from: Any) -> None:
        calls.append(1)
        if len(calls) == 2:  # the first projector's rows and positions are written in the transaction
            raise RuntimeError("the process died here")
        recorded(store, cursor, tracked, *read_from)

    monkeypatch.setattr(ViewStore, "record_positions", crash_at_the_second_projector)
    with pytest.raises(RuntimeError):
        runner.apply(batch_of(rest))
    monkeypatch.undo()
    assert snapshot(scene.views) == before
    assert {kind.name: scene.views.position(f"{kind.name}/g1/log") for kind in ALL} == positions

    runner.apply(batch_of(rest))  # read again, as a restarted process would
    clean = scene.open_views("clean.views.db")
    replay(clean, ALL, LogSource(scene.app.log_reader))
    assert snapshot(scene.views) == snapshot(clean)
    scene.close()


# ------------------------------------------------------------ processes


def orderlog_command(scene: Scene, *args: str) -> list[str]:
    return [sys.executable, "-m", "orderlog", "--store", scene.config.store_url, *args]


def environment(batch: int) -> dict[str, str]:
    """The caller's environment without its ORDERLOG_* settings, and small projector batches."""
    return {
        **{name: value for name, value in os.environ.items() if not name.startswith("ORDERLOG_")},
        "ORDERLOG_PROJECT_BATCH": str(batch),
    }


@pytest.mark.parametrize("batch", [5, 7])
def test_a_run_that_stops_once_drained_also_folds_what_its_queue_asked_the_engine_to_record(
    tmp_path: Path, batch: int
) -> None:
    """The queue's payment-timeout cancellations are recorded when it has caught up, which may
    be after the source's last batch (600 records, a batch of 5 ends exactly at the head)."""
    scene = Scene(tmp_path)
    scene.publish(*simulate(150, 23), accepted=False)
    before = len(scene.records())
    env = {**environment(batch=batch), "ORDERLOG_MASTER_KEY_FILE": str(scene.config.key_file())}
    run = subprocess.run(
        orderlog_command(scene, "project", "--once"), env=env, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
    assert len(scene.records()) > before  # the queue asked for cancellations
    assert run.stdout.count("lag 0") == len(ALL), run.stdout
    scene.close()


KILLS = 6


def test_killing_a_projector_mid_run_again_and_again_leaves_exactly_the_views_of_a_clean_replay(
    tmp_path: Path,
) -> None:
    """Each run is killed (SIGKILL) a random few milliseconds after it has committed a batch of
    its own: inside a batch, between batches, inside a commit. The runs that follow resume."""
    scene = Scene(tmp_path)
    scene.publish(*simulate(150, 23), accepted=False)
    head = scene.records()[-1][0]
    env = {**environment(batch=5), "ORDERLOG_MASTER_KEY_FILE": str(scene.config.key_file())}

    def position() -> int:
        return scene.views.position("holds/g1/log") or 0

    rng = random.Random(20261124)
    reached = [0]
    for _kill in range(KILLS):
        process = subprocess.Popen(orderlog_command(scene, "project", "--once"), env=env, stdout=subprocess.DEVNULL)
        waited = time.monotonic() + 30
        while position() == reached[-1]:  # until this run has committed something
            assert process.poll() is None and time.monotonic() < waited, "the projector never committed"
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.03))
        process.send_signal(signal.SIGKILL)
        process.wait()
        reached.append(position())
    assert reached == sorted(set(reached)) and reached[-1] < head, (reached, head)  # every kill landed mid-run

    final = subprocess.run(
        orderlog_command(scene, "project", "--once"), env=env, capture_output=True, text=True, check=False
    )
    assert final.returncode == 0, final.stderr
    assert "lag 0" in final.stdout

    replayed = scene.open_views("replayed.views.db")
    replay(replayed, ALL, LogSource(scene.app.log_reader))
    assert snapshot(scene.views) == snapshot(replayed)
    scene.close()


OBSERVE = (
    "SELECT (SELECT COUNT(*) FROM order_status), (SELECT COALESCE(SUM(held), 0) FROM holds_by_sku), "
    "(SELECT COUNT(*) FROM cancellation_orders), (SELECT COUNT(*) FROM order_timeline)"
)
"""What a reader sees, in one statement (one snapshot of the database)."""


def sqlite_reader(path: Path) -> Callable[[], tuple[int, ...]]:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
    return lambda: tuple(int(value) for value in connection.execute(OBSERVE).fetchone())


def postgres_reader(url: str) -> Callable[[], tuple[int, ...]]:
    import psycopg

    connection = psycopg.connect(url, autocommit=True)
    return lambda: tuple(int(value) for value in connection.execute(OBSERVE).fetchone() or ())


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_readers_see_the_old_views_or_the_new_never_a_half_built_one(
    tmp_path: Path, database: str, request: pytest.FixtureRequest
) -> None:
    views_url = request.getfixturevalue("postgres_views") if database == "postgres" else None
    scene = Scene(tmp_path, views_url)
    lines = list(simulate(900, 29))
    scene.publish(*lines[: len(lines) // 3], accepted=False)
    scene.project()
    scene.publish(*lines[len(lines) // 3 :], accepted=False)  # the live views are now well behind the log
    location = scene.config.views_location
    read = sqlite_reader(location.path) if location.path is not None else postgres_reader(views_url or "")
    old = read()
    expected = scene.open_views("expected.views.db")
    replay(expected, ALL, LogSource(scene.app.log_reader))
    new = sqlite_reader(tmp_path / "expected.views.db")()
    expected.close()
    assert old != new

    seen: list[tuple[int, ...]] = []
    errors: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                seen.append(read())
            except Exception as error:  # every failure a reader meets is a finding
                errors.append(f"{type(error).__name__}: {error}")

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        done = subprocess.run(
            orderlog_command(scene, *(["--views", views_url] if views_url else []), "replay"),
            env={**environment(batch=25), "ORDERLOG_MASTER_KEY_FILE": str(scene.config.key_file())},
            capture_output=True,
            text=True,
            check=False,
        )
        time.sleep(0.2)
    finally:
        stop.set()
        thread.join()
    assert done.returncode == 0, done.stderr
    assert "now live" in done.stdout

    assert errors == []
    assert set(seen) <= {old, new}, sorted(set(seen) - {old, new})[:5]
    assert seen.count(old) > 10 and seen[-1] == new  # readers were there all through the replay
    assert read() == new
    scene.close()


WAITING = (
    "SELECT 1 FROM pg_locks WHERE NOT granted "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


@pytest.mark.postgres
def test_a_reader_in_a_transaction_is_not_deadlocked_by_the_switch(tmp_path: Path, postgres_views: str) -> None:
    import psycopg

    scene = Scene(tmp_path, postgres_views)
    scene.publish(*simulate(30, 31), accepted=False)
    scene.project()
    reader = psycopg.connect(postgres_views)
    watcher = psycopg.connect(postgres_views, autocommit=True)
    process = None
    try:
        reader.execute("SELECT COUNT(*) FROM order_status")  # the reader's transaction holds the status views
        process = subprocess.Popen(
            orderlog_command(scene, "--views", postgres_views, "replay"),
            env={**environment(batch=5_000), "ORDERLOG_MASTER_KEY_FILE": str(scene.config.key_file())},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(4)  # the rebuild takes a second; then the switch tries for its locks (NOWAIT, retried)
        assert process.poll() is None, "the switch did not wait for the reader's transaction"
        assert not watcher.execute(WAITING).fetchall(), "the switch holds locks while it waits"
        try:
            reader.execute("SELECT COUNT(*) FROM holds_by_sku")
            reader.commit()
            read = "read"
        except psycopg.Error as error:
            read = type(error).__name__
        output, problems = process.communicate(timeout=60)
        assert (read, process.returncode, problems) == ("read", 0, "")
        assert "now live" in output
    finally:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        reader.close()
        watcher.close()
        scene.close()


def test_a_live_view_built_by_an_earlier_release_gains_the_indexes_this_one_declares(tmp_path: Path) -> None:
    scene = Scene(tmp_path)
    scene.publish(*simulate(20, 5), accepted=False)
    project(scene.views, ALL, LogSource(scene.app.log_reader), follow=False)
    declared = {
        statement.split()[5]  # CREATE INDEX IF NOT EXISTS name ON ...
        for kind in ALL
        for table in kind.tables
        for statement in table.create_indexes(generations.live_generation(scene.views, kind) or 0)
    }
    assert declared, "no projector declares an index"

    def indexes() -> set[str]:
        return {name for (name,) in scene.views.query("SELECT name FROM sqlite_master WHERE type = 'index'")}

    with scene.views.transaction() as cursor:
        for name in declared:
            cursor.execute(f"DROP INDEX {name}")
    assert not indexes() & declared
    Runner(scene.views, ALL)
    assert indexes() >= declared
    scene.close()
