"""`make demo`: simulated traffic into the store, then what the store holds.

Run it twice and the second run records nothing new: every line is a duplicate.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from orderlog.application import OrderLog
from orderlog.bootstrap import open_orderlog
from orderlog.cli.common import UserError, output_refusal
from orderlog.cli.rendering import history_text
from orderlog.config import Config
from orderlog.domain.instants import format_instant
from orderlog.domain.order import Order
from orderlog.intake.outcomes import BatchReport, Tally
from orderlog.presentation import record_view
from orderlog.simulate import simulate
from orderlog.sources.signing import public_key_path, write_key_pair
from orderlog.store.location import DEFAULT_STORE
from projections import PROJECTORS, cancellations, exceptions, holds, status
from projections.service import open_views, project
from projections.sources import LogSource

REJECTS_FILE = "orderlog-demo-rejects.jsonl"


DEMO_KEY = "orderlog-demo.pem"
"""The demo's own checkpoint signing key, made once, so that the next steps it prints work."""


@dataclass(frozen=True)
class DemoRun:
    config: Config
    command: str
    """How the user runs orderlog here (`.venv/bin/orderlog`), for next steps that paste."""
    say: Callable[[str], None]
    announce: Callable[[str], None]


def run_demo(run: DemoRun, orders: int, seed: int) -> None:
    why = output_refusal(REJECTS_FILE, [], run.config)
    if why:
        raise UserError(f"the demo's rejects file: {why}; run the demo elsewhere, or move that file")
    app = open_orderlog(run.config, create=True, announce=run.announce)
    try:
        lines = _publish(run, app, orders, seed)
        run.say("")
        run.say("what the store holds now:")
        for line in app.summary().lines():
            run.say(f"  {line}")
        sample = _interesting_order(lines)
        if sample is not None:
            _show_order(run, app, sample)
        run.say("")
        verification = app.verify([], None)
        app.remember_verification(verification)
        run.say(f"trust: {verification.headline()}  (orderlog audit verify)")
        _views(run, app)
        _next_steps(run, sample)
    finally:
        app.close()


def _publish(run: DemoRun, app: OrderLog, orders: int, seed: int) -> list[str]:
    run.say(f"orderlog demo: {orders} simulated orders (seed {seed}) into {app.location.label}")
    lines = list(simulate(orders, seed))
    tally, examples = Tally(), []
    started = time.perf_counter()
    with Path(REJECTS_FILE).open("w", encoding="utf-8") as rejects:
        for results in app.take(enumerate(lines, start=1)):
            report = BatchReport.of(results)
            tally.add(report)
            for result in report.rejects:
                rejects.write(result.reject_line() + "\n")
                if len(examples) < 3 and result.outcome == "invalid":
                    examples.append(f"line {result.line}: {result.reason}")
    run.say(f"published {len(lines)} lines in {time.perf_counter() - started:.1f} s: {tally}")
    for example in examples:
        run.say(f"  e.g. {example}")
    run.say(f"  (every line not accepted, with its reason: {REJECTS_FILE})")
    return lines


def _views(run: DemoRun, app: OrderLog) -> None:
    """The read models, folded from the log now, one headline each."""
    views = open_views(run.config.views_location)
    try:
        kinds = list(PROJECTORS.values())
        started = time.perf_counter()
        reports = project(views, kinds, LogSource(app.log_reader), follow=False, engine=app)
        run.say("")
        run.say(
            f"views ({views.location.label}), up to date: {reports[0].folded:,} new record(s) folded by each of "
            f"{', '.join(PROJECTORS)} in {time.perf_counter() - started:.1f} s (orderlog project):"
        )
        run.say(f"  holds          {holds.headline(views)}")
        run.say(f"  cancellations  {cancellations.headline(views)}")
        run.say(f"  status         {status.headline(views)}")
        run.say(f"  exceptions     {exceptions.headline(views)}")
    finally:
        views.close()


def _show_order(run: DemoRun, app: OrderLog, order_id: str) -> None:
    state = app.read_order(order_id)
    run.say("")
    run.say(f"one order, {state.status} / {state.financial_status} (orderlog order history {order_id}):")
    records = [record_view(record, app.vault) for record in app.order_history(order_id)]
    for line in history_text(records, state.currency).splitlines():
        run.say(f"  {line}")


def _next_steps(run: DemoRun, order_id: str | None) -> None:
    """Commands that work when pasted, from where the demo ran (the demo's signing key is
    made here if missing; keep a real one elsewhere)."""
    if not Path(DEMO_KEY).exists():
        write_key_pair(Path(DEMO_KEY))
        run.announce(f"made {DEMO_KEY} (and its .pub.pem) to sign the demo's checkpoints")
    store = "" if run.config.store_url == DEFAULT_STORE else f" --store {run.config.store_url}"
    orderlog = f"{run.command}{store}"
    order = order_id or "ORDER_ID"
    run.say("")
    run.say("to work the queue in a browser (the first asks for a password, the second runs until Ctrl-C):")
    run.say(f"  {orderlog} users add admin --role admin")
    run.say(f"  ORDERLOG_SIGNING_KEY={DEMO_KEY} {orderlog} console      # then open http://127.0.0.1:8000/")
    run.say("")
    run.say("next, paste any of these:")
    for step in (
        f"{orderlog} order show {order}",
        f"{orderlog} order show {order} --as-of {_a_moment_in_its_life(run, order_id)}",
        f"{orderlog} order history {order} --json",
        f"{orderlog} order status {order}",
        f"{orderlog} holds",
        f"{orderlog} analytics cancellations --by reason --plot orderlog-demo-cancellations.png",
        f"{orderlog} exceptions list --overdue --department finance",
        f"{orderlog} audit checkpoint --signing-key {DEMO_KEY} --out orderlog-demo-checkpoint.json",
        f"{orderlog} audit proof {order} --checkpoint orderlog-demo-checkpoint.json --signing-key {DEMO_KEY} "
        "--out orderlog-demo-proof.json",
        f"{_here(Path(sys.executable))} -m orderlog.audit_verify orderlog-demo-proof.json "
        f"orderlog-demo-checkpoint.json --public-key {public_key_path(Path(DEMO_KEY))}",
        *(["make test"] if Path("Makefile").exists() else []),
    ):
        run.say(f"  {step}")


def _here(path: Path) -> str:
    """`path` relative to where the user is, when it is below it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _a_moment_in_its_life(run: DemoRun, order_id: str | None) -> str:
    """Just before the order's second event: `--as-of` then shows it as it stood early on."""
    app = open_orderlog(run.config)
    try:
        records = app.records(Order, order_id) if order_id else []
    finally:
        app.close()
    if len(records) < 2:
        return "2026-03-02T12:00:00Z"
    second = datetime.fromisoformat(records[1].occurred_at) - timedelta(milliseconds=1)
    return format_instant(second)


def _interesting_order(lines: list[str]) -> str | None:
    """An order whose history shows the lifecycle at work: one that needs confirmation."""
    for line in lines:
        if '"requires_confirmation": true' in line:
            return str(json.loads(line)["order_id"])
    return None
