"""Console accounts: recorded as events (who added whom, when, who disabled them), passwords
hashed with argon2id outside the log, never stored or shown in clear."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orderlog.accounts import AccountError, add_account, authenticate, change_password, disable_account, list_accounts
from orderlog.domain.account import Account
from tests.conftest import reopen
from tests.read_models import Scene

PASSWORD = "a long enough secret 1"


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[Scene]:
    scene = Scene(tmp_path)
    yield scene
    scene.close()


def test_an_account_is_recorded_as_events_with_who_added_and_disabled_it(scene: Scene) -> None:
    add_account(scene.app, "dana", "auditor", PASSWORD, "admin-amy")
    disable_account(scene.app, "dana", "moved team", "admin-bo")
    records = scene.app.records(Account, "dana")
    assert [(r.type, r.actor, r.data) for r in records] == [
        ("AccountAdded", "admin-amy", {"role": "auditor"}),
        ("AccountDisabled", "admin-bo", {"reason": "moved team"}),
    ]
    [account] = list_accounts(scene.app)
    assert (account.name, account.role, account.enabled, account.disabled_by) == ("dana", "auditor", False, "admin-bo")


def test_the_password_is_nowhere_in_clear_and_its_hash_is_not_in_the_log(scene: Scene) -> None:
    add_account(scene.app, "dana", "analyst", PASSWORD, "admin")
    stored = scene.app.database.get_credential("dana")
    assert stored is not None and stored.startswith("$argon2id$")
    log = "".join(str(record) for _position, record in scene.records())
    assert "dana" in log and stored not in log and PASSWORD not in log
    scene.app.database.checkpoint_wal()
    store_path = scene.config.location.path
    assert store_path is not None
    files = [store_path, *store_path.parent.glob(store_path.name + "-*")]
    assert all(PASSWORD.encode() not in file.read_bytes() for file in files)


def test_sign_in_takes_the_right_password_of_an_enabled_account_only(scene: Scene) -> None:
    add_account(scene.app, "dana", "analyst", PASSWORD, "admin")
    assert authenticate(scene.app, "dana", PASSWORD) is not None
    assert authenticate(scene.app, "dana", PASSWORD + "x") is None
    assert authenticate(scene.app, "nobody", PASSWORD) is None
    assert authenticate(scene.app, "DANA", PASSWORD) is None
    change_password(scene.app, "dana", "another long secret")
    assert authenticate(scene.app, "dana", PASSWORD) is None
    assert authenticate(scene.app, "dana", "another long secret") is not None
    disable_account(scene.app, "dana", "", "admin")
    assert authenticate(scene.app, "dana", "another long secret") is None


@pytest.mark.parametrize(
    ("name", "role", "password", "says"),
    [
        ("Dana", "analyst", PASSWORD, "lower case"),
        ("da na", "analyst", PASSWORD, "account name"),
        ("dana\u200b", "analyst", PASSWORD, "zero width space"),
        ("x" * 65, "analyst", PASSWORD, "1 to 64"),
        ("dana", "superuser", PASSWORD, "unknown role"),
        ("dana", "analyst", "short", "at least 12"),
        ("dana", "analyst", "x" * 1025, "at most 1024"),
    ],
)
def test_a_bad_account_is_refused_in_one_line_saying_what_is_wrong(
    scene: Scene, name: str, role: str, password: str, says: str
) -> None:
    with pytest.raises(AccountError, match=says):
        add_account(scene.app, name, role, password, "admin")
    assert list_accounts(scene.app) == []


def test_an_account_is_added_once(scene: Scene) -> None:
    add_account(scene.app, "dana", "analyst", PASSWORD, "admin")
    with pytest.raises(AccountError, match="exists already"):
        add_account(scene.app, "dana", "admin", "a different secret", "mallory")
    assert authenticate(scene.app, "dana", PASSWORD) is not None, "the first password still stands"


def test_users_commands_take_the_password_from_stdin_and_never_from_arguments(tmp_path: Path) -> None:
    def orderlog(*arguments: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "orderlog", *arguments],
            input=stdin,
            capture_output=True,
            text=True,
            cwd=tmp_path,
            check=False,
        )

    added = orderlog("users", "add", "dana", "--role", "admin", "--password-stdin", "--by", "setup", stdin=PASSWORD)
    assert added.returncode == 0, added.stderr
    listed = orderlog("users", "list", "--json")
    assert '"name": "dana"' in listed.stdout and '"added_by": "setup"' in listed.stdout
    no_terminal = orderlog("users", "add", "eve", "--role", "admin")
    assert no_terminal.returncode == 2
    assert no_terminal.stderr.count("\n") == 1 and "--password-stdin" in no_terminal.stderr
    assert PASSWORD not in (added.stdout + added.stderr + listed.stdout)


def test_records_made_at_the_wall_clock_by_administrators_never_move_the_queues_clock(scene: Scene) -> None:
    """Adding a user today must not make last March's queue overdue (the class: every record
    type declared `wall_clock`, each made here at today's time)."""
    from orderlog.domain.contract import EVENT_TYPES
    from orderlog.queue_actions import act_on_exception
    from projections import PROJECTORS
    from projections import exceptions as queue_view
    from projections.service import project
    from projections.sources import LogSource
    from tests import builders as b

    def run() -> str:
        project(scene.views, list(PROJECTORS.values()), LogSource(scene.app.log_reader), follow=False)
        return queue_view.clock(scene.views)

    scene.publish(
        b.submitted("SO-1", event_id="s", at="2026-03-01T10:00:00Z"),
        b.paid("SO-1", 1000, "P-1", event_id="p1", at="2026-03-01T10:05:00Z"),
        b.paid("SO-1", 300, "P-2", event_id="p2", at="2026-03-01T10:09:00Z"),
    )
    before = run()
    assert before == "2026-03-01T10:09:00.000Z"
    add_account(scene.app, "dana", "analyst", PASSWORD, "admin")
    disable_account(scene.app, "dana", "", "admin")
    item = queue_view.one(scene.views, "PAYMENT_OVERPAID:SO-1")
    assert item is not None
    act_on_exception(scene.app, "ExceptionAcknowledged", item, "ops", "looking")
    act_on_exception(scene.app, "ExceptionResolved", {**item, "status": "acknowledged"}, "ops", "refunded")
    scene.app.forget_customer("C-1", "dpo", "asked")
    made = {record.type for _position, record in scene.records()}
    wall_clock = {name for name, event_type in EVENT_TYPES.items() if event_type.wall_clock}
    assert wall_clock - made <= {"SourceRegistered", "SourceRevoked"}, "each kind is made here but sources"
    assert run() == before


def test_nobody_disables_their_own_account_and_the_last_admin_stays(scene: Scene) -> None:
    add_account(scene.app, "root", "admin", PASSWORD, None)
    with pytest.raises(AccountError, match="root cannot disable their own account"):
        disable_account(scene.app, "root", "", "root")
    with pytest.raises(AccountError, match="root is the last admin who can sign in"):
        disable_account(scene.app, "root", "", "cli")
    add_account(scene.app, "deputy", "admin", PASSWORD, "root")
    disable_account(scene.app, "root", "left", "deputy")
    assert [account.enabled for account in list_accounts(scene.app)] == [True, False]  # deputy, root


def test_an_account_added_twice_at_once_keeps_the_first_password(scene: Scene) -> None:
    """The second adder found no account when it looked, but one was recorded before its own:
    its record is refused, and its password never replaces the first's."""
    add_account(scene.app, "dana", "analyst", PASSWORD, "amy")
    second = reopen(scene.config)
    looked = second.stream
    second.stream = lambda cls, key: None if key == "dana" else looked(cls, key)  # type: ignore[method-assign]
    try:
        with pytest.raises(AccountError, match="'dana' exists already: it was added a moment ago"):
            add_account(second, "dana", "admin", "the other secret 22", "bo")
    finally:
        second.close()
    assert authenticate(scene.app, "dana", PASSWORD) is not None
    assert authenticate(scene.app, "dana", "the other secret 22") is None
    assert [r.type for r in scene.app.records(Account, "dana")] == ["AccountAdded"]
