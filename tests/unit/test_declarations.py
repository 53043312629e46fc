"""One place for stream kinds, keys and event kinds: the contract declares them, every
other place is derived from it or checked against it here."""

from __future__ import annotations

import re
from pathlib import Path

from orderlog.domain.contract import EVENT_TYPES, STREAM_KEYS, UPSTREAM_TYPES, Kind
from orderlog.domain.order import COMPLETING_FACTS, Order
from orderlog.domain.redelivery import STANDS_FOR_REQUEST
from orderlog.domain.status import FinancialStatus, Status
from orderlog.domain.streams import STREAMS
from orderlog.simulate import SOURCES

README = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")


def test_every_stream_kind_has_one_aggregate_and_one_key_field() -> None:
    assert set(STREAMS) == set(STREAM_KEYS)
    assert all(stream == aggregate.STREAM for stream, aggregate in STREAMS.items())


def test_every_event_type_is_folded_by_the_aggregate_of_its_stream() -> None:
    for name, event_type in EVENT_TYPES.items():
        assert callable(getattr(STREAMS[event_type.stream], f"on_{name}", None)), f"{name} has no fold"


def test_no_aggregate_folds_a_type_that_is_not_declared_for_its_stream() -> None:
    for stream, aggregate in STREAMS.items():
        folds = {name[3:] for name in dir(aggregate) if name.startswith("on_") and name[3].isupper()}
        declared = {name for name, event_type in EVENT_TYPES.items() if event_type.stream == stream}
        assert folds == declared, stream


def test_the_names_the_lifecycle_uses_are_declared_types_of_the_right_kind() -> None:
    for aggregate in STREAMS.values():
        declared = {name for name, event_type in EVENT_TYPES.items() if event_type.stream == aggregate.STREAM}
        assert aggregate.OPENED_BY.issubset(declared)
    assert {EVENT_TYPES[name].kind for name in COMPLETING_FACTS} == {Kind.FACT}
    assert {EVENT_TYPES[name].kind for name in STANDS_FOR_REQUEST} == {Kind.RECORD}
    refused_in_code = set(re.findall(r'case "(\w+)":', Path(Order.refusal_reason.__code__.co_filename).read_text()))
    assert refused_in_code == {n for n, t in EVENT_TYPES.items() if t.kind is Kind.REQUEST and t.stream == "order"}
    for event_type in EVENT_TYPES.values():
        if event_type.natural_key is not None:
            assert event_type.kind is Kind.FACT and event_type.natural_key in event_type.data.model_fields


def test_simulated_sources_publish_only_declared_upstream_types() -> None:
    assert {name for types in SOURCES.values() for name in types} <= set(UPSTREAM_TYPES)


def test_the_readme_tables_name_exactly_the_declared_types_and_statuses() -> None:
    contract_table = re.findall(r"^\| `(\w+)` \| .+ \| (fact|request) \|$", README, flags=re.MULTILINE)
    assert dict(contract_table) == {name: EVENT_TYPES[name].kind.value for name in UPSTREAM_TYPES}
    lifecycle = README[README.index("## The lifecycle") : README.index("## Publishing")]
    statuses = re.search(r"`status`: ([A-Z_,\s]+) \(", lifecycle)
    financial = re.search(r"`financial_status`: ([A-Z_,\s]+)\.", lifecycle)
    assert statuses is not None and financial is not None
    assert [word.strip() for word in statuses.group(1).split(",")] == [status.value for status in Status]
    assert [word.strip() for word in financial.group(1).split(",")] == [status.value for status in FinancialStatus]
