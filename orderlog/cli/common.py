"""What every command shares: the root group and its settings, opening the store for a
command, safe printing, and the parameter types that check input before any work."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import click

from orderlog.application import OrderLog
from orderlog.bootstrap import open_orderlog
from orderlog.config import Config
from orderlog.domain.instants import InstantError, format_instant, parse_instant
from orderlog.domain.text import escaped
from orderlog.intake.parallel import STOP_SIGNALS


class UserError(click.ClickException):
    """A mistake in what was asked: shown as one line, exit code 1."""


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--store",
    metavar="URL",
    help="sqlite:///orderlog.db (default), a file path, or postgresql://user@host:5432/db?schema=s "
    "[env ORDERLOG_STORE]",
)
@click.option(
    "--views",
    metavar="URL",
    help="the read models' database: a SQLite file or postgresql://... (default: <store>.views.db beside "
    "the store) [env ORDERLOG_VIEWS]",
)
@click.option("--kafka", metavar="HOST:PORT[,...]", help="Kafka bootstrap servers [env ORDERLOG_KAFKA]")
@click.option(
    "--schema-registry",
    metavar="URL",
    help="a Confluent-compatible schema registry (default: ids from schemas/) [env ORDERLOG_SCHEMA_REGISTRY]",
)
@click.version_option(package_name="orderlog")
@click.pass_context
def cli(
    context: click.Context, store: str | None, views: str | None, kafka: str | None, schema_registry: str | None
) -> None:
    """orderlog: one trustworthy record of what happened to every order."""
    config = Config.from_env()
    overrides = {"store_url": store, "views_url": views, "kafka": kafka, "schema_registry": schema_registry}
    context.obj = replace(config, **{name: value for name, value in overrides.items() if value})


def echo(text: str = "", *, err: bool = False, nl: bool = True) -> None:
    """Prints for a person: whatever upstream put into a text comes out escaped, so that no
    stored control or bidirectional character can repaint the terminal."""
    click.echo(escaped(text, keep_layout=True), err=err, nl=nl)


def announce(message: str) -> None:
    echo(f"orderlog: {message}", err=True)


def current_config() -> Config:
    config: Config = click.get_current_context().obj
    return config


def opened(*, writing: bool = False, create: bool = False) -> OrderLog:
    """The configured store for this command, closed (its write-ahead log folded in) when
    the command ends, however it ends."""
    app = open_orderlog(current_config(), writing=writing, create=create, announce=announce)
    click.get_current_context().find_root().call_on_close(app.close)
    return app


class OutputFile(click.ParamType):
    """A file this command will write: a name whose directory exists and that is not a
    directory itself, checked before any work is done (not found out after it)."""

    name = "FILE"

    def __init__(self, *, dash_is_stdout: bool = False):
        self.dash_is_stdout = dash_is_stdout

    def convert(self, value: str, parameter: click.Parameter | None, context: click.Context | None) -> str | None:
        path = Path(value)
        if value == "-":
            if self.dash_is_stdout:
                return None  # as if not given: standard output
            self.fail("- is not a file here; name a file to write", parameter, context)
        if path.is_dir():
            self.fail(f"{value} is a directory; name a file to write", parameter, context)
        if not path.absolute().parent.is_dir():
            self.fail(f"directory {path.absolute().parent} does not exist", parameter, context)
        config = context.obj if context is not None and isinstance(context.obj, Config) else Config()
        why = output_refusal(value, [], config)
        if why:
            self.fail(f"{why}; name another file to write", parameter, context)
        return value


def output_refusal(output: str, inputs: Sequence[str], config: Config) -> str | None:
    """Why a command must not write `output` (opening it would empty it before it is read):
    it is one of the command's inputs (by any name or link, or what standard input reads),
    the store, the views, a side file of either, a key, or any SQLite database; or None."""
    target = Path(output)
    try:
        target.resolve()
    except (RuntimeError, OSError):
        return f"{output} is a loop of symbolic links"
    protected = [(Path(name), "an input of this command", "") for name in inputs if name != "-"]
    protected += [(path, what, ", which orderlog keeps") for path, what in config.files()]
    for path, what, keeper in protected:
        same_file = path.exists() and target.exists() and os.path.samefile(path, target)
        if same_file or target.resolve() == _resolved(path):
            named = "" if output == str(path) else f" ({path})"
            return f"{output} is {what}{named}{keeper}"
    if "-" in inputs and target.exists() and os.path.samestat(os.fstat(0), os.stat(target)):
        return f"{output} is an input of this command (standard input reads it)"
    if target.is_file() and _is_sqlite_database(target):
        return f"{output} is a SQLite database (a store or views?)"
    return None


def _resolved(path: Path) -> Path | None:
    try:
        return path.resolve()
    except (RuntimeError, OSError):
        return None


def refuse_output_over(output: str | None, inputs: Sequence[str], config: Config, option: str) -> None:
    """`output_refusal` for an output named by `option`, once the command's inputs are known."""
    why = None if output is None or output == "-" else output_refusal(output, inputs, config)
    if why:
        raise click.BadParameter(f"{why}; name another file to write", param_hint=f"'{option}'")


def _is_sqlite_database(path: Path) -> bool:
    try:
        with path.open("rb") as file:
            return file.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


OUTPUT_FILE = OutputFile()
OUTPUT_OR_STDOUT = OutputFile(dash_is_stdout=True)
"""An output file, or `-` for standard output (what the option does when not given)."""


def moment_option(_context: click.Context, parameter: click.Parameter, value: str | None) -> str | None:
    """A time on the command line, in orderlog's instant form (it must name its zone)."""
    if value is None:
        return None
    try:
        return format_instant(parse_instant(value))
    except InstantError as error:
        raise click.BadParameter(str(error), param=parameter) from None


@contextmanager
def interruptible(what: str = "the batch under way") -> Iterator[Callable[[], bool]]:
    """The first Ctrl-C or SIGTERM asks for a stop after `what`; the second stops at once.
    Yields a function that says whether a stop was asked for."""
    asked: list[bool] = []

    def on_stop_signal(number: int, _frame: object) -> None:
        if asked:
            raise KeyboardInterrupt
        asked.append(True)
        name = "Ctrl-C" if number == signal.SIGINT else signal.Signals(number).name
        echo(f"\norderlog: {name}: stopping after {what} (Ctrl-C or SIGTERM again to stop at once)", err=True)

    previous = {number: signal.signal(number, on_stop_signal) for number in STOP_SIGNALS}
    try:
        yield lambda: bool(asked)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@contextmanager
def progress_bar(total: int, *, unit: str, description: str) -> Iterator[Callable[[int], None]]:
    """A progress bar with rate and time left, on a terminal only; call it with how far."""
    if not total or not sys.stderr.isatty():
        yield lambda _done: None
        return
    from tqdm import tqdm

    with tqdm(total=total, unit=unit, unit_scale=True, desc=description, file=sys.stderr) as bar:
        yield lambda done: bar.update(done - bar.n)
