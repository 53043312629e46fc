"""The console as people use it, in Chromium: work the exception queue, read an order as it stood,
take its proof away and check it offline, chart cancellations, and what each role may see and do.

One console serves the whole session (conftest.py); tests that act on the queue each take an open
exception nobody has touched yet, so they do not depend on one another's order. Along the way the
main pages are saved as pictures (`make screenshots` puts them in docs/screenshots/ for the README).
"""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from orderlog.domain.instants import format_instant, parse_instant
from orderlog.simulate import DEFAULT_START
from tests.browser.conftest import (
    ADMIN,
    ANALYST,
    CUSTOMER_SERVICE,
    OPERATIONS,
    Console,
    fill_in_sign_in,
    new_context,
    screenshot,
    start_chromium,
)

why_not = start_chromium()
if why_not and os.environ.get("ORDERLOG_REQUIRE_BROWSER") == "1":  # CI: the browser tests must run
    raise RuntimeError(f"ORDERLOG_REQUIRE_BROWSER=1, but {why_not}")
if why_not:
    pytest.skip(why_not, allow_module_level=True)

from playwright.sync_api import expect  # noqa: E402 (importable now)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

pytestmark = pytest.mark.browser

SignIn = Callable[[str], "Page"]
ACKNOWLEDGED_NOTE = "Taken: checking with the department that owns it today"
RESOLVED_NOTE = "Sorted out with the department; the order goes on"
HOSTILE_NOTE = "<script>window.__pwned=1</script><b>bold</b>"
HISTORY = "table.history tbody tr"
ACKNOWLEDGE = "form[action='/exceptions/acknowledge']"
RESOLVE = "form[action='/exceptions/resolve']"


def test_signing_in_comes_back_to_the_page_asked_for(chromium: Browser, console: Console) -> None:
    """Signed out, a page sends the browser to the sign-in form, which comes back to it after."""
    context = new_context(chromium)
    try:
        page = context.new_page()
        page.goto(f"{console.url}/holds?sku=SKU-0001")
        expect(page).to_have_url(re.compile(r"/signin\?next=/holds%3Fsku%3DSKU-0001$"))
        expect(page.locator("h1")).to_have_text("Sign in")
        screenshot(page, "signin")
        fill_in_sign_in(page, ANALYST)
        expect(page).to_have_url(f"{console.url}/holds?sku=SKU-0001")
        expect(page.locator("h1")).to_have_text("Holds")
    finally:
        context.close()


def test_operations_acknowledges_and_resolves_an_overdue_exception(sign_in: SignIn, console: Console) -> None:
    """(a) The queue's overdue exception about an order: acknowledged, then resolved, each with a
    note, and both recorded in the order's history with the person as actor."""
    page = sign_in(OPERATIONS)
    expect(page.locator("table.queue tbody tr").first).to_be_visible()
    screenshot(page, "queue")

    exception_id = _open_an_overdue_exception(page)
    page.fill(f"{ACKNOWLEDGE} input[name=note]", ACKNOWLEDGED_NOTE)
    page.click(f"{ACKNOWLEDGE} button[type=submit]")
    expect(page.locator(".flash")).to_have_text(
        f"{exception_id} acknowledged: recorded in order {_order_of(exception_id)}'s history."
    )
    expect(page.locator("h1 .badge").first).to_have_text("acknowledged")
    expect(_fact(page, "Acknowledged")).to_contain_text(f"by {OPERATIONS} at ")
    expect(page.locator(ACKNOWLEDGE)).to_have_count(0)
    screenshot(page, "exception")

    page.fill(f"{RESOLVE} input[name=note]", RESOLVED_NOTE)
    page.click(f"{RESOLVE} button[type=submit]")
    expect(page.locator(".flash")).to_contain_text(f"{exception_id} resolved")
    expect(page.locator("h1 .badge").first).to_have_text("resolved")
    expect(_fact(page, "Resolved")).to_contain_text(f"by {OPERATIONS}")
    expect(page.locator(RESOLVE)).to_have_count(0)

    page.locator("dl.facts a[href^='/orders?id=']").click()
    expect(page.locator("h1")).to_have_text(f"Order {_order_of(exception_id)}")
    for kind, note in [
        ("ExceptionAcknowledged", ACKNOWLEDGED_NOTE),
        ("ExceptionResolved", RESOLVED_NOTE),
    ]:
        row = page.locator(HISTORY).filter(has=page.locator("td:nth-child(2)", has_text=re.compile(f"^{kind}$")))
        expect(row).to_have_count(1)
        expect(row.locator("td:nth-child(6)")).to_have_text(OPERATIONS)
        expect(row.locator("td.data")).to_contain_text(exception_id)
        expect(row.locator("td.data")).to_contain_text(note)
    expect(page.locator("table tr.resolved", has_text=exception_id.split(":")[0])).to_have_count(1)


def test_an_order_as_it_stood(sign_in: SignIn, console: Console) -> None:
    """(b) An "as of" moment between the order's first two records shows the status after the first,
    with the banner; the version control moved back shows each version, later records greyed."""
    page = sign_in(OPERATIONS)
    order_id = _open_an_order_with_history(page, console)
    screenshot(page, "order")
    now_status = page.locator("#status").inner_text()
    rows = page.locator(HISTORY)
    versions = rows.count()
    first, second = (_event_time(rows.nth(index)) for index in (0, 1))
    assert first < second, f"order {order_id}: its second record is not later in event time ({first}, {second})"
    between = first + (second - first) / 2

    page.fill("input[name=as_of]", format_instant(between))
    page.click("form.asof-control button:has-text('Show then')")
    expect(page.locator(".asof")).to_contain_text(f"(version 1 of {versions})")
    expect(page.locator(".asof")).to_contain_text("As it stood")
    status_then = page.locator("#status").inner_text()
    assert status_then != now_status, (
        f"order {order_id} {now_status} now, and {status_then} at {format_instant(between)}"
    )
    expect(page.locator("input[name=as_of]")).to_have_value(re.compile(re.escape(format_instant(between)[:19])))
    expect(page.locator(f"{HISTORY}.later")).to_have_count(versions - 1)
    screenshot(page, "order_asof")

    page.locator("input[type=range][name=version]").fill("2")
    page.click("form.asof-control button:has-text('Show version')")
    expect(page).to_have_url(re.compile(r"[?&]version=2(&|$)"))
    expect(page.locator(".asof")).to_contain_text(f"(version 2 of {versions})")
    expect(page.locator(f"{HISTORY}.later")).to_have_count(versions - 2)
    page.locator("input[type=range][name=version]").fill("1")
    page.click("form.asof-control button:has-text('Show version')")
    expect(page.locator(".asof")).to_contain_text(f"(version 1 of {versions})")
    expect(page.locator("#status")).to_have_text(status_then)

    page.locator(".asof a", has_text="Now").click()
    expect(page.locator(".asof")).to_have_count(0)
    expect(page.locator("#status")).to_have_text(now_status)


def test_proof_and_checkpoint_verify_offline(sign_in: SignIn, console: Console, tmp_path: Path) -> None:
    """(c) The order's proof and the latest checkpoint, downloaded from its page, pass the offline
    verifier with the log's public key."""
    page = sign_in(OPERATIONS)
    order_id = _open_an_order_with_history(page, console)
    saved = {}
    for link, name in [("Download proof", "proof.json"), ("Download checkpoint", "checkpoint.json")]:
        with page.expect_download() as download:
            page.click(f"a.button:has-text('{link}')")
        download.value.save_as(tmp_path / name)
        saved[name] = download.value.suggested_filename
    assert saved == {"proof.json": f"proof-{order_id}.json", "checkpoint.json": saved["checkpoint.json"]}
    assert re.fullmatch(r"checkpoint-\d+\.json", saved["checkpoint.json"])

    verify = ["orderlog.audit_verify", "proof.json", "checkpoint.json", "--public-key", str(console.public_key)]
    verified = subprocess.run(
        [sys.executable, "-m", *verify],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"order {order_id}" in verified.stdout


def test_cancellation_analytics_chart_and_csv(sign_in: SignIn, console: Console, tmp_path: Path) -> None:
    """(d) A window of event time: the SVG chart draws a bar per group, and the CSV downloads."""
    page = sign_in(ANALYST)
    page.click("header.top nav a:has-text('Analytics')")
    since = parse_instant(DEFAULT_START)
    until = since + timedelta(days=2)
    page.fill("input[name=since]", format_instant(since))
    page.fill("input[name=until]", format_instant(until))
    page.select_option("select[name=by]", "reason")
    page.click("form.filters button[type=submit]")
    expect(page).to_have_url(re.compile(r"since=2026-03-01"))
    expect(page.locator("svg.chart")).to_be_visible()
    bars = page.locator("svg.chart rect.bar")
    assert bars.count() >= 1
    assert page.locator("table tbody tr").count() == bars.count()
    screenshot(page, "analytics")

    with page.expect_download() as download:
        page.click("a.button:has-text('Download CSV')")
    assert download.value.suggested_filename == "cancellations-by-reason.csv"
    download.value.save_as(tmp_path / "cancellations.csv")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "cancellations.csv").read_text(encoding="utf-8"))))
    assert len(rows) == bars.count()
    assert {"reason", "cancelled"} <= set(rows[0])


def test_upstream_html_is_shown_as_text(sign_in: SignIn, console: Console) -> None:
    """(e) A note with markup is shown as the characters typed: no script ran, no element was made.
    (The CSP would stop an inline script anyway; the <b> shows whether the text was escaped.)"""
    page = sign_in(OPERATIONS)
    exception_id = _open_an_overdue_exception(page)
    page.fill(f"{ACKNOWLEDGE} input[name=note]", HOSTILE_NOTE)
    page.click(f"{ACKNOWLEDGE} button[type=submit]")
    expect(page.locator("h1 .badge").first).to_have_text("acknowledged")

    expect(page.locator("dd.note")).to_have_text(HOSTILE_NOTE)
    expect(page.locator("td.note", has_text=HOSTILE_NOTE)).to_have_count(1)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator(".note b, .note script").count() == 0

    page.locator("dl.facts a[href^='/orders?id=']").click()
    expect(page.locator("h1")).to_have_text(f"Order {_order_of(exception_id)}")
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("td.data b, td.data script").count() == 0


def test_an_analyst_reads_but_may_not_act(sign_in: SignIn, console: Console) -> None:
    """(f) No Acknowledge or Resolve forms (and the server refuses the action itself); /audit is 403."""
    page = sign_in(ANALYST)
    exception_id = _open_an_overdue_exception(page)
    expect(page.locator("h1")).to_contain_text(exception_id.split(":")[0])
    expect(page.locator(f"{ACKNOWLEDGE}, {RESOLVE}")).to_have_count(0)
    expect(page.locator("header.top nav a", has_text="Audit")).to_have_count(0)

    refused = page.request.post(
        f"{console.url}/exceptions/acknowledge", form={"exception_id": exception_id, "note": "not mine to do"}
    )
    assert refused.status == 403

    response = page.goto(f"{console.url}/audit")
    assert response is not None
    assert response.status == 403
    expect(page.locator("h1")).to_have_text("Not allowed")


def test_personal_data_in_clear_for_customer_service_only(sign_in: SignIn, console: Console) -> None:
    """(g) The shipping address: in clear for customer service, [masked] for operations."""
    service = sign_in(CUSTOMER_SERVICE)
    order_id = _open_an_order_with_history(service, console)
    in_clear = service.locator("dd.personal").inner_text()

    operations = sign_in(OPERATIONS)
    operations.goto(f"{console.url}/orders?id={order_id}")
    masked = operations.locator("dd.personal").inner_text()

    assert "[masked]" not in in_clear
    assert masked.count("[masked]") >= 3, masked
    assert in_clear != masked
    assert in_clear.endswith(masked.rsplit("[masked]", 1)[1]), "city and country are not personal: both see them"
    assert "[masked]" not in service.locator(f"{HISTORY}:first-child td.data").inner_text()
    assert "[masked]" in operations.locator(f"{HISTORY}:first-child td.data").inner_text()


def test_holds_audit_and_users_pages(sign_in: SignIn, console: Console) -> None:
    """The remaining pages for the README, as an admin: oversold SKUs first, the checkpoint, the accounts."""
    page = sign_in(ADMIN)
    page.click("header.top nav a:has-text('Holds')")
    oversold = page.locator("table.holds tbody tr").first
    expect(oversold).to_have_class("oversold")
    sku = oversold.locator("td a").first.inner_text()
    oversold.locator("td a").first.click()  # the whole list is 200-odd SKUs: the screenshot shows one, and its orders
    expect(page.locator("h2")).to_have_text(f"Orders holding {sku}")
    expect(page.locator("table.holds tbody tr")).to_have_count(1)
    screenshot(page, "holds")

    page.click("header.top nav a:has-text('Audit')")
    expect(page.locator("h1")).to_have_text("Audit")
    expect(page.locator("table tbody tr").first.locator("td").first).to_have_text(re.compile(r"^\d+$"))
    screenshot(page, "audit")

    page.click("header.top nav a:has-text('Users')")
    for name in (ADMIN, OPERATIONS, ANALYST, CUSTOMER_SERVICE):
        expect(page.locator("table tbody tr td:first-child", has_text=re.compile(f"^{name}$"))).to_have_count(1)
    screenshot(page, "users")


def test_an_admin_registers_a_source_with_its_public_key_and_revokes_it(
    sign_in: SignIn, console: Console, tmp_path: Path
) -> None:
    """A key pair made as the page says (`orderlog keys new-signing`), its public half pasted in."""
    subprocess.run(
        [sys.executable, "-m", "orderlog", "keys", "new-signing", "--out", str(tmp_path / "shop.pem")],
        check=True,
        capture_output=True,
    )
    page = sign_in(ADMIN)
    page.click("header.top nav a:has-text('Sources')")
    expect(page.locator("h1")).to_have_text("Sources")
    page.fill("input[name=name]", "web-shop")
    page.check("input[name=types][value=OrderSubmitted]")
    page.check("input[name=types][value=OrderCancelled]")
    page.fill("textarea[name=public_key]", (tmp_path / "shop.pub.pem").read_text(encoding="ascii"))
    page.click("form[action='/sources/add'] button[type=submit]")
    expect(page.locator("p.flash")).to_contain_text("may now publish OrderCancelled, OrderSubmitted")
    row = page.locator("table tbody tr", has_text="web-shop")
    expect(row.locator("td").nth(3)).to_contain_text(f"by {ADMIN}")
    screenshot(page, "sources")

    page.select_option("form[action='/sources/revoke'] select[name=name]", "web-shop")
    page.fill("form[action='/sources/revoke'] input[name=reason]", "the shop moved to a new platform")
    page.click("form[action='/sources/revoke'] button[type=submit]")
    expect(row.locator("td").nth(4)).to_contain_text(f"by {ADMIN}")


def _open_an_overdue_exception(page: Page) -> str:
    """Opens the first open, overdue exception about an order (an OVERSOLD one is about a SKU, and
    takes no action here) through the queue's filters; its id."""
    page.click("header.top nav a:has-text('Exceptions')")
    page.select_option("select[name=status]", "open")
    page.check("input[name=overdue]")
    page.click("form.filters button[type=submit]")
    expect(page).to_have_url(re.compile(r"status=open.*overdue=1"))
    about_an_order = page.locator("table.queue tbody tr.overdue").filter(has=page.locator("a[href^='/orders?id=']"))
    expect(about_an_order.first).to_be_visible()
    about_an_order.first.locator("a[href^='/exceptions/item?id=']").click()
    page.wait_for_url(re.compile(r"/exceptions/item\?id="))
    exception_id = page.locator("dl.facts dd").first.inner_text()
    assert ":" in exception_id and not exception_id.startswith("OVERSOLD:"), exception_id
    return exception_id


def _open_an_order_with_history(page: Page, console: Console) -> str:
    """Opens the order of a SHIPMENT_DELAYED exception (fully paid, so submitted, then paid: several
    versions, the status changed between them) through the queue; its id."""
    page.goto(f"{console.url}/exceptions?status=all&code=SHIPMENT_DELAYED")
    page.locator("table.queue tbody tr a[href^='/orders?id=']").first.click()
    page.wait_for_url(re.compile(r"/orders\?id="))
    order_id = page.locator("h1").inner_text().removeprefix("Order ")
    assert page.locator(HISTORY).count() >= 3, f"order {order_id} has fewer than 3 records"
    return order_id


def _fact(page: Page, term: str) -> Locator:
    """The <dd> beside the <dt> saying `term`."""
    return page.locator(f"dl.facts dt:text-is('{term}') + dd")


def _order_of(exception_id: str) -> str:
    return exception_id.split(":", 1)[1]


def _event_time(row: Locator) -> datetime:
    return parse_instant(row.locator("td:nth-child(3)").inner_text())
