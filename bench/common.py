"""Measuring on a shared, noisy 2-core machine: repeat, take the median, print conditions."""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS = Path(".bench")


@dataclass
class Figure:
    what: str
    value: float
    unit: str
    conditions: str
    goal: str = ""
    beside: str = ""
    ratio: float | None = None
    runs: list[float] = field(default_factory=list)

    def line(self) -> str:
        spread = f" (runs {', '.join(_fmt(r) for r in self.runs)})" if len(self.runs) > 1 else ""
        ratio = f"; ratio {self.ratio:.2f} to {self.beside}" if self.ratio is not None else ""
        goal = f"; goal {self.goal}" if self.goal else ""
        headline = f"{self.what}: {_fmt(self.value)} {self.unit}{spread}{ratio}{goal}"
        return f"{headline}\n    conditions: {self.conditions}"


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"


def median_of(runs: int, measure: Callable[[], float]) -> tuple[float, list[float]]:
    values = [measure() for _ in range(runs)]
    return statistics.median(values), values


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def machine() -> str:
    return (
        f"{os.cpu_count()} cores, Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{platform.machine()}"
    )


class Report:
    def __init__(self) -> None:
        self.figures: list[Figure] = []
        self.started = time.time()

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        print(figure.line(), flush=True)
        return figure

    def save(self) -> Path:
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / "results.json"
        payload: dict[str, Any] = {
            "machine": machine(),
            "seconds": round(time.time() - self.started),
            "figures": [asdict(f) for f in self.figures],
        }
        path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        return path
