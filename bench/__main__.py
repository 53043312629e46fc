"""Run every benchmark and print each figure with its conditions (`make bench`)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from bench import console, kafka_backbone, read_models, trust, write_side
from bench.common import Report, machine


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--runs", type=int, default=3, help="repeats of each throughput figure (median reported)")
    parser.add_argument("--work", type=Path, default=Path(".bench/work"), help="scratch directory")
    parser.add_argument(
        "--only",
        choices=["write", "trust", "kafka", "views", "console"],
        action="append",
        help="run only these parts (repeatable; default: all)",
    )
    parser.add_argument(
        "--views-events",
        type=int,
        default=read_models.events_wanted(),
        help=f"events in the read models' log (default {read_models.EVENTS:,}, or ${read_models.EVENTS_VARIABLE})",
    )
    parser.add_argument(
        "--console-events",
        type=int,
        default=console.events_wanted(),
        help=f"events behind the console's views (default {console.EVENTS:,}, or ${console.EVENTS_VARIABLE})",
    )
    args = parser.parse_args()
    parts = set(args.only or ["write", "trust", "kafka", "views", "console"])
    print(f"orderlog benchmarks on {machine()}", flush=True)
    report = Report()
    if parts & {"write", "trust"}:
        big = write_side.run(report, args.work, args.runs)
        if "trust" in parts:
            trust.run(report, args.work, args.runs, big)
    if "kafka" in parts:
        kafka_backbone.run(report, args.work, args.runs)
    if "views" in parts:
        read_models.run(report, args.work, args.runs, args.views_events)
    if "console" in parts:
        console.run(report, args.work, args.console_events)
    print(f"\nsaved {report.save()}")
    shutil.rmtree(args.work, ignore_errors=True)


main()
