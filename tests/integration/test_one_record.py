"""One record, whichever way it arrives: records read from the store and the same records
round-tripped through Avro (as Kafka carries them) are equal and fold to equal states."""

from __future__ import annotations

from collections import defaultdict

from orderlog import avro
from orderlog.audit_verify import record_hash
from orderlog.config import Config
from orderlog.domain.record import Record
from orderlog.domain.streams import STREAMS
from orderlog.presentation import order_view
from orderlog.simulate import simulate
from tests.conftest import open_intake, reopen


def test_records_from_the_store_and_through_avro_fold_to_equal_states(config: Config) -> None:
    app, publisher = open_intake(config)
    for _ in publisher.take(enumerate(simulate(300, 5), start=1)):
        pass
    app.close()
    reader = reopen(config, writing=False)
    stored: dict[tuple[str, str], list[Record]] = defaultdict(list)
    carried: dict[tuple[str, str], list[Record]] = defaultdict(list)
    for _position, record in reader.log_reader.records():
        through_avro = avro.decode(avro.encode(record), record.type)
        assert through_avro == record
        assert record_hash(through_avro.as_dict()) == record.hash
        stored[(record.stream, record.key)].append(record)
        carried[(record.stream, record.key)].append(through_avro)
    assert {stream for stream, _ in stored} == {"order", "sku"}
    vault = reader.vault
    for (stream, key), records in stored.items():
        from_store = STREAMS[stream].rebuild(records)
        from_avro = STREAMS[stream].rebuild(carried[(stream, key)])
        assert from_store is not None and from_avro is not None
        assert vars(from_store) == vars(from_avro)
        if stream == "order":
            assert order_view(from_store, vault) == order_view(reader.read_order(key), vault)
    reader.close()
