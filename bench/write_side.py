"""Issue 2's figures: publish throughput, and `order show --as-of` latency on a big store."""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path
from typing import Any

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from bench.common import Figure, Report, median_of, percentile
from orderlog.config import Config
from orderlog.domain.order import Order
from orderlog.publishing import input_lines, open_publisher
from orderlog.simulate import simulate
from orderlog.views import order_view
from orderlog.workers import publish_file_in_parallel

PUBLISH_ORDERS = 20_000
BIG_STORE_EVENTS = 1_000_000
QUERIES = 2_000


class Counter(Aggregate):
    @event("Created")
    def __init__(self, name: str) -> None:
        self.name = name


def library_ceiling(directory: Path) -> float:
    """The eventsourcing library's own batched save on SQLite: one event per aggregate,
    500 aggregates per save (as in EVENTSOURCING.md), events/s."""
    fresh(directory)
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(directory / "library.db")}
    app: Application[Any] = Application(env=env)
    aggregates = [Counter(name=f"c{n}") for n in range(40_000)]
    started = time.perf_counter()
    for start in range(0, len(aggregates), 500):
        app.save(*aggregates[start : start + 500])
    return len(aggregates) / (time.perf_counter() - started)


def fresh(directory: Path) -> Config:
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return Config(store_url=f"sqlite:///{directory / 'store.db'}", master_key_file=directory / "master.key")


def publish_rate(directory: Path, traffic: Path, workers: int) -> tuple[float, float]:
    """Simulated traffic from a file into a fresh SQLite store: (stored events/s, lines/s)."""
    config = fresh(directory)
    lines, elapsed, stored = timed_publish(config, traffic, workers)
    return stored / elapsed, lines / elapsed


def timed_publish(config: Config, traffic: Path, workers: int) -> tuple[int, float, int]:
    """Publishes a file as `orderlog publish FILE --workers N` does: (lines, seconds, events stored)."""
    app, publisher = open_publisher(config, announce=lambda _m: None)
    started = time.perf_counter()
    if workers == 1:
        with traffic.open("rb") as file:
            lines = sum(len(batch) for batch in publisher.publish((n, text) for n, text, _ in input_lines(file)))
    else:
        lines = sum(sum(report.counts.values()) for report in publish_file_in_parallel(config, traffic, workers))
    elapsed = time.perf_counter() - started
    stored = sum(app.database.count_by_topic().values())
    app.close()
    return lines, elapsed, stored


def write_traffic(path: Path, orders: int, seed: int) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = list(simulate(orders, seed=seed))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines)


def run(report: Report, work: Path, runs: int) -> tuple[Config, list[str]]:
    traffic = work / "traffic.jsonl"
    line_count = write_traffic(traffic, PUBLISH_ORDERS, seed=42)
    ceiling, ceiling_runs = median_of(runs, lambda: library_ceiling(work / "ceiling"))
    report.add(
        Figure(
            "eventsourcing library's batched save (the ceiling)",
            ceiling,
            "events/s",
            "SQLite file, 40,000 aggregates of one event, 500 per save",
            runs=ceiling_runs,
        )
    )
    for workers in (1, 2):
        rates = [publish_rate(work / f"publish-{workers}", traffic, workers) for _ in range(runs)]
        events = sorted(rate[0] for rate in rates)
        lines_per_second = sorted(rate[1] for rate in rates)[len(rates) // 2]
        report.add(
            Figure(
                f"orderlog publish, {workers} process{'es' if workers > 1 else ''}",
                events[len(events) // 2],
                "stored events/s",
                f"{PUBLISH_ORDERS:,} simulated orders = {line_count:,} lines from a file: validate, "
                f"hash chain, AES-GCM for addresses, 5,000 lines per transaction, SQLite synchronous=FULL; "
                f"{lines_per_second:,.0f} lines/s",
                goal=">= 20,000 events/s",
                beside="the library's batched save",
                ratio=events[len(events) // 2] / ceiling,
                runs=events,
            )
        )
    return as_of_latency(report, work)


def big_store(work: Path, events: int = BIG_STORE_EVENTS) -> tuple[Config, list[str]]:
    """About `events` events: simulated chunks published from files with two processes."""
    directory = work / "big"
    config = fresh(directory)
    app, _ = open_publisher(config, announce=lambda _m: None)
    order_ids: list[str] = []
    seed, stored = 1000, 0
    started = time.perf_counter()
    chunk = directory / "chunk.jsonl"
    while stored < events:
        write_traffic(chunk, 25_000, seed)
        for _report in publish_file_in_parallel(config, chunk, 2):
            pass
        order_ids += [f"SO-{seed}-{n:06d}" for n in range(1, 25_001)]
        stored = sum(app.database.count_by_topic().values())
        seed += 1
        print(
            f"    building a store of {events:,} events: {stored:,} ({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    app.close()
    return config, order_ids


def as_of_latency(report: Report, work: Path) -> tuple[Config, list[str]]:
    config, order_ids = big_store(work)
    app = config.open()
    vault = config.vault(app, writing=False, announce=lambda _m: None)
    stored = sum(app.database.count_by_topic().values())
    rng = random.Random(7)
    timings = []
    for order_id in rng.sample(order_ids, QUERIES):
        moment = f"2026-03-0{rng.randint(1, 9)}T{rng.randint(0, 23):02d}:00:00.000Z"
        started = time.perf_counter()
        state = app.stream(Order, order_id, keep=lambda e, m=moment: e.occurred_at <= m)
        if state is not None:
            order_view(state, vault)
        timings.append((time.perf_counter() - started) * 1000)
    report.add(
        Figure(
            "order show --as-of, p99",
            percentile(timings, 0.99),
            "ms",
            f"{QUERIES:,} random orders at random moments, store of {stored:,} events (SQLite), "
            f"in-process: read, replay up to the moment, decrypt the address, render; "
            f"p50 {percentile(timings, 0.5):.2f} ms",
            goal="<= 5 ms",
        )
    )
    app.close()
    return config, order_ids
