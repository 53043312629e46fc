"""The console's figures (`--only console`): page latency under 20 concurrent readers.

A store of N simulated events (default 1,000,000) is published and its views built with
`orderlog project --once`; `orderlog console` then serves them (one process, as a user
starts it) and wrk, from Debian's packages, asks for three pages on loopback: the exception
list, an order page (an order with several versions, its history and exceptions) and the
analytics page (cancellations by reason over the whole log). Each page's p95 under 20
connections is printed beside the same page's p95 with one reader, as a ratio.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from bench.common import Figure, Report
from bench.read_models import simulated_logs
from orderlog.accounts import add_account
from orderlog.bootstrap import open_orderlog
from orderlog.config import Config
from orderlog.simulate import simulate
from projections.service import open_views
from tests.kafka_helpers import environment

EVENTS = 1_000_000
EVENTS_VARIABLE = "ORDERLOG_BENCH_CONSOLE_EVENTS"
READERS = 20
SECONDS = 15
PASSWORD = "bench password 1"
GOAL_MS = 100
LIVE_SEED = 99_001
WRK_SCRIPT = """
done = function(summary, latency, requests)
  local failed = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT %d %d %d %d %d\\n", latency:percentile(50), latency:percentile(95),
    summary.requests, summary.duration, failed))
end
"""
RESULT = re.compile(r"^RESULT (\d+) (\d+) (\d+) (\d+) (\d+)$", re.MULTILINE)


def events_wanted() -> int:
    return int(os.environ.get(EVENTS_VARIABLE, EVENTS))


def run(report: Report, work: Path, events: int = EVENTS) -> None:
    wrk = shutil.which("wrk")
    if wrk is None:
        print("  console: skipped, wrk is not installed (apt-get install wrk)", flush=True)
        return
    print(f"  console: building a log of {events:,} events and its views", flush=True)
    _quarter, config, stored, _ = simulated_logs(work / "console", events)
    build_views(config)
    order_id, versions = an_order_with_history(config)
    cold = cold_reads(config)
    app = open_orderlog(config, writing=True)
    add_account(app, "bench", "operations", PASSWORD, "bench")
    app.close()
    port = free_port()
    console = subprocess.Popen(
        [sys.executable, "-m", "orderlog", "console", "--port", str(port)],
        env=environment(config),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        cookie = signed_in(base)
        pages = {
            "exception list": "/exceptions",
            f"order page ({versions} versions)": f"/orders?id={order_id}",
            "analytics page": "/analytics?by=reason",
        }
        conditions = (
            f"views of {stored:,} simulated events (SQLite), standing still (no projector running: after the first "
            f"request each page's reads come from the console's cache, kept until a view changes), one `orderlog "
            f"console` process, wrk on loopback for {SECONDS} s per run, signed in; 2-core shared machine"
        )
        singles = {}
        for name, path in pages.items():
            singles[name] = one = measure(wrk, base + path, cookie, connections=1, threads=1)
            many = measure(wrk, base + path, cookie, connections=READERS, threads=2)
            report.add(
                Figure(
                    f"console {name}: p95 under {READERS} readers",
                    many["p95_ms"],
                    "ms",
                    f"{conditions}; {many['rate']:.0f} pages/s, p50 {many['p50_ms']:.1f} ms; "
                    f"one reader: p50 {one['p50_ms']:.1f} ms, p95 {one['p95_ms']:.1f} ms"
                    + (
                        f"; the page's reads after a view changes (uncached, in process): {cold[name]:.0f} ms"
                        if name in cold
                        else ""
                    ),
                    goal=f"<= {GOAL_MS} ms",
                    beside="its single-reader p95",
                    ratio=many["p95_ms"] / one["p95_ms"],
                )
            )
        with LiveTraffic(config) as live:
            for name, path in pages.items():
                changes = live.changes()
                many = measure(wrk, base + path, cookie, connections=READERS, threads=2)
                changed = live.changes() - changes
                report.add(
                    Figure(
                        f"console {name}: p95 under {READERS} readers while the views change",
                        many["p95_ms"],
                        "ms",
                        f"as above, while {LiveTraffic.__doc__}; the views changed {changed} times in the "
                        f"{SECONDS} s; {many['rate']:.0f} pages/s, p50 {many['p50_ms']:.1f} ms",
                        goal=f"<= {GOAL_MS} ms",
                        beside="its single-reader p95 with the views standing still",
                        ratio=many["p95_ms"] / singles[name]["p95_ms"],
                    )
                )
    finally:
        console.terminate()
        console.wait(timeout=30)


class LiveTraffic:
    """new orders are published every second (in this process, 40 orders a time, about 150
    events) and `orderlog project --follow` folds them"""

    def __init__(self, config: Config, *, orders_a_second: int = 40):
        self._config = config
        self._lines = list(simulate(orders_a_second * 600, seed=LIVE_SEED))
        self._slice = orders_a_second * 4  # about four lines an order
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._publish, daemon=True)
        self._projector: subprocess.Popen[bytes] | None = None
        self._views = open_views(config.views_location)
        self._changes = 0
        self._failed: BaseException | None = None

    def __enter__(self) -> LiveTraffic:
        self._projector = subprocess.Popen(
            [sys.executable, "-m", "orderlog", "project", "--follow"],
            env=environment(self._config),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        assert self._projector is not None
        self._projector.send_signal(signal.SIGINT)
        self._projector.wait(timeout=60)
        self._views.close()
        if self._failed is not None:
            raise RuntimeError(f"publishing the live traffic failed: {self._failed}") from self._failed

    def changes(self) -> int:
        """How many times the views have been seen to change (their stamp, looked at every 50 ms)."""
        return self._changes

    def _publish(self) -> None:
        try:
            self._publish_every_second()
        except BaseException as error:  # raised again in the bench's own thread, at the end
            self._failed = error

    def _publish_every_second(self) -> None:
        app = open_orderlog(self._config, writing=True)
        intake = app.intake()
        numbered = list(enumerate(self._lines, start=1))
        stamp, published = self._views.stamp(), time.monotonic()
        try:
            while not self._stop.wait(0.05):
                if self._views.stamp() != stamp:
                    stamp, self._changes = self._views.stamp(), self._changes + 1
                if time.monotonic() - published >= 1.0 and numbered:
                    published = time.monotonic()
                    intake.take_batch(numbered[: self._slice])
                    numbered = numbered[self._slice :]
        finally:
            app.close()


def cold_reads(config: Config) -> dict[str, float]:
    """What the queue's and the analytics page's reads cost when the cache cannot answer (the
    first request after a projector commits): median of 5, in process, milliseconds."""
    from projections import cancellations
    from projections import exceptions as queue_view

    views = open_views(config.views_location)
    reads = {
        "exception list": lambda: (queue_view.queue(views, limit=51), queue_view.by_department(views)),
        "analytics page": lambda: cancellations.report(views, by="reason"),
    }
    timings = {}
    for name, read in reads.items():
        runs = []
        for _ in range(5):
            started = time.perf_counter()
            read()
            runs.append((time.perf_counter() - started) * 1000)
        timings[name] = sorted(runs)[2]
    views.close()
    return timings


def build_views(config: Config) -> None:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "orderlog", "project", "--once"],
        env=environment(config),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    print(f"    views built in {time.perf_counter() - started:.0f} s", flush=True)


def an_order_with_history(config: Config) -> tuple[str, int]:
    views = open_views(config.views_location)
    try:
        row = views.rows("SELECT order_id, version FROM order_status WHERE version >= 6 ORDER BY order_id LIMIT 1")[0]
    finally:
        views.close()
    return str(row["order_id"]), int(row["version"])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def signed_in(base: str) -> str:
    """`orderlog_session=...` for wrk's requests, from a real sign-in."""
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=base, follow_redirects=False) as client:
        while True:
            try:
                page = client.get("/signin")
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None
        form = {"name": "bench", "password": PASSWORD, "csrf": token.group(1)}
        # the cookies are Secure and this is plain HTTP on loopback: sent by hand
        answer = client.post("/signin", data=form, headers={"cookie": f"orderlog_signin={token.group(1)}"})
        session = re.search(r"orderlog_session=([^;]+)", answer.headers.get("set-cookie", ""))
        assert answer.status_code == 303 and session is not None, answer.text[:500]
        cookie = f"orderlog_session={session.group(1)}"
        client.cookies.clear()
        assert client.get("/exceptions", headers={"cookie": cookie}).status_code == 200, "the session is not taken"
        return cookie


def measure(wrk: str, url: str, cookie: str, *, connections: int, threads: int) -> dict[str, float]:
    script = Path(os.environ.get("TMPDIR", "/tmp")) / f"orderlog-wrk-{os.getpid()}.lua"
    script.write_text(WRK_SCRIPT)
    command = [wrk, f"-t{threads}", f"-c{connections}", f"-d{SECONDS}s", "--timeout", "10s", "-s", str(script)]
    output = subprocess.run(
        [*command, "-H", f"Cookie: {cookie}", url], capture_output=True, text=True, check=True
    ).stdout
    script.unlink()
    found = RESULT.search(output)
    assert found is not None, output
    p50, p95, requests, duration, failed = (int(value) for value in found.groups())
    if failed:
        raise RuntimeError(f"wrk: {failed} of {requests} requests to {url} failed: {output}")
    return {"p50_ms": p50 / 1000, "p95_ms": p95 / 1000, "rate": requests / (duration / 1e6)}
