"""The `orderlog` command: the edge where input mistakes become one line and an exit code.

Exit codes: 0 done; 1 an error (named on stderr in one line, never a traceback);
2 `publish` finished but refused or rejected some lines, or the command line was wrong;
3 an internal error (ORDERLOG_DEBUG=1 shows its traceback).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import IO

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eventsourcing.persistence import PersistenceError

from orderlog.application import OrderLog, StoreError
from orderlog.audit import AuditError
from orderlog.config import Config
from orderlog.domain.envelope import InvalidEvent
from orderlog.domain.instants import InstantError, format_instant, parse_instant
from orderlog.domain.order import Order
from orderlog.domain.stream import StreamAggregate
from orderlog.privacy.erasure import ErasureError
from orderlog.privacy.master_key import MasterKeyError
from orderlog.publishing import (
    BATCH_LINES,
    BatchReport,
    ConcurrentWriteError,
    LineResult,
    Tally,
    input_lines,
    open_publisher,
)
from orderlog.signing import (
    KeyFileError,
    load_private_key,
    parse_json_object,
    public_pem,
    read_public_key,
    sign_envelope,
    write_key_pair,
)
from orderlog.sources import SourceError, list_sources, register_source, revoke_source
from orderlog.views import history_text, order_view, record_view, render_text, table_text
from orderlog.workers import WorkerError

EXPECTED_ERRORS: tuple[type[Exception], ...] = (
    StoreError,
    MasterKeyError,
    KeyFileError,
    InstantError,
    InvalidEvent,
    ConcurrentWriteError,
    PersistenceError,
    WorkerError,
    AuditError,
    SourceError,
    ErasureError,
)


class UserError(click.ClickException):
    """A mistake in what was asked: shown as one line, exit code 1."""


# ---------------------------------------------------------------- the group


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--store",
    metavar="URL",
    help="sqlite:///orderlog.db (default), a file path, or postgresql://user@host:5432/db?schema=s "
    "[env ORDERLOG_STORE]",
)
@click.version_option(package_name="orderlog")
@click.pass_context
def cli(context: click.Context, store: str | None) -> None:
    """orderlog: one trustworthy record of what happened to every order."""
    config = Config.from_env()
    context.obj = replace(config, store_url=store) if store else config


def _config() -> Config:
    config: Config = click.get_current_context().obj
    return config


def _announce(message: str) -> None:
    click.echo(f"orderlog: {message}", err=True)


def _time_option(_context: click.Context, parameter: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return format_instant(parse_instant(value))
    except InstantError as error:
        raise click.BadParameter(str(error), param=parameter) from None


# ---------------------------------------------------------------- publish


@cli.command()
@click.argument("source", type=click.Path(exists=True, dir_okay=False, allow_dash=True), metavar="FILE|-")
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, writable=True),
    metavar="FILE",
    help="write refused and invalid lines here as JSON lines (default: stderr)",
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

    Prints `accepted N, duplicates N, refused N, invalid N`; exits 0 when every line
    was accepted or a duplicate, 2 otherwise. Publishing the same input again records
    nothing twice. Blank lines are passed over.
    """
    config = _config()
    if require_signatures:
        config = replace(config, require_signatures=True)
    tally = Tally()
    with (
        _input(source, spool=workers > 1) as (path, file),
        _progress(path) as progress,
        _rejects_sink(rejects) as sink,
    ):
        for report in _publish_reports(config, path, file, workers, batch):
            tally.add(report)
            for result in report.rejects:
                sink(result)
            progress(report.position)
    click.echo(str(tally))
    if not tally.clean:
        sys.exit(2)


def _publish_reports(config: Config, path: Path, file: IO[bytes], workers: int, batch: int) -> Iterator[BatchReport]:
    if workers == 1:
        _app, publisher = open_publisher(config, _announce, batch_lines=batch)
        read = [0]

        def numbered() -> Iterator[tuple[int, bytes]]:
            for number, line, position in input_lines(file):
                read[0] = position
                yield number, line

        for results in publisher.publish(numbered()):
            yield BatchReport.of(results, read[0])
        return
    from orderlog.workers import publish_file_in_parallel

    open_publisher(config, _announce)  # creates the store and the master key once, before the workers
    yield from publish_file_in_parallel(config, path, workers, batch)


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
def _progress(path: Path) -> Iterator[Callable[[int], None]]:
    """A progress bar by bytes of input, on a terminal only."""
    size = path.stat().st_size if path.name != "-" else 0
    if not size or not sys.stderr.isatty():
        yield lambda _position: None
        return
    from tqdm import tqdm

    with tqdm(total=size, unit="B", unit_scale=True, desc="publishing", file=sys.stderr) as bar:
        yield lambda position: bar.update(position - bar.n)


@contextmanager
def _rejects_sink(path: str | None) -> Iterator[Callable[[LineResult], None]]:
    with open(path, "w", encoding="utf-8") if path else nullcontext(sys.stderr) as file:
        yield lambda result: file.write(json.dumps(result.as_reject(), ensure_ascii=False) + "\n")


# ---------------------------------------------------------------- orders


@cli.group()
def order() -> None:
    """Read an order: as it stands, as it stood, its whole history."""


@order.command("show")
@click.argument("order_id")
@click.option(
    "--as-of",
    callback=_time_option,
    metavar="TIME",
    help="event time: what had happened by then (occurred_at <= TIME)",
)
@click.option(
    "--known-at",
    callback=_time_option,
    metavar="TIME",
    help="record time: what orderlog knew then (recorded_at <= TIME)",
)
@click.option("--version", type=click.IntRange(min=1), help="as it stood after this version")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of text")
def show(order_id: str, as_of: str | None, known_at: str | None, version: int | None, as_json: bool) -> None:
    """An order's status and figures, now or as it stood at a moment or version."""
    config = _config()
    app = config.open()
    current = _existing(app, Order, order_id)
    if version is not None and version > current.version:
        raise UserError(f"order {order_id} has {current.version} versions; there is no version {version}")
    state: Order | None = current
    if as_of or known_at or version:
        state = app.stream(Order, order_id, version=version, keep=_moment_filter(as_of, known_at))
        if state is None:
            raise UserError(f"order {order_id} had not been submitted by {_moment_words(as_of, known_at)}")
    assert state is not None
    view = order_view(state, config.vault(app, writing=False, announce=_announce))
    click.echo(json.dumps(view, ensure_ascii=False, indent=2) if as_json else render_text(view))


def _moment_filter(as_of: str | None, known_at: str | None) -> Callable[[StreamAggregate.Event], bool]:
    def keep(event: StreamAggregate.Event) -> bool:
        return (as_of is None or event.occurred_at <= as_of) and (known_at is None or event.recorded_at <= known_at)

    return keep


def _moment_words(as_of: str | None, known_at: str | None) -> str:
    words = [
        f"{as_of} (event time)" if as_of else "",
        f"{known_at} (record time)" if known_at else "",
    ]
    return " and ".join(w for w in words if w) or "that version"


@order.command("history")
@click.argument("order_id")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of text (every stored field, with hashes)")
def history(order_id: str, as_json: bool) -> None:
    """Every record of an order in order: what, when (event and record time), from whom."""
    config = _config()
    app = config.open()
    _existing(app, Order, order_id)
    vault = config.vault(app, writing=False, announce=_announce)
    records = [record_view(event, vault) for event in app.records(Order, order_id)]
    click.echo(json.dumps(records, ensure_ascii=False, indent=2) if as_json else history_text(records))


def _existing(app: OrderLog, cls: type[Order], key: str) -> Order:
    state = app.stream(cls, key)
    if state is None:
        raise UserError(f"order {key} not found in {app.location.label}")
    return state


# ---------------------------------------------------------------- traffic


@cli.command()
@click.option("--orders", type=click.IntRange(1, 10_000_000), default=2000, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--start",
    callback=_time_option,
    metavar="TIME",
    help="first order's day [default 2026-03-01T00:00:00Z]",
)
@click.option("--out", type=click.Path(dir_okay=False, writable=True), metavar="FILE", help="default: stdout")
@click.option(
    "--sign-with",
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="sign every event with its source's key from DIR (created if missing)",
)
def simulate(orders: int, seed: int, start: str | None, out: str | None, sign_with: str | None) -> None:
    """Realistic upstream traffic as JSON lines; the same lines for the same seed."""
    from orderlog import simulate as simulation

    lines = simulation.simulate(orders, seed, start or simulation.DEFAULT_START)
    if sign_with:
        from orderlog.signing_sources import sign_simulated

        lines = sign_simulated(lines, Path(sign_with), _announce)
    with open(out, "w", encoding="utf-8") if out else nullcontext(sys.stdout) as file:
        for line in lines:
            file.write(line + "\n")


@cli.command()
@click.option("--orders", type=click.IntRange(1, 1_000_000), default=2000, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
def demo(orders: int, seed: int) -> None:
    """Simulate traffic, publish it into the store, and say what is in it now."""
    from orderlog.demo import run_demo

    run_demo(_config(), orders, seed, click.echo, _announce)


# ---------------------------------------------------------------- audit


@cli.group()
def audit() -> None:
    """Tamper evidence: checkpoints, verification, proofs (see README: for auditors)."""


def _signing_key(path: str | None) -> Ed25519PrivateKey:
    chosen = Path(path) if path else _config().signing_key
    if chosen is None:
        raise AuditError(
            "no signing key: set ORDERLOG_SIGNING_KEY to an Ed25519 PEM file or pass --signing-key "
            "(`orderlog keys new-signing --out FILE` writes one)"
        )
    return load_private_key(chosen)


def _public_key_text(public_key: str | None, signing_key: str | None) -> str | None:
    """The log's public key: given, else derived from the instance's signing key, else None."""
    if public_key:
        return read_public_key(Path(public_key))
    if signing_key or _config().signing_key:
        return public_pem(_signing_key(signing_key)).decode()
    return None


SIGNING_KEY_OPTION = click.option(
    "--signing-key",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Ed25519 PEM key [env ORDERLOG_SIGNING_KEY]",
)


LOG_PUBLIC_KEY_OPTION = click.option(
    "--public-key",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="the log's Ed25519 public key (PEM) that you trust (default: from the signing key)",
)


@audit.command("checkpoint")
@click.option("--out", type=click.Path(dir_okay=False, writable=True), metavar="FILE", help="also write it here")
@SIGNING_KEY_OPTION
def audit_checkpoint(out: str | None, signing_key: str | None) -> None:
    """Extend the log's Merkle tree to the end of the log and sign its root.

    Prints the checkpoint (JSON); keep copies outside the system (mail, publish them).
    """
    from orderlog.audit.checkpoints import issue_checkpoint, write_checkpoint

    key = _signing_key(signing_key)
    checkpoint = issue_checkpoint(_config().open(), key)
    click.echo(write_checkpoint(checkpoint, Path(out) if out else None), nl=False)


@audit.command("verify")
@click.option(
    "--checkpoint",
    "checkpoint_files",
    type=click.Path(dir_okay=False),
    multiple=True,
    metavar="FILE",
    help="a checkpoint to prove the log extends (repeatable)",
)
@LOG_PUBLIC_KEY_OPTION
@SIGNING_KEY_OPTION
@click.option("--json", "as_json", is_flag=True)
def audit_verify(
    checkpoint_files: tuple[str, ...], public_key: str | None, signing_key: str | None, as_json: bool
) -> None:
    """Recompute every hash chain and the Merkle tree; name the first divergence.

    Exits 0 when everything verifies, 1 otherwise.
    """
    from orderlog.audit.checkpoints import load_checkpoint, stored_checkpoints
    from orderlog.audit.verification import verify_store

    app = _config().open()
    checkpoints = [(name, load_checkpoint(Path(name))) for name in checkpoint_files]
    checkpoints += [(f"kept in the store #{c['tree_size']}", c) for c in stored_checkpoints(app)]
    result = verify_store(app, checkpoints, _public_key_text(public_key, signing_key))
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
    else:
        click.echo(result.headline())
        for divergence in result.divergences[1:]:
            click.echo(f"  also: {divergence}")
        if result.divergence_count > len(result.divergences):
            click.echo(f"  ... {result.divergence_count - len(result.divergences)} more divergences")
        for check in result.checkpoints:
            click.echo(str(check))
    if not result.ok:
        sys.exit(1)


@audit.command("proof")
@click.argument("order_id")
@click.option("--checkpoint", "checkpoint_file", type=click.Path(dir_okay=False), required=True, metavar="FILE")
@click.option("--out", type=click.Path(dir_okay=False, writable=True), metavar="FILE", help="default: stdout")
@LOG_PUBLIC_KEY_OPTION
@SIGNING_KEY_OPTION
def audit_proof(
    order_id: str, checkpoint_file: str, out: str | None, public_key: str | None, signing_key: str | None
) -> None:
    """An order's records with inclusion proofs against a checkpoint, for offline checking:

    python -m orderlog.audit_verify proof.json checkpoint.json --public-key log.pub.pem
    """
    from orderlog.audit.checkpoints import load_checkpoint
    from orderlog.audit.proofs import order_proof

    checkpoint = load_checkpoint(Path(checkpoint_file))
    proof = order_proof(_config().open(), order_id, checkpoint, _public_key_text(public_key, signing_key) or "")
    text = json.dumps(proof, indent=2, ensure_ascii=False) + "\n"
    if out:
        Path(out).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


# ---------------------------------------------------------------- keys, customers, sources


@cli.group()
def keys() -> None:
    """Make keys: the master key for personal data, Ed25519 keys for signing."""


@keys.command("new-master")
def keys_new_master() -> None:
    """Print a new master key (32 random bytes, base64) for ORDERLOG_MASTER_KEY."""
    from orderlog.privacy.master_key import new_master_key

    click.echo(new_master_key())


@keys.command("new-signing")
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    required=True,
    metavar="FILE",
    help="private key file (mode 600); its public key goes beside it as FILE.pub.pem",
)
def keys_new_signing(out: str) -> None:
    """Write a new Ed25519 key pair (for checkpoints, or for an upstream source)."""
    from orderlog.audit_verify import public_key_id

    public_path = write_key_pair(Path(out))
    click.echo(
        f"wrote {out} (private, mode 600) and {public_path} (public, key id "
        f"{public_key_id(public_path.read_text(encoding='ascii'))})"
    )


@cli.group()
def customer() -> None:
    """A customer's personal data."""


@customer.command("forget")
@click.argument("customer_id")
@click.option("--by", required=True, help="who asks for the erasure (recorded)")
@click.option("--reason", required=True, help="why (recorded), e.g. the request's reference")
def customer_forget(customer_id: str, by: str, reason: str) -> None:
    """Erase a customer's personal data for good by destroying their keys (crypto-shredding).

    Their orders stay, with names, phones and address lines shown as [erased].
    """
    from orderlog.privacy.erasure import forget_customer

    config = _config()
    app = config.open()
    destroyed = forget_customer(app, config.vault(app, writing=False, announce=_announce), customer_id, by, reason)
    click.echo(f"customer {customer_id}: {destroyed} data key(s) destroyed; the erasure is recorded")


@cli.group()
def sources() -> None:
    """Upstream sources: their public keys and the event types each may publish."""


@sources.command("add")
@click.argument("name")
@click.option("--types", required=True, help="comma-separated event types this source may publish")
@click.option("--public-key", type=click.Path(dir_okay=False), required=True, metavar="FILE")
@click.option("--by", help="who registers it (recorded)")
def sources_add(name: str, types: str, public_key: str, by: str | None) -> None:
    """Register a source (a new key for a source needs the old one revoked first)."""
    key = register_source(
        _config().open(create=True),
        name,
        [t.strip() for t in types.split(",") if t.strip()],
        read_public_key(Path(public_key)),
        by,
    )
    click.echo(f"source {name}: key {key.key_id} may publish {', '.join(key.types)}")


@sources.command("list")
@click.option("--json", "as_json", is_flag=True)
def sources_list(as_json: bool) -> None:
    """Every registered source, with each key's state."""
    rows = [
        {
            "source": source.name,
            "key_id": key.key_id,
            "types": ",".join(key.types),
            "registered_at": key.registered_at,
            "revoked_at": key.revoked_at,
        }
        for source in list_sources(_config().open())
        for key in source.keys
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif rows:
        click.echo(table_text(rows))
    else:
        click.echo("no sources registered")


@sources.command("revoke")
@click.argument("name")
@click.option("--reason", default="", help="why (recorded)")
@click.option("--by", help="who revokes it (recorded)")
def sources_revoke(name: str, reason: str, by: str | None) -> None:
    """Revoke a source's key: its events are rejected from now on; old signatures stay checkable."""
    key = revoke_source(_config().open(), name, reason, by)
    click.echo(f"source {name}: key {key.key_id} revoked")


@cli.command()
@click.option(
    "--key",
    type=click.Path(exists=True, dir_okay=False),
    required=True,
    metavar="FILE",
    help="the source's Ed25519 private key (PEM)",
)
@click.argument("source", type=click.File("r", encoding="utf-8"), default="-", metavar="IN")
def sign(key: str, source: IO[str]) -> None:
    """Sign JSON lines (envelopes) with a source's key: signed lines on stdout."""
    private_key = load_private_key(Path(key))
    for number, line in enumerate(source, start=1):
        if not line.strip():
            continue
        try:
            envelope = parse_json_object(line)
        except ValueError as error:
            raise UserError(f"line {number}: not a JSON object ({error})") from None
        click.echo(json.dumps(sign_envelope(private_key, envelope), ensure_ascii=False))


# ---------------------------------------------------------------- schemas


@cli.group()
def schemas() -> None:
    """The Avro schemas in schemas/, one file per event type and version."""


@schemas.command("check")
def schemas_check() -> None:
    """Exit 1 if a declaration changed without a new schema version."""
    from orderlog.avro import check_schemas

    problems = check_schemas()
    for problem in problems:
        click.echo(problem)
    if problems:
        sys.exit(1)
    click.echo("every schema in schemas/ matches its declaration")


@schemas.command("write")
def schemas_write() -> None:
    """Write the next version of each schema whose declaration changed (never rewrites one)."""
    from orderlog.avro import write_schemas

    written = write_schemas()
    for path in written:
        click.echo(f"wrote {path}")
    if not written:
        click.echo("nothing to write: every schema is current")


# ---------------------------------------------------------------- entry point


def main() -> None:
    debug = os.environ.get("ORDERLOG_DEBUG", "") not in ("", "0")
    try:
        cli.main(prog_name="orderlog", standalone_mode=False)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.UsageError as error:
        command = error.ctx.command_path if error.ctx else "orderlog"
        click.echo(f"orderlog: error: {_one_line(error.format_message())} (see `{command} --help`)", err=True)
        sys.exit(2)
    except click.ClickException as error:
        click.echo(f"orderlog: error: {error.format_message()}", err=True)
        sys.exit(1)
    except click.Abort:
        click.echo("orderlog: aborted", err=True)
        sys.exit(130)
    except EXPECTED_ERRORS as error:
        if debug:
            raise
        click.echo(f"orderlog: error: {_one_line(error)}", err=True)
        sys.exit(1)
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (e.g. `| head`): not an error
        sys.exit(0)
    except KeyboardInterrupt:
        click.echo("orderlog: interrupted; every batch reported as stored is stored", err=True)
        sys.exit(130)
    except Exception as error:
        if debug:
            raise
        click.echo(
            f"orderlog: internal error: {type(error).__name__}: {_one_line(error)} "
            "(run with ORDERLOG_DEBUG=1 for the traceback, and please report it)",
            err=True,
        )
        sys.exit(3)


def _one_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return " ".join(text.split())
