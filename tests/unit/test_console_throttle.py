"""The sign-in throttle and the token comparison, alone: attempts counted as they are let in,
forgotten after a quiet spell, and any text compared without an error."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from orderlog.console.security import FORGET_SECONDS, FREE_FAILURES, REMEMBERED, Throttle, same_token

KEYS = ["name:admin", "address:10.0.0.1"]


def clocked(now: list[float]) -> Throttle:
    return Throttle(clock=lambda: now[0])


def test_attempts_sent_all_at_once_are_let_in_no_more_than_the_free_ones() -> None:
    throttle = clocked([1000.0])
    with ThreadPoolExecutor(20) as pool:
        waits = list(pool.map(lambda _n: throttle.admit(KEYS), range(20)))
    assert sum(1 for wait in waits if wait == 0) == FREE_FAILURES
    assert all(wait > 0 for wait in waits if wait != 0)


def test_each_further_attempt_waits_twice_as_long_and_a_correct_password_clears_the_name() -> None:
    now = [1000.0]
    throttle = clocked(now)
    for _ in range(FREE_FAILURES):
        assert throttle.admit(KEYS) == 0
    assert throttle.admit(KEYS) == 1.0
    now[0] += 1.0
    assert throttle.admit(KEYS) == 0  # let in, and counted
    assert throttle.admit(KEYS) == 2.0
    now[0] += 2.0
    assert throttle.admit(KEYS) == 0
    throttle.succeeded(*KEYS)  # the right password at last
    assert throttle.admit(["name:admin", "address:10.0.0.2"]) == 0
    assert throttle.admit(["name:olga", KEYS[1]]) > 0, "the address still carries the wrong guesses"


def test_a_name_and_an_address_quiet_for_long_enough_start_again() -> None:
    now = [1000.0]
    throttle = clocked(now)
    for _ in range(FREE_FAILURES + 3):
        throttle.admit(KEYS)
    assert throttle.admit(KEYS) > 0
    now[0] += FORGET_SECONDS + 1
    for _ in range(FREE_FAILURES):
        assert throttle.admit(KEYS) == 0


def test_the_throttle_remembers_a_bounded_number_of_names() -> None:
    throttle = clocked([1000.0])
    for number in range(REMEMBERED + 50):
        throttle.admit([f"name:{number}"])
    assert len(throttle._failures) == REMEMBERED
    assert "name:0" not in throttle._failures and f"name:{REMEMBERED + 49}" in throttle._failures


def test_tokens_of_any_text_are_compared_without_an_error() -> None:
    assert same_token("abc", "abc")
    assert not same_token("abc", "é")
    assert not same_token("é", "abc")
    assert not same_token("", "")
    assert not same_token(None, "abc")
