"""Publishing into real stores (SQLite file and PostgreSQL schema): what is stored, and how
it reads back."""

from __future__ import annotations

import time
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import pytest

from orderlog.application import OrderLog, OrderNotFound
from orderlog.bootstrap import open_store
from orderlog.config import Config
from orderlog.domain.moment import Moment
from orderlog.domain.order import Order
from orderlog.domain.status import Status
from orderlog.intake.outcomes import LineResult
from orderlog.intake.pipeline import Intake
from orderlog.presentation import order_view
from orderlog.simulate import simulate
from tests import builders as b
from tests.builders import line
from tests.conftest import open_intake, reopen

Publish = Callable[..., list[LineResult]]


def outcomes(results: list[LineResult]) -> list[str]:
    return [r.outcome for r in results]


def test_what_is_published_reads_back_the_same_from_a_fresh_process(config: Config, publish: Publish) -> None:
    results = publish(
        b.submitted(),
        b.paid(amount=300),
        b.paid(amount=700, payment_id="P-2"),
        b.dispatched(lines=[("SKU-A", 1)]),
    )
    assert outcomes(results) == ["accepted"] * 4
    app = reopen(config)
    order = app.stream(Order, "SO-1")
    assert order is not None
    assert (order.status, order.paid_amount, order.version) == (Status.PARTIALLY_SHIPPED, 1000, 4)
    records = app.records(Order, "SO-1")
    assert [r.type for r in records] == [
        "OrderSubmitted",
        "PaymentCaptured",
        "PaymentCaptured",
        "ShipmentDispatched",
    ]
    assert all(later.prev_hash == earlier.hash for earlier, later in pairwise(records))


def test_publishing_the_same_input_twice_records_nothing_twice(config: Config, tmp_path: Path) -> None:
    lines = list(simulate(150, seed=3))
    first = _publish_all(config, lines)
    app = reopen(config)
    stored = sum(app.database.count_by_topic().values())
    second = _publish_all(config, lines)
    assert first.count("accepted") > 0
    assert second.count("accepted") == 0
    assert second.count("duplicate") == first.count("accepted") + first.count("duplicate") + first.count("refused")
    assert sum(reopen(config).database.count_by_topic().values()) == stored


def _publish_all(config: Config, lines: list[str]) -> list[str]:
    app, publisher = open_intake(config)
    try:
        return [r.outcome for batch in publisher.take(enumerate(lines, 1)) for r in batch]
    finally:
        app.close()


def test_an_event_for_an_order_never_submitted_is_invalid_and_stores_nothing(publish: Publish, config: Config) -> None:
    (result,) = publish(b.paid(order_id="SO-404"))
    assert result.outcome == "invalid"
    assert result.reason == "order SO-404 does not exist: no OrderSubmitted has been recorded for it"
    assert reopen(config).database.count_by_topic() == {}


def test_stock_counts_open_a_stream_per_sku(publish: Publish, config: Config) -> None:
    assert outcomes(publish(b.stock_counted(on_hand=7), b.stock_counted(on_hand=9))) == ["accepted"] * 2
    assert reopen(config).database.count_by_topic() == {"sku/StockCounted": 2}


def test_topics_name_event_types_not_python_classes(publish: Publish, config: Config) -> None:
    publish(b.submitted(), b.dispatched(), b.cancelled())
    assert set(reopen(config).database.count_by_topic()) == {
        "order/OrderSubmitted",
        "order/ShipmentDispatched",
        "order/RequestRefused",
    }


def test_a_second_writer_moving_an_order_on_is_met_by_reload_and_retry(
    config: Config, publisher: tuple[OrderLog, Intake]
) -> None:
    _app, first = publisher
    _, second = open_intake(config)

    def run(pub: Intake, *envelopes: dict[str, object]) -> list[LineResult]:
        return [r for batch in pub.take(enumerate(map(line, envelopes), 1)) for r in batch]

    run(first, b.submitted())  # `first` now caches SO-1 at version 1
    run(second, b.paid(amount=400))  # ...which is stale from here on
    assert outcomes(run(first, b.paid(amount=600, payment_id="P-2"))) == ["accepted"]
    order = reopen(config).stream(Order, "SO-1")
    assert order is not None and (order.version, order.paid_amount) == (3, 1000)


def test_an_order_as_it_stood_at_each_version_and_moment(config: Config, publish: Publish) -> None:
    publish(
        b.submitted(at="2026-03-01T10:00:00Z"),
        b.paid(at="2026-03-01T10:05:00Z"),
        b.dispatched(at="2026-03-02T09:00:00Z"),
    )
    time.sleep(0.005)  # the late fact is recorded in a later millisecond than version 3
    publish(b.paid(amount=5, payment_id="P-late", at="2026-03-01T10:30:00Z"))  # it happened before the dispatch
    app = reopen(config, writing=False)
    at_version = [app.read_order("SO-1", Moment(version=v)).status for v in (1, 2, 3, 4)]
    assert at_version == [Status.PENDING_PAYMENT, Status.PENDING_SHIPMENT, Status.SHIPPED, Status.SHIPPED]
    as_of = app.read_order("SO-1", Moment(as_of="2026-03-01T12:00:00.000Z"))
    assert (as_of.status, as_of.paid_amount) == (Status.PENDING_SHIPMENT, 1005)  # the late payment happened by then
    third = app.records(Order, "SO-1")[2]
    known = app.read_order("SO-1", Moment(known_at=third.recorded_at))
    assert (known.version, known.paid_amount) == (3, 1000)  # it occurred before then, but was not known yet
    with pytest.raises(OrderNotFound, match="had not been submitted by"):
        app.read_order("SO-1", Moment(as_of="2026-03-01T09:59:59.999Z"))
    app.close()


def test_personal_data_is_never_stored_in_plain_text(config: Config, publish: Publish, tmp_path: Path) -> None:
    secret = {**b.ADDRESS, "name": "Ouyang Xiuying", "phone": "13912345678", "line1": "7 Secret Lane"}
    publish(b.submitted(address=secret), b.address_corrected(address={**secret, "postal_code": "200031"}))
    app = reopen(config)
    raw = _raw_store_bytes(app, config)
    for plaintext in ("Ouyang Xiuying", "13912345678", "7 Secret Lane"):
        assert plaintext.encode() not in raw
    assert b"Shanghai" in raw  # the city is not personal: analytics need it
    order = app.stream(Order, "SO-1")
    assert order is not None
    view = order_view(order, app.vault)
    assert view["shipping_address"]["phone"] == "13912345678"


def _raw_store_bytes(app: OrderLog, config: Config) -> bytes:
    """Every byte of the store as it lies on disk now: the SQLite file and its WAL as they are
    (never scrubbed here, so a scrub that orderlog forgot shows), or every PostgreSQL table's
    rows and, when this process can read them, the tables' data files."""
    location = config.location
    if location.kind == "sqlite":
        assert location.path is not None
        return b"".join(
            p.read_bytes()
            for p in location.path.parent.glob(location.path.name + "*")
            if not p.name.endswith(".master-key")
        )
    chunks: list[bytes] = []
    with location.connect(autocommit=True) as connection:
        tables = [
            row[0]
            for row in connection.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (location.schema,))
        ]
        assert tables
        connection.execute("CHECKPOINT")
        for table in tables:
            for row in connection.execute(f'SELECT * FROM "{location.schema}"."{table}"'):
                chunks += [bytes(v) if isinstance(v, bytes | memoryview) else str(v).encode() for v in row]
            path = connection.execute(
                f"SELECT current_setting('data_directory') || '/' || "
                f'pg_relation_filepath(\'"{location.schema}"."{table}"\')'
            ).fetchone()[0]
            if Path(path).exists():
                chunks.append(Path(path).read_bytes())
    return b"".join(chunks)


def test_opening_a_missing_store_for_reading_says_where_it_looked(tmp_path: Path) -> None:
    import pytest

    from orderlog.store.location import StoreError, parse_store_url

    with pytest.raises(StoreError, match=r"no store at .*nowhere\.db"):
        open_store(parse_store_url(f"sqlite:///{tmp_path / 'nowhere.db'}"), create=False)
