"""Run every benchmark and print each figure with its conditions (`make bench`)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from bench import kafka_backbone, trust, write_side
from bench.common import Report, machine


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--runs", type=int, default=3, help="repeats of each throughput figure (median reported)")
    parser.add_argument("--work", type=Path, default=Path(".bench/work"), help="scratch directory")
    parser.add_argument(
        "--only",
        choices=["write", "trust", "kafka"],
        action="append",
        help="run only these parts (repeatable; default: all)",
    )
    args = parser.parse_args()
    parts = set(args.only or ["write", "trust", "kafka"])
    print(f"orderlog benchmarks on {machine()}", flush=True)
    report = Report()
    if parts & {"write", "trust"}:
        big = write_side.run(report, args.work, args.runs)
        if "trust" in parts:
            trust.run(report, args.work, args.runs, big)
    if "kafka" in parts:
        kafka_backbone.run(report, args.work, args.runs)
    print(f"\nsaved {report.save()}")
    shutil.rmtree(args.work, ignore_errors=True)


main()
