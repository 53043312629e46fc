"""Publishing with several processes, partitioned by stream.

One Python process tops out well below what the store can take, so `publish --workers N`
splits the input by stream key (the order id, or the SKU of a stock count): every event
of one order goes to the same worker, in input order, so per-order order is kept exactly
as with one process. Each worker is an ordinary Publisher with its own connection; a
batch is still stored in one transaction; outcomes come back to the parent, which counts
them and writes the rejects. A conflict between workers cannot arise for one order; if
one did (the same id written two ways), optimistic concurrency would reload and retry.
"""

from __future__ import annotations

import multiprocessing
import queue
import re
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

from orderlog.config import Config
from orderlog.publishing import BATCH_LINES, LineResult, open_publisher

STREAM_KEY = (
    re.compile(rb'"order_id"\s*:\s*"((?:[^"\\]|\\.)*)"'),
    re.compile(rb'"sku"\s*:\s*"((?:[^"\\]|\\.)*)"'),
)
RESULT_WAIT_SECONDS = 1.0


class WorkerError(Exception):
    """A worker process failed; what it stored before stays stored."""


def partition_of(line: bytes, partitions: int) -> int:
    """The worker for a raw JSON line: by its order id, else its SKU (malformed: 0)."""
    for pattern in STREAM_KEY:
        match = pattern.search(line)
        if match:
            return zlib.crc32(match.group(1)) % partitions
    return 0


def publish_in_parallel(
    config: Config, lines: Iterable[tuple[int, bytes]], workers: int, batch_lines: int = BATCH_LINES
) -> Iterator[list[LineResult]]:
    """Like Publisher.publish, over `workers` processes; results arrive as batches finish."""
    context = multiprocessing.get_context("spawn")
    inboxes = [context.Queue(maxsize=4) for _ in range(workers)]
    outbox: Any = context.Queue()
    processes = [
        context.Process(target=_work, args=(index, config, inbox, outbox, batch_lines), daemon=True)
        for index, inbox in enumerate(inboxes)
    ]
    for process in processes:
        process.start()
    running = set(range(workers))
    try:
        buffers: list[list[tuple[int, bytes]]] = [[] for _ in range(workers)]
        for number, line in lines:
            partition = partition_of(line, workers)
            buffers[partition].append((number, line))
            if len(buffers[partition]) >= batch_lines:
                yield from _send(inboxes[partition], buffers[partition], outbox, processes, running)
                buffers[partition] = []
        for partition, buffer in enumerate(buffers):
            if buffer:
                yield from _send(inboxes[partition], buffer, outbox, processes, running)
            inboxes[partition].put(None)
        while running:
            yield from _receive(outbox, processes, running, block=True)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join(timeout=5)


def _send(
    inbox: Any, batch: list[tuple[int, bytes]], outbox: Any, processes: list[Any], running: set[int]
) -> Iterator[list[LineResult]]:
    while True:
        try:
            inbox.put(batch, timeout=RESULT_WAIT_SECONDS)
            break
        except queue.Full:
            yield from _receive(outbox, processes, running, block=False)
    yield from _receive(outbox, processes, running, block=False)


def _receive(
    outbox: Any, processes: list[Any], running: set[int], *, block: bool
) -> Iterator[list[LineResult]]:
    while True:
        try:
            kind, worker, payload = outbox.get(timeout=RESULT_WAIT_SECONDS) if block else outbox.get_nowait()
        except queue.Empty:
            dead = [n for n in running if not processes[n].is_alive()]
            if dead:
                raise WorkerError(
                    f"publishing worker {dead[0]} died (exit code {processes[dead[0]].exitcode})"
                ) from None
            if block:
                continue
            return
        if kind == "results":
            yield [LineResult(*fields) for fields in payload]
        elif kind == "done":
            running.discard(worker)
            if not running or not block:
                return
        else:
            raise WorkerError(f"publishing worker {worker} stopped: {payload}")


def _work(worker: int, config: Config, inbox: Any, outbox: Any, batch_lines: int) -> None:
    try:
        _app, publisher = open_publisher(config, announce=lambda _message: None, batch_lines=batch_lines)
        while (batch := inbox.get()) is not None:
            results = publisher.publish_batch(batch)
            outbox.put(
                (
                    "results",
                    worker,
                    [(r.line, r.outcome, r.event_id, r.key, r.reason) for r in results],
                )
            )
    except Exception as error:  # reported to the parent, which prints it and exits non-zero
        outbox.put(("error", worker, f"{type(error).__name__}: {error}"))
        return
    outbox.put(("done", worker, None))
