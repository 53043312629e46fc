"""`orderlog publish`: upstream events from a file (or standard input) into the store."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import IO

import click

from orderlog.bootstrap import open_orderlog
from orderlog.cli.common import (
    OUTPUT_FILE,
    UserError,
    announce,
    cli,
    current_config,
    echo,
    interruptible,
    progress_bar,
    refuse_output_over,
)
from orderlog.config import Config
from orderlog.intake.outcomes import FAILED, BatchReport, LineResult, Tally
from orderlog.intake.parallel import publish_file_in_parallel
from orderlog.intake.pipeline import BATCH_LINES
from orderlog.intake.reading import input_lines


@cli.command()
@click.argument("source", type=click.Path(exists=True, dir_okay=False, allow_dash=True), metavar="FILE|-")
@click.option(
    "--rejects",
    type=OUTPUT_FILE,
    metavar="FILE",
    help="write every line not accepted (conflicts, refusals, invalid lines) here as JSON lines (default: stderr)",
)
@click.option(
    "--require-signatures",
    is_flag=True,
    default=None,
    help="reject unsigned events [env ORDERLOG_REQUIRE_SIGNATURES=1]",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="processes, each taking a share of the orders (the order within an order is kept)",
)
@click.option(
    "--batch",
    type=click.IntRange(1, 100_000),
    default=BATCH_LINES,
    show_default=True,
    help="lines per transaction",
)
def publish(source: str, rejects: str | None, require_signatures: bool | None, workers: int, batch: int) -> None:
    """Record upstream events, one JSON envelope per line (see README: the contract).

    Prints `accepted N, duplicates N, conflicts N, refused N, invalid N`; exits 0 when every line
    was accepted or a duplicate, 2 otherwise (3 if orderlog itself failed on a line).
    Publishing the same input again records nothing twice. Blank lines are passed over.
    Ctrl-C stops after the batch under way and says what was stored.
    """
    config = current_config()
    if require_signatures:
        config = replace(config, require_signatures=True)
    _refuse_output_over_input(rejects, [source], config)
    tally = Tally()
    with (
        _input(source, spool=workers > 1) as (path, file),
        progress_bar(path.stat().st_size if path.name != "-" else 0, unit="B", description="publishing") as progress,
        _rejects_sink(rejects) as sink,
        interruptible() as interrupted,
    ):
        try:
            for report in _reports(config, path, file, workers, batch, interrupted=interrupted):
                tally.add(report)
                for result in report.rejects:
                    sink(result)
                progress(report.position)
                if interrupted() and workers == 1:
                    break
        except BaseException:
            if any(tally.counts.values()):
                echo(f"orderlog: stopped; stored before the stop: {tally}", err=True)
            raise
    echo(str(tally))
    if interrupted():
        echo("orderlog: interrupted; every line counted above is stored; publish again to go on", err=True)
        sys.exit(130)
    if tally.counts[FAILED]:
        sys.exit(3)
    if not tally.clean:
        sys.exit(2)


def _reports(
    config: Config, path: Path, file: IO[bytes], workers: int, batch: int, *, interrupted: Callable[[], bool]
) -> Iterator[BatchReport]:
    app = open_orderlog(config, create=True, announce=announce)  # the store and its master key, made once
    if workers > 1:
        app.close()
        yield from publish_file_in_parallel(config, path, workers, batch, should_stop=interrupted)
        return
    read = [0]

    def numbered() -> Iterator[tuple[int, bytes]]:
        for number, line, position in input_lines(file):
            read[0] = position
            yield number, line

    try:
        for results in app.take(numbered(), batch_lines=batch):
            yield BatchReport.of(results, read[0])
    finally:
        app.close()


def _refuse_output_over_input(output: str | None, inputs: list[str], config: Config) -> None:
    refuse_output_over(output, inputs, config, "--rejects")


@contextmanager
def _input(source: str, *, spool: bool) -> Iterator[tuple[Path, IO[bytes]]]:
    """The input as a file; standard input is spooled to a temporary file when workers
    need to read it independently."""
    if source != "-":
        with open(source, "rb") as file:
            yield Path(source), file
        return
    if not spool:
        yield Path("-"), sys.stdin.buffer
        return
    with tempfile.NamedTemporaryFile(prefix="orderlog-stdin-", suffix=".jsonl") as spooled:
        shutil.copyfileobj(sys.stdin.buffer, spooled)
        spooled.flush()
        spooled.seek(0)
        yield Path(spooled.name), spooled


@contextmanager
def _rejects_sink(path: str | None) -> Iterator[Callable[[LineResult], None]]:
    """Where lines not accepted go; a file that cannot take them (a full disk) stops the
    command in one line, after what was stored is reported."""
    if path is None:
        yield lambda result: sys.stderr.write(result.reject_line() + "\n")
        return
    try:
        with open(path, "w", encoding="utf-8") as file:

            def write(result: LineResult) -> None:
                file.write(result.reject_line() + "\n")
                file.flush()  # rejects are few: a disk that cannot take them says so while the tally is known

            yield write
    except OSError as error:
        raise UserError(f"cannot write rejects to {path}: {error.strerror or error}") from None
