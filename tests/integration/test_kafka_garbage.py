"""Garbage on the inbound topic, interleaved with valid traffic, through `orderlog ingest --once`
run as a process: hypothesis chooses the garbage (random bytes, truncated JSON, fields of the
wrong type, Avro that is not Avro, tombstones) and where it goes. Every bad message must land
in the dead-letter topic with its original bytes and a one-line reason, every good line must
be taken exactly as `publish` takes it into a clean store, and the process must finish well."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import uuid
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orderlog.bootstrap import open_orderlog
from orderlog.config import Config
from orderlog.intake.outcomes import REJECTED
from orderlog.kafka.codec import frame
from orderlog.kafka.dead_letters import read_dead_letters
from orderlog.kafka.registry import LocalSchemaIds
from orderlog.simulate import simulate
from tests.kafka_helpers import environment, kafka_config, produce

pytestmark = [pytest.mark.kafka]

GOOD = [line.encode() for line in simulate(12, 4)]
ENVELOPE_IDS = sorted({LocalSchemaIds().id_of(f"{json.loads(line)['type']}Envelope") for line in GOOD[:20]})


def wrong_type(line: bytes, field: int, value: object) -> bytes:
    """A valid line with one top-level field given a value no field of the contract accepts there."""
    envelope = json.loads(line)
    name = sorted(envelope)[field % len(envelope)]
    envelope[name] = value
    return json.dumps(envelope).encode()


garbage = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda line, cut: line[: max(1, cut % (len(line) - 1))], st.sampled_from(GOOD), st.integers(1)),
    st.builds(wrong_type, st.sampled_from(GOOD), st.integers(0), st.sampled_from([[1], 1.5, True, {"x": [None]}])),
    st.builds(frame, st.sampled_from(ENVELOPE_IDS), st.binary(max_size=80)),
    st.builds(frame, st.integers(0, 2**31 - 1), st.binary(max_size=40)),
    st.none(),
)


def taken(config: Config) -> Counter[tuple[str, str, str, str]]:
    app = open_orderlog(config)
    try:
        return Counter((r.stream, r.key, r.event_id, r.type) for _, r in app.log_reader.records())
    finally:
        app.close()


@pytest.fixture(scope="module")
def clean_publish() -> tuple[Counter[tuple[str, str, str, str]], list[bool]]:
    """What `publish` makes of the good lines, and which of them it rejects without a record."""
    with tempfile.TemporaryDirectory() as directory:
        config = Config(store_url=f"sqlite:///{directory}/clean.db", master_key_file=Path(directory) / "master.key")
        app = open_orderlog(config, create=True)
        results = [result for batch in app.take(enumerate(GOOD)) for result in batch]
        app.close()
        dead = [result.outcome in REJECTED and not result.recorded for result in sorted(results, key=lambda r: r.line)]
        return taken(config), dead


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(bad=st.lists(st.tuples(st.integers(0, len(GOOD)), garbage), min_size=1, max_size=25))
def test_garbage_goes_to_the_dead_letters_and_good_traffic_is_taken_as_publish_takes_it(
    kafka_broker: str, clean_publish: tuple[Counter[tuple[str, str, str, str]], list[bool]], bad: list
) -> None:
    expected, dead_among_good = clean_publish
    directory = Path(tempfile.mkdtemp(prefix="garbage-"))
    config = kafka_config(kafka_broker, f"sqlite:///{directory / f'{uuid.uuid4().hex}.db'}", directory, partitions=1)
    messages: list[bytes | None] = []
    expect_dead: list[int] = []  # offsets: one partition, so an offset is the message's place
    for index, line in enumerate(GOOD):
        for place, value in bad:
            if place == index:
                expect_dead.append(len(messages))
                messages.append(value)
        if dead_among_good[index]:
            expect_dead.append(len(messages))
        messages.append(line)
    for place, value in bad:
        if place == len(GOOD):
            expect_dead.append(len(messages))
            messages.append(value)
    produce(config, messages, key=b"any")

    run = subprocess.run(
        [sys.executable, "-m", "orderlog", "ingest", "--once"],
        env=environment(config),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]

    assert taken(config) == expected
    letters = read_dead_letters(config)
    assert [letter.source[2] for letter in letters] == expect_dead
    for letter in letters:
        assert letter.value == messages[letter.source[2]], "a dead letter must keep the original bytes"
        assert letter.reason and "\n" not in letter.reason and "Traceback" not in letter.reason
