"""kill -9 at random moments while publishing: afterwards nothing accepted is lost and
nothing is recorded twice (the store equals one published without interruption)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from orderlog.bootstrap import open_store
from orderlog.config import Config
from orderlog.simulate import simulate
from tests.conftest import drop_schema

EFFECTIVE_KILLS = 6


def records_by_stream(config: Config) -> dict[str, list[tuple[int, str, str]]]:
    """Every stored record, per stream key: (version, type, event id)."""
    app = open_store(config.location, create=False)
    try:
        streams: dict[str, list[tuple[int, str, str]]] = {}
        for _position, record in app.log_reader.records():
            streams.setdefault(f"{record.stream}:{record.key}", []).append(
                (record.version, record.type, record.event_id)
            )
        return streams
    finally:
        app.close()


def publish_command(config: Config, source: Path, batch: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "orderlog",
        "--store",
        config.store_url,
        "publish",
        str(source),
        "--batch",
        str(batch),
        "--rejects",
        os.devnull,
    ]


def test_kill_minus_9_while_publishing_loses_and_duplicates_nothing(store_url: str, tmp_path: Path) -> None:
    traffic = tmp_path / "traffic.jsonl"
    traffic.write_text("\n".join(simulate(3000, seed=11)) + "\n", encoding="utf-8")
    environment = {**os.environ, "ORDERLOG_MASTER_KEY_FILE": str(tmp_path / "master.key")}
    crashed = Config(store_url=store_url, master_key_file=tmp_path / "master.key")
    reference_url = (
        f"sqlite:///{tmp_path / 'reference.db'}"
        if store_url.startswith("sqlite")
        else store_url.replace("?schema=", "?schema=ref_")
    )
    reference = Config(store_url=reference_url, master_key_file=tmp_path / "master.key")
    try:
        started = time.monotonic()
        clean = subprocess.run(
            publish_command(reference, traffic, batch=150), env=environment, capture_output=True, text=True, check=False
        )
        duration = time.monotonic() - started  # a whole run, start-up included: kills land inside it
        assert clean.returncode == 2, clean.stderr  # the simulated traffic holds some invalid lines

        rng = random.Random(20261123)
        kills = attempts = 0
        while kills < EFFECTIVE_KILLS and attempts < 60:
            attempts += 1
            process = subprocess.Popen(
                publish_command(crashed, traffic, batch=150),
                env=environment,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            time.sleep(rng.uniform(0.3, max(0.6, 0.8 * duration)))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait()
                kills += 1
            else:
                assert process.returncode in (0, 2), process.stderr.read() if process.stderr else ""
        assert kills >= EFFECTIVE_KILLS, f"only {kills} kills landed while publishing"
        final = subprocess.run(
            publish_command(crashed, traffic, batch=150), env=environment, capture_output=True, text=True, check=False
        )
        assert final.returncode == 2, final.stderr

        assert records_by_stream(crashed) == records_by_stream(reference)
    finally:
        if reference.location.kind == "postgres":
            drop_schema(reference.location)
