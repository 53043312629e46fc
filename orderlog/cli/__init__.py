"""The `orderlog` command: the edge where input mistakes become one line and an exit code.

A module per command group (publish, orders, traffic, audit, keys, customers, sources,
store), each parsing arguments, calling one use case of the service (orderlog.application)
and rendering what it returns; none holds a rule of its own.

Exit codes: 0 done; 1 an error (named on stderr in one line, never a traceback);
2 `publish` did not accept every line, or the command line was wrong;
3 a defect in orderlog (ORDERLOG_DEBUG=1 shows its traceback).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

import click
from confluent_kafka import KafkaException
from eventsourcing.persistence import MapperDeserialisationError, PersistenceError

from orderlog.accounts import AccountError
from orderlog.application import OrderNotFound
from orderlog.audit import AuditError
from orderlog.cli import (
    audit,
    console,
    customers,
    kafka,
    keys,
    orders,
    publish,
    queue,
    sources,
    store,
    traffic,
    users,
    views,
)
from orderlog.cli.common import cli, echo
from orderlog.config import debug_requested
from orderlog.domain.envelope import InvalidEvent
from orderlog.domain.instants import InstantError
from orderlog.domain.text import escaped
from orderlog.intake.parallel import WorkerError
from orderlog.intake.pipeline import ConcurrentWriteError
from orderlog.kafka import KafkaError
from orderlog.kafka.clients import describe
from orderlog.privacy.erasure import ErasureError
from orderlog.privacy.master_key import MasterKeyError
from orderlog.sources.registry import SourceError
from orderlog.sources.signing import KeyFileError
from orderlog.store.location import StoreError
from projections import UnknownProjector
from projections.viewstore import ViewQueryError

COMMAND_GROUPS = (audit, console, customers, kafka, keys, orders, publish, queue, sources, store, traffic, users, views)
"""Imported for what they register on `cli`."""

EXPECTED_ERRORS: tuple[type[Exception], ...] = (
    StoreError,
    OrderNotFound,
    MasterKeyError,
    KeyFileError,
    InstantError,
    InvalidEvent,
    ConcurrentWriteError,
    PersistenceError,
    WorkerError,
    AuditError,
    SourceError,
    AccountError,
    ErasureError,
    KafkaError,
    UnknownProjector,
    ViewQueryError,
    MapperDeserialisationError,  # a damaged stored record: the message says to run `audit verify`
)
"""Mistakes and conditions a user can act on: one line, exit code 1."""


def main() -> None:
    debug = debug_requested(os.environ)
    if debug:  # tracebacks of lines orderlog failed on, and of internal errors
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="orderlog: %(message)s")
    undecodable = _not_utf8(sys.argv[1:], os.environ)
    if undecodable:
        _error(f"{undecodable} is not valid UTF-8: give names, ids and times as text")
        sys.exit(2)
    try:
        cli.main(prog_name="orderlog", standalone_mode=False)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.UsageError as error:
        command = error.ctx.command_path if error.ctx else "orderlog"
        _error(f"{_one_line(error.format_message())} (see `{command} --help`)")
        sys.exit(2)
    except click.ClickException as error:
        _error(_one_line(error.format_message()))
        sys.exit(1)
    except click.Abort:
        echo("orderlog: aborted", err=True)
        sys.exit(130)
    except EXPECTED_ERRORS as error:
        if debug:
            raise
        _error(_one_line(error))
        sys.exit(1)
    except KafkaException as error:  # the broker went away, or refused an operation
        if debug:
            raise
        _error(f"Kafka: {_one_line(describe(error))}")
        sys.exit(1)
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (e.g. `| head`): not an error
        sys.exit(0)
    except KeyboardInterrupt:
        echo("orderlog: interrupted; every batch reported as stored is stored", err=True)
        sys.exit(130)
    except OSError as error:  # the machine said no (permission, a name too long, a full disk): not a defect
        if debug:
            raise
        where = f"{error.filename}: " if error.filename else ""
        _error(_one_line(f"{escaped(str(where))}{error.strerror or error}"))
        sys.exit(1)
    except Exception as error:
        if debug:
            raise
        _error(
            f"internal error: {type(error).__name__}: {_one_line(error)} "
            "(run with ORDERLOG_DEBUG=1 for the traceback, and please report it)",
        )
        sys.exit(3)


def _not_utf8(arguments: list[str], environment: Mapping[str, str]) -> str:
    """What, of the command line and orderlog's settings, holds bytes that are not UTF-8 (Python
    carries them as lone surrogates, which no database, file or terminal takes); empty if none.
    Checked once here, for every command, rather than failing later wherever one is used."""
    for number, argument in enumerate(arguments, start=1):
        if not _encodes(argument):
            return f"argument {number} ({escaped(argument)})"
    for name, value in environment.items():
        if name.startswith("ORDERLOG_") and not _encodes(value):
            return f"the setting {name}"
    return ""


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _error(message: str) -> None:
    echo(f"orderlog: error: {message}", err=True)


LONGEST_ERROR = 1_000
"""Characters of an error line at most: a message quoting a megabyte of input (an id, a
path) is cut in the middle, keeping its start (what) and its end (what to do)."""


def _one_line(error: BaseException | str) -> str:
    text = " ".join((str(error).strip() or type(error).__name__).split())
    if len(text) <= LONGEST_ERROR:
        return text
    return f"{text[:600]} [... {len(text) - 900:,} characters ...] {text[-300:]}"
