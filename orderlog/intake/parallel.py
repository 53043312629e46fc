"""Taking a file in with several processes, partitioned by stream.

One Python process tops out well below what the store can take, so `publish --workers N`
splits the input by stream key (the order id, or the SKU of a stock count): every worker
reads the whole file and keeps the lines of its own partition, so every event of one
order goes to the same worker, in input order, and per-order order is kept exactly as
with one process. Each worker is an ordinary Intake with its own connection (a batch
is still one transaction) and sends back only counts and the lines it did not accept.
A conflict between workers cannot arise for one order; if one did (the same id written
two ways), optimistic concurrency would reload and retry.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import queue
import signal
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from orderlog.bootstrap import open_orderlog
from orderlog.config import Config
from orderlog.domain.envelope import stream_key_of
from orderlog.intake.outcomes import BatchReport, LineResult
from orderlog.intake.pipeline import BATCH_LINES
from orderlog.intake.reading import input_lines

WAIT_SECONDS = 0.5
PR_SET_PDEATHSIG = 1


class WorkerError(Exception):
    """A worker process failed; what it stored before stays stored."""


def partition_of(line: bytes, partitions: int) -> int:
    """The worker for a raw JSON line: by its stream key as the JSON reader reads it (so
    `"SO\\u002d1"` and `"SO-1"` go to the same worker); unreadable lines go to worker 0."""
    key = stream_key_of(line)
    return 0 if key is None else zlib.crc32(key.encode("utf-8", "surrogatepass")) % partitions


def publish_file_in_parallel(
    config: Config,
    path: Path,
    workers: int,
    batch_lines: int = BATCH_LINES,
    should_stop: Callable[[], bool] = lambda: False,
) -> Iterator[BatchReport]:
    """Like Intake.take over one file, with `workers` processes; reports as batches finish.

    When `should_stop()` turns true, every worker finishes the batch under way and stops,
    and its report still arrives: what is reported is exactly what was stored.
    """
    context = multiprocessing.get_context("spawn")
    outbox: Any = context.Queue()
    stop = context.Event()
    processes = [
        context.Process(
            target=_work,
            args=(Share(index, workers, str(path), batch_lines), config, outbox, stop, os.getpid()),
            daemon=True,
        )
        for index in range(workers)
    ]
    _start_deaf_to_ctrl_c(processes)
    positions = [0] * workers
    running = set(range(workers))
    try:
        while running:
            if should_stop():
                stop.set()
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
            if kind in ("done", "stopped"):
                running.discard(worker)
                positions[worker] = payload if kind == "done" else positions[worker]
                continue
            counts, rejects, positions[worker] = payload
            yield BatchReport(counts, [LineResult(*fields) for fields in rejects], min(positions))
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join(timeout=5)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""What asks orderlog to stop after the batch under way: a terminal's Ctrl-C, and what
service managers send (`docker stop`, systemd, Kubernetes), which would otherwise end the
process mid-batch. A second one stops at once."""


def _start_deaf_to_ctrl_c(processes: list[Any]) -> None:
    """Starts the workers ignoring the stop signals from their first instruction: a
    terminal's Ctrl-C goes to the whole process group (as does `kill -TERM -- -PGID`), and a
    worker still importing would die of it with a traceback. An ignored signal stays ignored
    across exec; the parent stops the workers through `stop`, after their batch under way."""
    previous = {number: signal.signal(number, signal.SIG_IGN) for number in STOP_SIGNALS}
    try:
        for process in processes:
            process.start()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@dataclass(frozen=True)
class Share:
    """One worker's part of the input: the lines whose stream falls in partition `index`."""

    index: int
    partitions: int
    path: str
    batch_lines: int


def _work(share: Share, config: Config, outbox: Any, stop: Any, parent: int) -> None:
    """One worker: its partition of the file, batch by batch, until done or told to stop.

    Ctrl-C reaches every process of the terminal's group: the worker leaves it (and
    SIGTERM) to the parent, which asks it to stop after the batch under way. If the parent dies (even by
    kill -9), the kernel kills the worker too; a batch it was storing is rolled back.
    """
    for number in STOP_SIGNALS:
        signal.signal(number, signal.SIG_IGN)
    _die_with(parent)
    index = share.index
    try:
        app = open_orderlog(config, create=True)
        intake = app.intake(batch_lines=share.batch_lines)
        with open(share.path, "rb") as file:
            mine = _partition(input_lines(file), index, share.partitions)
            while batch := list(islice(mine, share.batch_lines)):
                report = BatchReport.of(intake.take_batch([(n, line) for n, line, _ in batch]))
                position = batch[-1][2]
                rejects = [(r.line, r.outcome, r.event_id, r.key, r.reason) for r in report.rejects]
                outbox.put(("batch", index, (report.counts, rejects, position)))
                if stop.is_set() or os.getppid() != parent:
                    app.close()
                    outbox.put(("stopped", index, position))
                    return
        app.close()
        outbox.put(("done", index, Path(share.path).stat().st_size))
    except Exception as error:  # reported to the parent, which prints it and exits non-zero
        outbox.put(("error", index, f"{type(error).__name__}: {error}"))


def _die_with(parent: int) -> None:
    """Linux: have the kernel send SIGKILL to this process when its parent dies."""
    with contextlib.suppress(OSError, AttributeError):  # elsewhere the worker checks between batches
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def _partition(
    lines: Iterator[tuple[int, bytes, int]], index: int, partitions: int
) -> Iterator[tuple[int, bytes, int]]:
    return (item for item in lines if partition_of(item[1], partitions) == index)
