"""kill -9 through the Kafka backbone: `orderlog ingest` and `orderlog relay` run as the user
runs them, each killed at ten random moments in the middle of its work, then let finish.
The store must hold every valid inbound event exactly once (the same records as `publish`
of the same lines into a clean store), and the events topic every stored record once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from orderlog.bootstrap import open_orderlog
from orderlog.config import Config
from orderlog.kafka.clients import partition_ends
from orderlog.kafka.registry import LocalSchemaIds
from orderlog.simulate import simulate
from tests.kafka_helpers import environment, events_on_topic, kafka_config, produce

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
KILLS = 10
ORDERS = 4_800  # about 24,000 events


def start(config: Config, *command: str) -> subprocess.Popen[bytes]:
    """A process whose errors go to a file beside the store: a pipe nobody reads would block
    it once librdkafka's log lines fill the pipe, and it would look like a process that hangs."""
    with log_of(config).open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "orderlog", *command], env=environment(config), stdout=subprocess.DEVNULL, stderr=log
        )


def log_of(config: Config) -> Path:
    return Path(config.master_key_file or ".").with_name("processes.log")


def last_lines(config: Config) -> str:
    return "\n".join(log_of(config).read_text(errors="replace").splitlines()[-20:])


def records_of(config: Config) -> Counter[tuple[str, str, str]]:
    app = open_orderlog(config)
    try:
        return Counter((record.stream, record.key, record.event_id) for _, record in app.log_reader.records())
    finally:
        app.close()


def stored_count(config: Config) -> int:
    if config.location.path is not None and not config.location.path.exists():
        return 0
    app = open_orderlog(config)
    try:
        return app.log_reader.count_after(0)
    finally:
        app.close()


def topic_count(config: Config) -> Callable[[], int]:
    """How many messages the events topic holds, read to each partition's end: the test broker
    reports ends early (the last batch's first offset + 1), and a count that stops short of
    the truth would wait for a kill point the relay has long passed."""
    topic = config.topic("events")

    def count() -> int:
        return sum(partition_ends(config, topic, [0, 1, 2], timeout=30).values())

    return count


def kill_at_thresholds(config: Config, command: list[str], progress: Callable[[], int], total: int) -> list[int]:
    """Starts `command`, kills it with SIGKILL each time its progress passes the next of ten
    random points of the work, restarts it; returns the progress at each kill."""
    rng = random.Random(hash(command[0]))
    points = sorted(rng.uniform(0.05, 0.85) * total for _ in range(KILLS))
    killed_at = []
    process = start(config, *command)
    deadline = time.monotonic() + 600
    for point in points:
        while progress() < point:
            assert time.monotonic() < deadline, (
                f"{command[0]} made no progress past {point:.0f} of {total}:\n{last_lines(config)}"
            )
            if process.poll() is not None:
                process = start(config, *command)
            time.sleep(0.02)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            killed_at.append(progress())
        process.wait()
        process = start(config, *command)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    return killed_at


def test_kill_minus_9_in_the_middle_of_ingest_and_relay_loses_and_doubles_nothing(
    kafka_broker: str, tmp_path: Path
) -> None:
    lines = list(simulate(ORDERS, 21))
    clean = Config(store_url=f"sqlite:///{tmp_path / 'clean.db'}", master_key_file=tmp_path / "master.key")
    app = open_orderlog(clean, create=True)
    for _ in app.take(enumerate(lines, start=1)):
        pass
    app.close()
    expected = records_of(clean)

    config = kafka_config(kafka_broker, f"sqlite:///{tmp_path / 'store.db'}", tmp_path)
    produce(config, [line.encode() for line in lines])
    ingest_kills = kill_at_thresholds(
        config, ["ingest", "--follow", "--batch", "200"], lambda: stored_count(config), sum(expected.values())
    )
    finished = start(config, "ingest", "--once")
    assert finished.wait(300) == 0, last_lines(config)

    taken = records_of(config)
    assert max(taken.values()) == 1, "an event stored twice"
    assert set(taken) == set(expected), "the store differs from a clean publish of the same lines"
    assert len(taken) >= 20_000

    relay_kills = kill_at_thresholds(  # at its full speed the relay is done before a watcher could kill it
        config, ["relay", "--follow", "--max-rate", "2000"], topic_count(config), len(taken)
    )
    finished = start(config, "relay", "--once")
    assert finished.wait(300) == 0, last_lines(config)

    app = open_orderlog(config)
    positions = [position for position, _ in app.log_reader.records()]
    app.close()
    on_topic = Counter(position for _, position, _ in events_on_topic(config, LocalSchemaIds()))
    assert max(on_topic.values()) == 1, "a record on the events topic twice"
    assert sorted(on_topic) == positions, "the events topic lacks stored records"
    for kills in (ingest_kills, relay_kills):
        assert len(kills) >= KILLS and all(0 < done < len(positions) for done in kills), (ingest_kills, relay_kills)


@pytest.mark.parametrize(
    "command", [["ingest", "--follow", "--batch", "200"], ["relay", "--follow", "--max-rate", "500"]]
)
def test_sigterm_stops_ingest_and_relay_after_the_work_under_way_and_they_go_on_from_there(
    kafka_broker: str, tmp_path: Path, command: list[str]
) -> None:
    """What `docker stop` and systemd send: a graceful stop (exit 0, the tally, no traceback), and
    a restart takes up exactly where it stopped."""
    config = kafka_config(kafka_broker, f"sqlite:///{tmp_path / 'store.db'}", tmp_path)
    lines = list(simulate(1_200, 22))
    produce(config, [line.encode() for line in lines])
    if command[0] == "relay":
        assert start(config, "ingest", "--once").wait(300) == 0, last_lines(config)
    progress = (lambda: stored_count(config)) if command[0] == "ingest" else topic_count(config)
    process = start(config, *command)
    deadline = time.monotonic() + 300
    while progress() < 500:
        assert process.poll() is None and time.monotonic() < deadline, last_lines(config)
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0, last_lines(config)
    log = log_of(config).read_text(errors="replace")
    assert "SIGTERM: stopping after" in log and "Traceback" not in log, last_lines(config)
    stopped_at = progress()
    assert start(config, command[0], "--once").wait(300) == 0, last_lines(config)

    taken = records_of(config)
    assert max(taken.values()) == 1, "an event stored twice"
    if command[0] == "ingest":
        assert stopped_at < len(taken), "ingest had finished before the signal: nothing was shown"
    else:
        on_topic = Counter(position for _, position, _ in events_on_topic(config, LocalSchemaIds()))
        assert stopped_at < len(on_topic), "the relay had finished before the signal: nothing was shown"
        assert max(on_topic.values()) == 1 and len(on_topic) == sum(taken.values())
