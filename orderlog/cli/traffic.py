"""Traffic for trying orderlog: `simulate`, `sign` and `demo`."""

from __future__ import annotations

import json
import shutil
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import IO

import click

from orderlog import simulate as simulation
from orderlog.cli.common import OUTPUT_OR_STDOUT, announce, cli, current_config, echo, moment_option
from orderlog.cli.demo import DemoRun, run_demo
from orderlog.intake.reading import input_lines
from orderlog.sources.signing import load_private_key, parse_json_object, sign_envelope
from orderlog.sources.simulated import sign_simulated


@cli.command()
@click.option("--orders", type=click.IntRange(1, 10_000_000), default=2000, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--start",
    callback=moment_option,
    metavar="TIME",
    help="first order's day [default 2026-03-01T00:00:00Z]",
)
@click.option("--out", type=OUTPUT_OR_STDOUT, metavar="FILE", help="default (or -): stdout")
@click.option(
    "--sign-with",
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="sign every event with its source's key from DIR (created if missing)",
)
def simulate(orders: int, seed: int, start: str | None, out: str | None, sign_with: str | None) -> None:
    """Realistic upstream traffic as JSON lines; the same lines for the same seed."""
    lines = simulation.simulate(orders, seed, start or simulation.DEFAULT_START)
    if sign_with:
        lines = sign_simulated(lines, Path(sign_with), announce)
    with open(out, "w", encoding="utf-8") if out else nullcontext(sys.stdout) as file:
        for line in lines:
            file.write(line + "\n")


@cli.command()
@click.option(
    "--key",
    type=click.Path(exists=True, dir_okay=False),
    required=True,
    metavar="FILE",
    help="the source's Ed25519 private key (PEM)",
)
@click.argument("source", type=click.File("rb"), default="-", metavar="IN")
def sign(key: str, source: IO[bytes]) -> None:
    """Sign JSON lines (envelopes) with a source's key: signed lines on stdout.

    A line that is not a JSON object is named on stderr and left out; the others are
    signed. Exits 2 if any line was left out.
    """
    private_key = load_private_key(Path(key))
    left_out = 0
    for number, line, _position in input_lines(source):
        try:
            envelope = parse_json_object(line)
            signed = json.dumps(sign_envelope(private_key, envelope), ensure_ascii=False)
        except (ValueError, RecursionError, UnicodeError) as error:
            left_out += 1
            echo(f"orderlog: line {number} not signed: not a JSON object that can be signed ({error})", err=True)
            continue
        echo(signed)
    if left_out:
        echo(f"orderlog: {left_out} line(s) not signed", err=True)
        sys.exit(2)


@cli.command()
@click.option("--orders", type=click.IntRange(1, 1_000_000), default=2000, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
def demo(orders: int, seed: int) -> None:
    """Simulate traffic, publish it into the store, and say what is in it now."""
    run_demo(DemoRun(current_config(), _how_you_run_orderlog(), echo, announce), orders, seed)


def _how_you_run_orderlog() -> str:
    """`.venv/bin/orderlog` or `python -m orderlog`: what this process was started as."""
    started_as = Path(sys.argv[0])
    if started_as.name == "__main__.py":
        return f"{sys.executable} -m orderlog"
    found = shutil.which(str(started_as)) if started_as.parent == Path() else str(started_as)
    path = Path(found or started_as).absolute()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
