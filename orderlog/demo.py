"""`make demo`: simulated traffic into the store, then what the store holds.

Run it twice and the second run records nothing new: every line is a duplicate.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from orderlog.audit.verification import verify_store
from orderlog.config import Config
from orderlog.domain.order import Order
from orderlog.publishing import Tally, open_publisher
from orderlog.simulate import simulate
from orderlog.summary import summarise
from orderlog.views import history_text, record_view

REJECTS_FILE = "orderlog-demo-rejects.jsonl"


def run_demo(
    config: Config,
    orders: int,
    seed: int,
    say: Callable[[str], None],
    announce: Callable[[str], None],
) -> None:
    app, publisher = open_publisher(config, announce)
    say(f"orderlog demo: {orders} simulated orders (seed {seed}) into {app.location.label}")
    lines = list(simulate(orders, seed))
    tally, examples = Tally(), []
    started = time.perf_counter()
    with Path(REJECTS_FILE).open("w", encoding="utf-8") as rejects:
        for results in publisher.publish(enumerate(lines, start=1)):
            tally.add(results)
            for result in results:
                if result.outcome in ("refused", "invalid"):
                    rejects.write(json.dumps(result.as_reject(), ensure_ascii=False) + "\n")
                    if len(examples) < 3 and result.outcome == "invalid":
                        examples.append(f"line {result.line}: {result.reason}")
    elapsed = time.perf_counter() - started
    say(f"published {len(lines)} lines in {elapsed:.1f} s: {tally}")
    for example in examples:
        say(f"  e.g. {example}")
    say(f"  (every refused or invalid line, with its reason: {REJECTS_FILE})")
    say("")
    say("what the store holds now:")
    for line in summarise(app).lines():
        say(f"  {line}")
    sample = _interesting_order(lines)
    if sample and (state := app.stream(Order, sample)) is not None:
        vault = config.vault(app, writing=False, announce=announce)
        say("")
        say(f"one order, {state.status} / {state.financial_status} (orderlog order history {sample}):")
        records = [record_view(event, vault) for event in app.records(Order, sample)]
        for line in history_text(records).splitlines():
            say(f"  {line[:160]}")
    say("")
    say(f"trust: {verify_store(app, [], None).headline()}  (orderlog audit verify)")
    say("")
    say("next: orderlog order show ORDER_ID --as-of TIME | orderlog audit checkpoint | make test")


def _interesting_order(lines: list[str]) -> str | None:
    """An order whose history shows the lifecycle at work: a partial payment or a refusal."""
    for line in lines:
        if '"requires_confirmation": true' in line:
            return str(json.loads(line)["order_id"])
    return None
