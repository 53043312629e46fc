"""Publishing a file with several processes, partitioned by stream.

One Python process tops out well below what the store can take, so `publish --workers N`
splits the input by stream key (the order id, or the SKU of a stock count): every worker
reads the whole file and keeps the lines of its own partition, so every event of one
order goes to the same worker, in input order, and per-order order is kept exactly as
with one process. Each worker is an ordinary Publisher with its own connection (a batch
is still one transaction) and sends back only counts and the lines it did not accept.
A conflict between workers cannot arise for one order; if one did (the same id written
two ways), optimistic concurrency would reload and retry.
"""

from __future__ import annotations

import multiprocessing
import queue
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from orderlog.config import Config
from orderlog.publishing import BATCH_LINES, BatchReport, LineResult, input_lines, open_publisher

STREAM_KEY = (
    re.compile(rb'"order_id"\s*:\s*"((?:[^"\\]|\\.)*)"'),
    re.compile(rb'"sku"\s*:\s*"((?:[^"\\]|\\.)*)"'),
)
WAIT_SECONDS = 1.0


class WorkerError(Exception):
    """A worker process failed; what it stored before stays stored."""


def partition_of(line: bytes, partitions: int) -> int:
    """The worker for a raw JSON line: by its order id, else its SKU (malformed: 0)."""
    for pattern in STREAM_KEY:
        match = pattern.search(line)
        if match:
            return zlib.crc32(match.group(1)) % partitions
    return 0


def publish_file_in_parallel(
    config: Config, path: Path, workers: int, batch_lines: int = BATCH_LINES
) -> Iterator[BatchReport]:
    """Like Publisher.publish over one file, with `workers` processes; reports as batches finish."""
    context = multiprocessing.get_context("spawn")
    outbox: Any = context.Queue()
    processes = [
        context.Process(target=_work, args=(Share(index, workers, str(path), batch_lines), config, outbox), daemon=True)
        for index in range(workers)
    ]
    for process in processes:
        process.start()
    positions = [0] * workers
    running = set(range(workers))
    try:
        while running:
            try:
                kind, worker, payload = outbox.get(timeout=WAIT_SECONDS)
            except queue.Empty:
                dead = [n for n in running if not processes[n].is_alive()]
                if dead:
                    code = processes[dead[0]].exitcode
                    raise WorkerError(f"publishing worker {dead[0]} died (exit code {code})") from None
                continue
            if kind == "error":
                raise WorkerError(f"publishing worker {worker} stopped: {payload}")
            if kind == "done":
                running.discard(worker)
                positions[worker] = payload
                continue
            counts, rejects, positions[worker] = payload
            yield BatchReport(counts, [LineResult(*fields) for fields in rejects], min(positions))
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join(timeout=5)


@dataclass(frozen=True)
class Share:
    """One worker's part of the input: the lines whose stream falls in partition `index`."""

    index: int
    partitions: int
    path: str
    batch_lines: int


def _work(share: Share, config: Config, outbox: Any) -> None:
    index = share.index
    try:
        _app, publisher = open_publisher(config, announce=lambda _message: None, batch_lines=share.batch_lines)
        with open(share.path, "rb") as file:
            mine = _partition(input_lines(file), index, share.partitions)
            while batch := list(islice(mine, share.batch_lines)):
                report = BatchReport.of(publisher.publish_batch([(n, line) for n, line, _ in batch]))
                position = batch[-1][2]
                rejects = [(r.line, r.outcome, r.event_id, r.key, r.reason) for r in report.rejects]
                outbox.put(("batch", index, (report.counts, rejects, position)))
        outbox.put(("done", index, Path(share.path).stat().st_size))
    except Exception as error:  # reported to the parent, which prints it and exits non-zero
        outbox.put(("error", index, f"{type(error).__name__}: {error}"))


def _partition(
    lines: Iterator[tuple[int, bytes, int]], index: int, partitions: int
) -> Iterator[tuple[int, bytes, int]]:
    return (item for item in lines if partition_of(item[1], partitions) == index)
