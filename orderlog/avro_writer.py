"""A record's Avro body, written by a function compiled from its schema.

The relay writes every stored record as Avro, and fastavro's general writer spent more
time on it than anything else the relay does (about 11 µs a record: it walks the schema
and looks up a writer for each field, for every record). The schemas here are simple
(records, strings, longs, booleans, arrays, `["null", X]`, timestamp-millis), so each one
is turned once into straight-line Python that writes its fields in order, reading the
record's own fields directly (no datum dict in between). A schema holding anything else
is written by fastavro, so the compiled path is a speed-up and never a second opinion:
the tests check that both write the same bytes for every event type, and that both refuse
what the other refuses.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import Any

import fastavro

from orderlog.domain.record import FIELDS, Record

Writer = Callable[[Record], bytes]


class NotCompiled(TypeError):
    """A schema with a type the compiler does not write (fastavro writes it instead)."""


def writer_for(schema: dict[str, Any]) -> Writer:
    """The fastest correct writer of records of this schema (a stored record's schema)."""
    try:
        return compiled_writer(schema)
    except NotCompiled:
        return fastavro_writer(schema)


def fastavro_writer(schema: dict[str, Any]) -> Writer:
    parsed = fastavro.parse_schema(schema)

    def write(record: Record) -> bytes:
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, parsed, datum_of(record))
        return buffer.getvalue()

    return write


def compiled_writer(schema: dict[str, Any]) -> Writer:
    """NotCompiled if the schema holds a type not written here."""
    source = _Compiler().source(schema)
    namespace: dict[str, Any] = {
        "_long": long_bytes,
        "_SMALL": _SMALL,
        "_millis": millis,
        "_recorded_long": recorded_long,
    }
    exec(compile(source, f"<avro writer for {schema.get('name')}>", "exec"), namespace)
    write: Writer = namespace["write"]
    write.source = source  # type: ignore[attr-defined]  # for whoever debugs it
    return write


def datum_of(record: Record) -> dict[str, Any]:
    """The Avro datum of a record, for fastavro: the same fields, times as timestamp-millis."""
    datum = dict(zip(FIELDS, record, strict=True))
    datum["occurred_at"] = millis(record.occurred_at)
    datum["recorded_at"] = recorded_millis(record.recorded_at)
    return datum


# ------------------------------------------------------------------ Avro's numbers


def _zigzag_varint(number: int) -> bytes:
    number = (number << 1) ^ (number >> 63)
    if 1 << 35 <= number < 1 << 42:  # a timestamp-millis of these decades: six bytes, unrolled
        return bytes(
            (
                number & 0x7F | 0x80,
                number >> 7 & 0x7F | 0x80,
                number >> 14 & 0x7F | 0x80,
                number >> 21 & 0x7F | 0x80,
                number >> 28 & 0x7F | 0x80,
                number >> 35,
            )
        )
    out = []
    while number > 0x7F:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


_SMALL = [_zigzag_varint(number) for number in range(-1024, 1024)]


def long_bytes(number: int) -> bytes:
    """A long as Avro writes it (zigzag, then base-128 varint); small ones from a table. A
    float is cut to its whole part, as fastavro does; anything else is a TypeError."""
    if isinstance(number, float):
        number = int(number)
    if -1024 <= number < 1024:
        return _SMALL[number + 1024]
    if not -(2**63) <= number < 2**63:
        raise ValueError(f"{number} does not fit Avro's long")
    return _zigzag_varint(number)


def millis(instant: str | int) -> int:
    """timestamp-millis of a stored time (`2026-03-01T10:00:00.000Z`), rounded as fastavro does."""
    if isinstance(instant, int):
        return instant
    return math.floor(datetime.fromisoformat(instant).timestamp() * 1000 + 0.5)  # floor: right before 1970 too


@lru_cache(maxsize=64)
def recorded_millis(instant: str) -> int:
    """A batch's records share one record time: worked out once."""
    return millis(instant)


@lru_cache(maxsize=64)
def recorded_long(instant: str | int) -> bytes:
    return long_bytes(recorded_millis(instant) if isinstance(instant, str) else instant)


# ------------------------------------------------------------------ the compiler


class _Compiler:
    """Writes a function `write(record) -> bytes` as Python source, one statement per field."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._names = 0
        self._named: dict[str, dict[str, Any]] = {}

    def source(self, schema: dict[str, Any]) -> str:
        if not isinstance(schema, dict) or schema.get("type") != "record":
            raise NotCompiled("the top level is not a record")
        if [field["name"] for field in schema["fields"]] != list(FIELDS):
            raise NotCompiled("the fields are not a stored record's, in its order")
        self._emit(1, "out = bytearray()")
        self._emit(1, "w = out.extend")
        self._named[_full_name(schema)] = schema
        for index, field in enumerate(schema["fields"]):
            self._field(field, f"record[{index}]")
        self._emit(1, "return bytes(out)")
        return "def write(record):\n" + "\n".join(self._lines) + "\n"

    def _field(self, field: dict[str, Any], value: str) -> None:
        kind = field["type"]
        if isinstance(kind, dict) and kind.get("logicalType") == "timestamp-millis":
            if field["name"] == "recorded_at":
                self._emit(1, f"w(_recorded_long({value}))")
            else:
                self._emit(1, f"w(_long(_millis({value})))")
        else:
            self._write(kind, value, 1)

    def _write(self, kind: Any, value: str, depth: int) -> None:
        if isinstance(kind, list):
            return self._union(kind, value, depth)
        if isinstance(kind, dict):
            return self._complex(kind, value, depth)
        if kind in self._named:
            return self._record(self._named[kind], value, depth)
        if kind == "string":
            text, size = self._name(), self._name()
            self._emit(depth, f"{text} = {value}.encode()")
            self._emit(depth, f"{size} = len({text})")
            self._emit(depth, f"w(_SMALL[{size} + 1024] if {size} < 1024 else _long({size}))")
            self._emit(depth, f"w({text})")
        elif kind == "long":
            number = self._name()
            self._emit(depth, f"{number} = {value}")
            small = f"{number}.__class__ is int and -1024 <= {number} < 1024"
            self._emit(depth, f"w(_SMALL[{number} + 1024] if {small} else _long({number}))")
        elif kind == "boolean":
            self._emit(depth, f"w(b'\\x01' if {value} else b'\\x00')")
        else:
            raise NotCompiled(f"type {kind!r}")
        return None

    def _union(self, kind: list[Any], value: str, depth: int) -> None:
        if len(kind) != 2 or kind[0] != "null":
            raise NotCompiled(f"union {kind!r}")
        member = self._name()
        self._emit(depth, f"{member} = {value}")
        self._emit(depth, f"if {member} is None:")
        self._emit(depth + 1, "w(b'\\x00')")
        self._emit(depth, "else:")
        self._emit(depth + 1, "w(b'\\x02')")
        self._write(kind[1], member, depth + 1)

    def _complex(self, kind: dict[str, Any], value: str, depth: int) -> None:
        if "logicalType" in kind:
            raise NotCompiled(f"logical type {kind['logicalType']!r} inside the data")
        if kind["type"] == "record":
            self._named[_full_name(kind)] = kind
            self._named[kind["name"]] = kind
            return self._record(kind, value, depth)
        if kind["type"] == "array":
            items, item, count = self._name(), self._name(), self._name()
            self._emit(depth, f"{items} = {value}")
            self._emit(depth, f"{count} = len({items})")  # None is no array: TypeError, as in fastavro
            self._emit(depth, f"if {count}:")
            self._emit(depth + 1, f"w(_long({count}))")
            self._emit(depth + 1, f"for {item} in {items}:")
            self._write(kind["items"], item, depth + 2)
            self._emit(depth, "w(b'\\x00')")
            return None
        return self._write(kind["type"], value, depth)

    def _record(self, kind: dict[str, Any], value: str, depth: int) -> None:
        fields = self._name()
        self._emit(depth, f"{fields} = {value}")
        for field in kind["fields"]:
            if "default" in field:  # a datum without the field is written with its default, as fastavro does
                read = f"{fields}.get({field['name']!r}, {field['default']!r})"
            elif isinstance(field["type"], list) and "null" in field["type"]:
                read = f"{fields}.get({field['name']!r})"
            else:
                read = f"{fields}[{field['name']!r}]"
            self._write(field["type"], read, depth)

    def _name(self) -> str:
        self._names += 1
        return f"v{self._names}"

    def _emit(self, depth: int, line: str) -> None:
        self._lines.append("    " * depth + line)


def _full_name(kind: dict[str, Any]) -> str:
    namespace = kind.get("namespace")
    return f"{namespace}.{kind['name']}" if namespace else kind["name"]
