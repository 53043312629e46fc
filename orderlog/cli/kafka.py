"""`orderlog topics|send|relay|ingest|dlq`: the Kafka backbone (see README: Kafka)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO

import click

from orderlog.cli.common import cli, current_config, echo, interruptible, opened
from orderlog.cli.rendering import table_text
from orderlog.config import Config
from orderlog.intake.reading import input_lines
from orderlog.kafka.clients import ensure_reachable
from orderlog.kafka.dead_letters import DeadLetter, matches, read_dead_letters, replay
from orderlog.kafka.inbound import send_lines
from orderlog.kafka.ingest import Ingest
from orderlog.kafka.registry import schema_ids
from orderlog.kafka.relay import Relay
from orderlog.kafka.topics import DEFAULT_PARTITIONS, create_topics

FOLLOW_OPTION = click.option(
    "--follow/--once",
    default=True,
    show_default=True,
    help="--follow: go on and wait for more; --once: do what there is to do, then exit",
)


def kafka_config() -> Config:
    """The settings, once a broker has answered at the address they name."""
    config = current_config()
    ensure_reachable(config)
    return config


@cli.group()
def topics() -> None:
    """orderlog's Kafka topics."""


@topics.command("create")
@click.option("--partitions", type=click.IntRange(1, 10_000), default=DEFAULT_PARTITIONS, show_default=True)
@click.option("--replication-factor", type=click.IntRange(1, 100), default=1, show_default=True)
def topics_create(partitions: int, replication_factor: int) -> None:
    """Create orderlog.inbound, orderlog.events (kept forever) and orderlog.dlq, with their settings."""
    for line in create_topics(kafka_config(), partitions, replication_factor):
        echo(line)


@cli.command()
@click.argument("source", type=click.File("rb"), default="-", metavar="IN")
def send(source: IO[bytes]) -> None:
    """Send JSON lines (a file, or - for stdin) to orderlog.inbound, each keyed by its order id,
    as an upstream service does; `orderlog ingest` takes them in (bad ones become dead letters)."""
    config = kafka_config()
    sent = send_lines(config, (line for _number, line, _position in input_lines(source)))
    echo(f"sent {sent} line(s) to {config.topic('inbound')}")


@cli.command()
@FOLLOW_OPTION
@click.option("--max-rate", type=click.IntRange(1), metavar="N", help="records per second at most (default: no limit)")
def relay(follow: bool, max_rate: int | None) -> None:
    """Put every stored record on orderlog.events, exactly once, in store order per stream.

    Resumes after any crash from what is on the topic. Reports the lag (records stored but
    not yet on the topic); Ctrl-C stops after the messages in flight are delivered.
    """
    config = kafka_config()
    app = opened()
    with interruptible("the messages in flight are delivered") as interrupted:
        worker = Relay(app, config, schema_ids(config.schema_registry, config.topic("events")), max_rate=max_rate)
        report = worker.run(follow=follow, should_stop=interrupted, progress=lambda r: echo(f"relay: {r}", err=True))
    echo(str(report))


@cli.command()
@FOLLOW_OPTION
@click.option("--batch", type=click.IntRange(1, 100_000), default=10_000, show_default=True, help="messages per poll")
def ingest(follow: bool, batch: int) -> None:
    """Take upstream events from orderlog.inbound into the store, exactly once; dead letters to orderlog.dlq.

    Several ingest processes share the inbound partitions. Ctrl-C stops after the batch under way.
    """
    config = kafka_config()
    app = opened(create=True)
    with interruptible() as interrupted:
        worker = Ingest(app, config, schema_ids(config.schema_registry, config.topic("inbound")), batch=batch)
        report = worker.run(follow=follow, should_stop=interrupted, progress=lambda r: echo(f"ingest: {r}", err=True))
    echo(str(report))


@cli.group()
def dlq() -> None:
    """Dead letters: inbound messages that could not be taken in."""


@dlq.command("list")
@click.option("--where", "conditions", multiple=True, metavar="FIELD=VALUE|FIELD~TEXT", help="only these (repeatable)")
@click.option("--json", "as_json", is_flag=True)
def dlq_list(conditions: tuple[str, ...], as_json: bool) -> None:
    """Every dead letter, once, with where it came from and why it could not be taken in."""
    letters = [letter for letter in read_dead_letters(kafka_config()) if matches(letter, list(conditions))]
    if as_json:
        echo(json.dumps([letter.as_dict() for letter in letters], ensure_ascii=False, indent=2))
    elif letters:
        rows = [{k: v for k, v in letter.as_dict().items() if k != "value"} for letter in letters]
        echo(table_text(rows))
    else:
        echo("no dead letters")


@dlq.command("replay")
@click.option("--where", "conditions", multiple=True, metavar="FIELD=VALUE|FIELD~TEXT", help="only these (repeatable)")
@click.option(
    "--corrected",
    type=click.Path(exists=True, dir_okay=False),
    metavar="FILE",
    help="`dlq list --json` output with values corrected: send those values instead",
)
def dlq_replay(conditions: tuple[str, ...], corrected: str | None) -> None:
    """Send dead letters back through ingestion: all, those matching --where, or corrected ones."""
    config = kafka_config()
    letters = [letter for letter in read_dead_letters(config) if matches(letter, list(conditions))]
    fixes = _corrections(Path(corrected)) if corrected else None
    if fixes is not None:
        letters = [letter for letter in letters if _source(letter) in fixes]
    sent = replay(config, letters, (lambda letter: fixes[_source(letter)]) if fixes is not None else None)
    echo(f"sent {sent} dead letter(s) back to {config.topic('inbound')}")
    if not sent:
        sys.exit(2)


def _source(letter: DeadLetter) -> str:
    return str(letter.as_dict()["source"])


def _corrections(path: Path) -> dict[str, bytes]:
    """source -> corrected value, from a `dlq list --json` file whose values were edited."""
    try:
        listed = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise click.UsageError(f"--corrected {path}: not the JSON that `dlq list --json` writes ({error})") from None
    if not isinstance(listed, list) or not all(isinstance(item, dict) and "source" in item for item in listed):
        raise click.UsageError(f"--corrected {path}: expected a list of dead letters, each with its source")
    return {
        str(item["source"]): (
            json.dumps(item["value"]) if not isinstance(item["value"], str) else item["value"]
        ).encode()
        for item in listed
        if item.get("value") is not None
    }
