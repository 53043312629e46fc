"""Files and processes as a user meets them: outputs that would clobber inputs, workers and
signals, concurrent starts, store files that stand alone, and errors a user can act on."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orderlog.intake.parallel import partition_of
from orderlog.simulate import simulate
from tests import builders as b
from tests.e2e.test_cli import assert_one_line_error, orderlog, write_lines


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ORDERLOG_")}


def traffic(path: Path, orders: int, seed: int = 3) -> Path:
    path.write_text("\n".join(simulate(orders, seed)) + "\n", encoding="utf-8")
    return path


def stored_events(store: Path) -> int:
    """Events in a store file, read as any SQLite tool would (and closed, leaving no WAL);
    0 while a publisher is still creating its tables."""
    with contextlib.closing(sqlite3.connect(store)) as connection:
        try:
            return int(connection.execute("SELECT COUNT(*) FROM stored_events").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


def tally(text: str) -> dict[str, int]:
    line = next(line for line in text.splitlines() if line.startswith("accepted "))
    return {part.split(" ")[0]: int(part.split(" ")[1]) for part in line.split(", ")}


# ---------------------------------------------------------------- outputs over inputs


def test_rejects_naming_the_input_is_refused_before_anything_is_read(tmp_path: Path) -> None:
    events = write_lines(tmp_path / "events.jsonl", b.submitted(), "not json")
    before = events.read_bytes()
    (tmp_path / "link.jsonl").symlink_to(events)
    for rejects in ("events.jsonl", str(events), "./events.jsonl", "link.jsonl"):
        result = orderlog("publish", "events.jsonl", "--rejects", rejects, cwd=tmp_path)
        assert_one_line_error(result, "'--rejects'", f"{rejects} is an input of this command")
        assert result.returncode == 2 and events.read_bytes() == before
    assert not (tmp_path / "orderlog.db").exists()


def test_rejects_naming_the_store_or_the_master_key_is_refused(tmp_path: Path) -> None:
    events = write_lines(tmp_path / "events.jsonl", b.submitted())
    assert orderlog("publish", str(events), cwd=tmp_path).returncode == 0
    for precious, what in (("orderlog.db", "the store"), ("orderlog.db.master-key", "a key file")):
        before = (tmp_path / precious).read_bytes()
        result = orderlog("publish", "events.jsonl", "--rejects", precious, cwd=tmp_path)
        assert_one_line_error(result, f"{precious} is {what}, which")
        assert result.returncode == 2
        assert (tmp_path / precious).read_bytes() == before


@pytest.mark.parametrize(
    ("rejects", "words"),
    [
        ("orderlog.views.db", "orderlog.views.db is the views database"),
        ("orderlog.db-wal", "orderlog.db-wal is the store's -wal file"),
        ("copy.db", "copy.db is a SQLite database"),
        ("-", "- is not a file here"),
    ],
)
def test_rejects_over_the_views_a_side_file_or_any_database_is_refused(
    tmp_path: Path, rejects: str, words: str
) -> None:
    events = write_lines(tmp_path / "events.jsonl", b.submitted(), "not json")
    assert orderlog("publish", "events.jsonl", cwd=tmp_path).returncode == 2
    assert orderlog("project", "--once", cwd=tmp_path).returncode == 0
    shutil.copy(tmp_path / "orderlog.db", tmp_path / "copy.db")
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir() if path.is_file()}
    result = orderlog("publish", str(events), "--rejects", rejects, cwd=tmp_path)
    assert_one_line_error(result, "'--rejects'", words)
    assert result.returncode == 2
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir() if path.is_file()} == before


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["simulate", "--orders", "1", "--out", "orderlog.db"], "orderlog.db is the store, which orderlog keeps"),
        (["simulate", "--orders", "1", "--out", "orderlog.views.db"], "is the views database"),
        (["simulate", "--orders", "1", "--out", "orderlog.db.master-key"], "is a key file"),
        (["simulate", "--orders", "1", "--out", "copy.db"], "copy.db is a SQLite database"),
        (["analytics", "cancellations", "--plot", "orderlog.db"], "'--plot': orderlog.db is the store"),
        (["audit", "checkpoint", "--out", "orderlog.db-wal"], "orderlog.db-wal is the store's -wal file"),
        (["audit", "checkpoint", "--signing-key", "log.pem", "--out", "log.pem"], "log.pem is an input"),
        (["keys", "new-signing", "--out", "orderlog.db"], "orderlog.db is the store"),
        (
            ["audit", "proof", "SO-1", "--checkpoint", "checkpoint.json", "--out", "checkpoint.json"],
            "checkpoint.json is an input of this command",
        ),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else None,
)
def test_no_command_writes_over_what_orderlog_keeps_or_what_it_reads(
    tmp_path: Path, args: list[str], words: str
) -> None:
    write_lines(tmp_path / "events.jsonl", b.submitted("SO-1"))
    assert orderlog("publish", "events.jsonl", cwd=tmp_path).returncode == 0
    assert orderlog("project", "--once", cwd=tmp_path).returncode == 0
    assert orderlog("keys", "new-signing", "--out", "log.pem", cwd=tmp_path).returncode == 0
    checkpoint = orderlog("audit", "checkpoint", "--signing-key", "log.pem", cwd=tmp_path)
    (tmp_path / "checkpoint.json").write_text(checkpoint.stdout)
    shutil.copy(tmp_path / "orderlog.db", tmp_path / "copy.db")
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir() if path.is_file()}
    result = orderlog(*args, cwd=tmp_path)
    assert_one_line_error(result, words)
    assert result.returncode == 2
    after = {path.name: path.read_bytes() for path in tmp_path.iterdir() if path.is_file()}
    assert after == before


def test_rejects_over_the_key_of_a_store_reached_through_a_link_is_refused(tmp_path: Path) -> None:
    write_lines(tmp_path / "events.jsonl", b.submitted(), "not json")
    assert orderlog("publish", "events.jsonl", cwd=tmp_path).returncode == 2
    (tmp_path / "link.db").symlink_to(tmp_path / "orderlog.db")
    key = (tmp_path / "orderlog.db.master-key").read_bytes()
    result = orderlog(
        "--store", "link.db", "publish", "events.jsonl", "--rejects", "orderlog.db.master-key", cwd=tmp_path
    )
    assert_one_line_error(result, "orderlog.db.master-key is a key file")
    assert (tmp_path / "orderlog.db.master-key").read_bytes() == key
    shown = orderlog("--store", "link.db", "order", "show", b.submitted()["order_id"], cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr  # the store through the link finds the key beside the file


def test_rejects_over_the_file_standard_input_reads_is_refused(tmp_path: Path) -> None:
    events = write_lines(tmp_path / "events.jsonl", b.submitted(), "not json")
    before = events.read_bytes()
    with events.open("rb") as stdin:
        result = orderlog("publish", "-", "--rejects", "events.jsonl", cwd=tmp_path, stdin_file=stdin)
    assert_one_line_error(result, "events.jsonl is an input of this command (standard input reads it)")
    assert events.read_bytes() == before


def test_rejects_a_full_disk_cannot_take_stop_in_one_line_after_the_tally(tmp_path: Path) -> None:
    write_lines(tmp_path / "events.jsonl", b.submitted(), "not json")
    result = orderlog("publish", "events.jsonl", "--rejects", "/dev/full", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    *_created_key, stopped, error = result.stderr.strip().splitlines()
    assert (
        stopped
        == "orderlog: stopped; stored before the stop: accepted 1, duplicates 0, conflicts 0, refused 0, invalid 1"
    )
    assert error == "orderlog: error: cannot write rejects to /dev/full: No space left on device"


@pytest.mark.parametrize(
    "args",
    [
        ["publish", "events.jsonl", "--rejects", "no/such/dir/rejects.jsonl"],
        ["simulate", "--orders", "1", "--out", "no/such/dir/traffic.jsonl"],
        ["keys", "new-signing", "--out", "no/such/dir/key.pem"],
        ["publish", "events.jsonl", "--rejects", "."],
    ],
)
def test_an_output_that_cannot_be_written_is_named_before_any_work(tmp_path: Path, args: list[str]) -> None:
    write_lines(tmp_path / "events.jsonl", b.submitted())
    result = orderlog(*args, cwd=tmp_path)
    assert_one_line_error(result)
    assert result.returncode == 2 and not (tmp_path / "orderlog.db").exists()


# ---------------------------------------------------------------- workers


def test_workers_partition_by_the_key_as_json_reads_it() -> None:
    plain, escaped = b'{"order_id": "SO-1"}', b'{"order_id": "SO\\u002d1"}'
    assert all(partition_of(plain, n) == partition_of(escaped, n) for n in range(1, 9))


def test_an_order_written_with_escapes_in_one_line_goes_to_the_worker_of_its_plain_lines(tmp_path: Path) -> None:
    lines: list[str] = []
    for number in range(12):
        lines.append(b.line(b.submitted(f"SO-{number}", event_id=f"s{number}", total=1000)))
        lines.append(
            b.line(b.paid(f"SO-{number}", event_id=f"p{number}")).replace(f'"SO-{number}"', f'"SO\\u002d{number}"')
        )
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = orderlog("publish", str(path), "--workers", "2", "--batch", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert tally(result.stdout)["accepted"] == 24


def publishing_in_a_group(home: Path, traffic_file: Path, *options: str) -> subprocess.Popen[str]:
    """`orderlog publish FILE --workers 2` in a process group of its own, as a terminal starts it."""
    return subprocess.Popen(
        [sys.executable, "-m", "orderlog", "publish", str(traffic_file), "--workers", "2", *options],
        cwd=home,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


@pytest.mark.parametrize(
    ("number", "said"),
    [(signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM")],  # a terminal's Ctrl-C; a service manager's stop
)
def test_a_stop_signal_with_workers_stops_after_the_batch_and_reports_exactly_what_was_stored(
    tmp_path: Path, number: signal.Signals, said: str
) -> None:
    big = traffic(tmp_path / "big.jsonl", 6000)
    process = publishing_in_a_group(tmp_path, big, "--batch", "300")
    wait_for(lambda: (tmp_path / "orderlog.db").exists() and stored_events(tmp_path / "orderlog.db") > 1000)
    os.killpg(process.pid, number)  # the whole group, as a terminal's Ctrl-C (and `kill -- -PGID`) does
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert f"{said}: stopping after the batch under way" in err and "interrupted" in err
    assert "Traceback" not in err and "died" not in err
    first = tally(out)
    assert first["accepted"] > 0
    rest = orderlog("publish", str(big), "--workers", "2", cwd=tmp_path)
    clean = orderlog("--store", "clean.db", "publish", str(big), cwd=tmp_path)
    assert first["accepted"] + tally(rest.stdout)["accepted"] == tally(clean.stdout)["accepted"]
    assert stored_events(tmp_path / "orderlog.db") == stored_events(tmp_path / "clean.db")


def test_ctrl_c_while_the_workers_are_still_starting_stops_cleanly(tmp_path: Path) -> None:
    """Ctrl-C reaches the whole process group, workers still importing included: they must not
    die of it with a traceback, and the parent must say what was stored (here, maybe nothing)."""
    big = traffic(tmp_path / "big.jsonl", 2000)
    process = publishing_in_a_group(tmp_path, big)
    wait_for(lambda: len(workers_of(process.pid)) == 2, seconds=30)
    os.killpg(process.pid, signal.SIGINT)
    _out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "Traceback" not in err and "died" not in err and "interrupted" in err


def test_workers_die_with_their_parent_even_under_kill_9(tmp_path: Path) -> None:
    big = traffic(tmp_path / "big.jsonl", 8000)
    process = subprocess.Popen(
        [sys.executable, "-m", "orderlog", "publish", str(big), "--workers", "2", "--batch", "200"],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_for(lambda: len(workers_of(process.pid)) == 2)
    workers = workers_of(process.pid)
    wait_for(lambda: (tmp_path / "orderlog.db").exists() and stored_events(tmp_path / "orderlog.db") > 500)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    wait_for(lambda: not any(alive(pid) for pid in workers), seconds=10)


def workers_of(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes()
            if f"PPid:\t{parent}\n" in status and b"spawn_main" in cmdline:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in state


def wait_for(condition, seconds: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def test_publishers_starting_at_once_on_a_new_store_all_succeed(tmp_path: Path) -> None:
    events = write_lines(tmp_path / "events.jsonl", b.stock_counted(event_id="c1"))
    for round_ in range(4):
        store = tmp_path / f"new-{round_}.db"
        runs = [
            subprocess.Popen(
                [sys.executable, "-m", "orderlog", "--store", str(store), "publish", str(events)],
                cwd=tmp_path,
                env=clean_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ]
        errors = [run.communicate(timeout=60)[1] for run in runs]  # read while waiting: a full pipe blocks
        results = [(run.returncode, error) for run, error in zip(runs, errors, strict=True)]
        assert [code for code, _ in results] == [0, 0, 0], results
        assert stored_events(store) == 1


# ---------------------------------------------------------------- store files stand alone


def test_every_command_leaves_a_store_file_that_stands_alone(tmp_path: Path) -> None:
    events = traffic(tmp_path / "traffic.jsonl", 150, seed=11)
    more = traffic(tmp_path / "more.jsonl", 150, seed=12)
    key = tmp_path / "log.pem"
    source_key = tmp_path / "source.pem"
    commands = [
        ["demo", "--orders", "60"],
        ["publish", str(events)],
        ["publish", str(more), "--workers", "2"],
        ["keys", "new-signing", "--out", str(key)],
        ["audit", "checkpoint", "--signing-key", str(key)],
        ["keys", "new-signing", "--out", str(source_key)],
        ["sources", "add", "pos", "--types", "OrderSubmitted", "--public-key", str(source_key.with_suffix(".pub.pem"))],
        ["sources", "revoke", "pos"],
        ["customer", "forget", "C-7-00001", "--by", "dpo", "--reason", "request"],
        ["order", "show", "SO-11-000001"],
        ["audit", "verify", "--signing-key", str(key)],
    ]
    for args in commands:
        result = orderlog(*args, cwd=tmp_path)
        assert result.returncode in (0, 2), (args, result.stderr)
        left = [p.name for p in tmp_path.glob("orderlog.db-*")]
        assert not left, f"{args} left {left} beside the store"
        copy = tmp_path / "copy" / "orderlog.db"
        copy.parent.mkdir(exist_ok=True)
        shutil.copyfile(tmp_path / "orderlog.db", copy)
        assert stored_events(copy) == stored_events(tmp_path / "orderlog.db"), args
        shutil.rmtree(copy.parent)


def test_backup_copies_a_live_store_into_one_file(tmp_path: Path) -> None:
    events = traffic(tmp_path / "traffic.jsonl", 100)
    orderlog("publish", str(events), cwd=tmp_path)
    result = orderlog("backup", "--out", "copy.db", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert stored_events(tmp_path / "copy.db") == stored_events(tmp_path / "orderlog.db") > 0
    assert not (tmp_path / "copy.db-wal").exists()
    assert_one_line_error(orderlog("backup", "--out", "copy.db", cwd=tmp_path), "copy.db is a SQLite database")
    (tmp_path / "notes.txt").write_text("mine")
    assert_one_line_error(orderlog("backup", "--out", "notes.txt", cwd=tmp_path), "exists already")
    assert (tmp_path / "notes.txt").read_text() == "mine"


# ---------------------------------------------------------------- errors a user can act on


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (os.urandom(8192), "not an orderlog store, or it is damaged"),
        (b"name,qty\nwidget,3\n" * 100, "not an orderlog store, or it is damaged"),
    ],
    ids=["random bytes", "a text file"],
)
@pytest.mark.parametrize("args", [["order", "show", "SO-1"], ["publish", "events.jsonl"], ["audit", "verify"]])
def test_a_file_that_is_no_store_is_named_as_such(tmp_path: Path, content: bytes, words: str, args: list[str]) -> None:
    (tmp_path / "orderlog.db").write_bytes(content)
    write_lines(tmp_path / "events.jsonl", b.submitted())
    result = orderlog(*args, cwd=tmp_path)
    assert_one_line_error(result, words)
    assert result.returncode == 1 and (tmp_path / "orderlog.db").read_bytes() == content


def test_an_empty_sqlite_file_is_no_store_either(tmp_path: Path) -> None:
    sqlite3.connect(tmp_path / "other.db").execute("CREATE TABLE t (x)").connection.close()
    result = orderlog("--store", "other.db", "order", "show", "SO-1", cwd=tmp_path)
    assert_one_line_error(result, "holds no orderlog store")


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """A directory nobody may write to, root included (chattr +i), or skip saying why."""
    if os.geteuid() == 0:
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(directory)], check=False).returncode:
            pytest.skip("cannot make a directory read-only for root here (chattr +i failed)")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(directory)], check=True)
    else:
        directory.chmod(0o555)
        try:
            yield
        finally:
            directory.chmod(0o755)


def test_a_store_in_a_read_only_directory_can_be_read_and_refuses_writes_in_one_line(tmp_path: Path) -> None:
    shop = tmp_path / "shop"
    shop.mkdir()
    events = write_lines(tmp_path / "events.jsonl", b.submitted("SO-1"), b.paid("SO-1"))
    assert orderlog("--store", str(shop / "orderlog.db"), "publish", str(events), cwd=tmp_path).returncode == 0
    files_before = sorted(p.name for p in shop.iterdir())
    with read_only(shop):
        shown = orderlog("--store", str(shop / "orderlog.db"), "order", "show", "SO-1", cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert "PENDING_SHIPMENT" in shown.stdout
        history = orderlog("--store", str(shop / "orderlog.db"), "order", "history", "SO-1", cwd=tmp_path)
        assert history.returncode == 0, history.stderr
        written = orderlog("--store", str(shop / "orderlog.db"), "publish", str(events), cwd=tmp_path)
        assert_one_line_error(written)
        assert written.returncode == 1
    assert sorted(p.name for p in shop.iterdir()) == files_before


def test_a_directory_given_as_the_master_key_file_is_named(tmp_path: Path) -> None:
    events = write_lines(tmp_path / "events.jsonl", b.submitted())
    (tmp_path / "keys").mkdir()
    result = orderlog("publish", str(events), cwd=tmp_path, env={"ORDERLOG_MASTER_KEY_FILE": str(tmp_path / "keys")})
    assert_one_line_error(result, "is a directory")
    assert result.returncode == 1


@pytest.mark.parametrize("moment", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:30:00+01:00"])
def test_a_moment_outside_the_calendar_in_utc_is_a_usage_error(tmp_path: Path, moment: str) -> None:
    orderlog("publish", str(write_lines(tmp_path / "e.jsonl", b.submitted())), cwd=tmp_path)
    for option in ("--as-of", "--known-at"):
        result = orderlog("order", "show", "SO-1", option, moment, cwd=tmp_path)
        assert_one_line_error(result, "is outside 1970-9999")
        assert result.returncode == 2


def test_sign_goes_on_past_a_bad_line(tmp_path: Path) -> None:
    orderlog("keys", "new-signing", "--out", "source.pem", cwd=tmp_path)
    envelopes = write_lines(tmp_path / "in.jsonl", b.paid(event_id="a"), "not json", "[1, 2]", b.paid(event_id="b"))
    result = orderlog("sign", "--key", "source.pem", str(envelopes), cwd=tmp_path)
    assert result.returncode == 2
    assert [line.count('"signature"') for line in result.stdout.splitlines()] == [1, 1]
    assert "line 2 not signed" in result.stderr and "line 3 not signed" in result.stderr
    assert "Traceback" not in result.stderr


def test_sigterm_stops_a_following_projector_with_its_report_and_exit_0(tmp_path: Path) -> None:
    """`project --follow` runs as a service; its manager stops it with SIGTERM."""
    published = orderlog("publish", str(traffic(tmp_path / "t.jsonl", 200)), cwd=tmp_path)
    assert tally(published.stdout)["accepted"] > 0, published.stderr  # exit 2: the traffic has bad lines too
    process = subprocess.Popen(
        [sys.executable, "-m", "orderlog", "project", "--follow"],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for((tmp_path / "orderlog.views.db").exists)
    time.sleep(2)  # past start-up, into the work (or the wait for more)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "SIGTERM: stopping after the batch under way is committed" in err and "Traceback" not in err
    assert all(name in out for name in ("holds", "cancellations", "status")), out


# ---------------------------------------------------------------- the console's process


def test_the_console_without_a_store_says_so_in_one_line_before_serving(tmp_path: Path) -> None:
    result = orderlog("console", "--port", "1", cwd=tmp_path)
    assert_one_line_error(result, "no store at orderlog.db")
    assert result.returncode == 1


@pytest.mark.parametrize(
    ("host", "words"),
    [
        ("no.such.host.invalid", "cannot listen on 'no.such.host.invalid' port"),
        ("127.0.0.1", "in use"),
        ("a" * 64, "... (64 characters) port"),
        ("..", "cannot listen on '..' port"),
        ("127.0.0.1\n", "cannot listen on '127.0.0.1\\n' port"),
    ],
    ids=["unknown host", "port in use", "a label too long", "empty labels", "a newline"],
)
def test_a_console_that_cannot_listen_says_why_in_one_line(tmp_path: Path, host: str, words: str) -> None:
    assert orderlog("publish", str(write_lines(tmp_path / "events.jsonl", b.submitted())), cwd=tmp_path).returncode == 0
    with contextlib.closing(socket.socket()) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = orderlog("console", "--host", host, "--port", str(taken.getsockname()[1]), cwd=tmp_path)
    assert_one_line_error(result, words)
    assert result.returncode == 1


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (["--store", "empty.db", "console", "--port", "1"], "empty.db holds no orderlog store"),
        (["--store", "orderlog.views.db", "console", "--port", "1"], "orderlog.views.db is a views database"),
        (["--store", "orderlog.views.db", "publish", "events.jsonl"], "orderlog.views.db is a views database"),
        (["--store", "other.db", "publish", "events.jsonl"], "other.db holds no orderlog store"),
        (["--views", "orderlog.db", "console", "--port", "1"], "views orderlog.db is the store"),
        (["--views", "orderlog.db", "project", "--once"], "views orderlog.db is the store"),
        (["--views", "other.db", "project", "--once"], "views other.db holds another database"),
    ],
    ids=[
        "empty file as store",
        "views as store",
        "views as store for publish",
        "another database as store",
        "store as views",
        "store as views for project",
        "another database as views",
    ],
)
def test_a_store_and_its_views_are_never_made_of_each_other_or_of_another_database(
    tmp_path: Path, options: list[str], words: str
) -> None:
    write_lines(tmp_path / "events.jsonl", b.submitted())
    assert orderlog("publish", "events.jsonl", cwd=tmp_path).returncode == 0
    assert orderlog("project", "--once", cwd=tmp_path).returncode == 0
    (tmp_path / "empty.db").touch()
    sqlite3.connect(tmp_path / "other.db").execute("CREATE TABLE t (x)").connection.close()
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir() if path.is_file()}
    result = orderlog(*options, cwd=tmp_path)
    assert_one_line_error(result, words)
    assert result.returncode == 1
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir() if path.is_file()} == before


def serve_console(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    """`orderlog console ARGS` on a store in `tmp_path`, and what it said on starting."""
    assert orderlog("publish", str(write_lines(tmp_path / "events.jsonl", b.submitted())), cwd=tmp_path).returncode == 0
    console = subprocess.Popen(
        [sys.executable, "-m", "orderlog", "console", "--port", "0", *args],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert console.stderr is not None
    said = []
    while not said or not ("Ctrl-C stops it" in said[-1] or said[-1] == ""):
        said.append(console.stderr.readline())
    return console, "".join(said)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_stop_signal_stops_the_console_with_exit_0(tmp_path: Path, stop: signal.Signals) -> None:
    console, said = serve_console(tmp_path)
    assert "Ctrl-C stops it" in said, said
    console.send_signal(stop)
    _out, rest = console.communicate(timeout=30)
    assert console.returncode == 0, rest
    assert rest.strip() == "orderlog console: stopped"


@pytest.mark.parametrize(
    ("host", "url", "warned"),
    [
        ("[::1]", "http://[::1]:", False),
        ("::1", "http://[::1]:", False),
        ("127.1", "http://127.0.0.1:", False),
        ("0.0.0.0", "http://0.0.0.0:", True),
    ],
)
def test_the_console_says_where_it_listens_and_warns_beyond_loopback(
    tmp_path: Path, host: str, url: str, warned: bool
) -> None:
    if ":" in host and not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    console, said = serve_console(tmp_path, "--host", host)
    console.terminate()
    console.communicate(timeout=30)
    assert f"orderlog console on {url}" in said, said
    assert ("beyond this machine" in said) is warned, said


@pytest.mark.parametrize(
    ("args", "words", "code"),
    [
        (["--store", "orderlog.db-wal", "order", "show", "SO-1"], "store orderlog.db-wal is a file SQLite keeps", 1),
        (["--views", "orderlog.db-wal", "project", "--once"], "views orderlog.db-wal is a file SQLite keeps", 1),
        (["--store", "es.db", "publish", "events.jsonl"], "es.db holds another application's event store", 1),
        (["audit", "checkpoint", "--out", "-"], "- is not a file here", 2),
        (["simulate", "--orders", "1", "--out", "loop"], "loop is a loop of symbolic links", 2),
        (["--store", "x" * 300 + ".db", "order", "show", "SO-1"], "File name too long", 1),
        (["keys", "new-signing", "--out", "k.pem"], "k.pub.pem exists already", 1),
        (["demo", "--orders", "5"], "the demo's rejects file: orderlog-demo-rejects.jsonl is the store", 1),
    ],
    ids=[
        "side file as store",
        "side file as views",
        "another event store",
        "- for a copy",
        "a link loop",
        "a name too long",
        "a public key there",
        "the demo's rejects",
    ],
)
def test_more_files_orderlog_never_writes_over_or_chokes_on(
    tmp_path: Path, args: list[str], words: str, code: int
) -> None:
    write_lines(tmp_path / "events.jsonl", b.submitted("SO-1"))
    assert orderlog("publish", "events.jsonl", cwd=tmp_path).returncode == 0
    events = sqlite3.connect(tmp_path / "es.db")
    events.execute(
        "CREATE TABLE stored_events (originator_id TEXT, originator_version INTEGER, topic TEXT, state BLOB)"
    )
    events.commit()
    events.close()
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "k.pub.pem").write_text("a public key given to auditors")
    (tmp_path / "orderlog-demo-rejects.jsonl").symlink_to(tmp_path / "orderlog.db")
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir() if path.is_file() and path.name != "loop"}
    result = orderlog(*args, cwd=tmp_path)
    assert_one_line_error(result, words)
    assert result.returncode == code
    after = {path.name: path.read_bytes() for path in tmp_path.iterdir() if path.is_file() and path.name != "loop"}
    assert after == before


def test_dash_means_standard_output_where_it_is_the_default(tmp_path: Path) -> None:
    result = orderlog("simulate", "--orders", "1", "--out", "-", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("{")
    assert not (tmp_path / "-").exists()
