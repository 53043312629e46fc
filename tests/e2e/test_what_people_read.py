"""What people read: money in major units, readable addresses and histories, next steps that
work when pasted, and an installed wheel that knows its own schemas."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from orderlog.domain.money import format_money
from tests import builders as b
from tests.e2e.test_cli import orderlog, write_lines

ROOT = Path(__file__).parents[2]


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        (98670, "CNY", "CNY 986.70"),
        (5, "CNY", "CNY 0.05"),
        (1200, "JPY", "JPY 1,200"),
        (1234567, "KWD", "KWD 1,234.567"),
        (123456789, "USD", "USD 1,234,567.89"),
        (-250, "EUR", "EUR -2.50"),
    ],
)
def test_money_is_shown_in_major_units_of_its_currency(amount: int, currency: str, shown: str) -> None:
    assert format_money(amount, currency) == shown


@pytest.fixture
def store(tmp_path: Path) -> Path:
    events = write_lines(
        tmp_path / "events.jsonl",
        b.submitted(lines=[("SKU-A", 2, 49335)], total=98670, shipping_fee=0),
        b.paid(amount=98670),
        b.cancelled(reason_code="OTHER", note="ordered twice by mistake"),
    )
    assert orderlog("publish", str(events), cwd=tmp_path).returncode == 0
    return tmp_path


def test_order_show_text_reads_as_fields_with_money_in_major_units(store: Path) -> None:
    text = orderlog("order", "show", "SO-1", cwd=store).stdout
    assert "total             CNY 986.70" in text and "paid_amount       CNY 986.70" in text
    assert "SKU-A  2    CNY 493.35" in text
    assert "{" not in text and "}" not in text  # no JSON blobs
    assert "  reason_code   OTHER" in text and "  note          ordered twice by mistake" in text
    assert "  name         Zhang Wei" in text and "  city         Shanghai" in text
    shown = json.loads(orderlog("order", "show", "SO-1", "--json", cwd=store).stdout)
    assert shown["total"] == 98670 and shown["lines"][0]["unit_price"] == 49335  # JSON keeps minor units


def test_order_history_text_shows_every_record_in_full(store: Path) -> None:
    text = orderlog("order", "history", "SO-1", cwd=store).stdout
    assert "amount CNY 986.70, method alipay, payment_id P-1" in text
    assert "note ordered twice by mistake, reason_code OTHER" in text
    assert "shipping_address (name Zhang Wei, phone 13800138000, line1 88 Nanjing Road" in text
    assert max(len(line) for line in text.splitlines()) > 200  # nothing cut to fit


def test_whatever_a_text_holds_reaches_the_terminal_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    """Records stored before unsafe characters were refused can still hold them."""
    from orderlog.cli import echo
    from orderlog.cli.rendering import render_text

    echo(render_text({"channel": "\x1b[31mred", "note": "a\u202eb\u200bc", "carrier": "x\ry"}))
    out = capsys.readouterr().out
    assert out == "channel  \\u001b[31mred\nnote     a\\u202eb\\u200bc\ncarrier  x\\u000dy\n"


def test_the_demos_next_steps_work_when_pasted(tmp_path: Path) -> None:
    shown = orderlog("demo", "--orders", "80", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    steps = lines[lines.index("next, paste any of these:") + 1 :]
    assert len(steps) >= 6
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ORDERLOG_")}
    for step in steps:
        if step.strip() == "make test":
            continue
        ran = subprocess.run(
            shlex.split(step), cwd=tmp_path, capture_output=True, text=True, env=environment, check=False
        )
        assert ran.returncode == 0, (step, ran.stderr)
    assert "verified" in ran.stdout


def test_an_installed_wheel_checks_its_own_schemas(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path / "dist"), str(ROOT)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        check=False,
    )
    if built.returncode != 0:
        pytest.skip(f"cannot build a wheel here: {built.stderr.strip().splitlines()[-1:]}")
    (wheel,) = (tmp_path / "dist").glob("orderlog-*.whl")
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)], check=True
    )
    environment = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run(
        [sys.executable, "-c", "import orderlog; print(orderlog.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=environment,
        check=True,
    )
    assert where.stdout.startswith(str(site))
    checked = subprocess.run(
        [sys.executable, "-m", "orderlog", "schemas", "check"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=environment,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.strip() == "every schema in schemas/ matches its declaration"
