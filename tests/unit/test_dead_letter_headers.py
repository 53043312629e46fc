"""A dead letter's headers are read back as anyone may have written them: the dlq topic is
open to every producer on the cluster, so its numbers are not trusted to be numbers."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from orderlog.kafka.dead_letters import OUTCOME, SOURCE_OFFSET, SOURCE_PARTITION, SOURCE_TOPIC, _letter


@dataclass
class Delivered:
    """What `_letter` reads of a consumed message."""

    header_list: list[tuple[str, bytes | None]]

    def headers(self) -> list[tuple[str, bytes | None]]:
        return self.header_list

    def key(self) -> bytes:
        return b"SO-1"

    def value(self) -> bytes:
        return b"{}"


def test_a_dead_letters_source_is_read_from_its_headers() -> None:
    letter = _letter(
        Delivered([(SOURCE_TOPIC, b"orderlog.inbound"), (SOURCE_PARTITION, b"3"), (SOURCE_OFFSET, b"1200")])
    )
    assert letter.source == ("orderlog.inbound", 3, 1200)


@pytest.mark.parametrize("garbage", [b"x", b"\xb2", "²".encode(), b"-", b"", None, b"9" * 5000, b"1e3"])
def test_a_partition_or_offset_that_is_no_number_is_unknown_not_a_crash(garbage: bytes | None) -> None:
    letter = _letter(Delivered([(SOURCE_PARTITION, garbage), (SOURCE_OFFSET, garbage), (OUTCOME, b"invalid")]))
    assert letter.source == ("?", -1, -1)
