"""The console's read cache: one read per change of the views, however many ask at once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from orderlog.console.reads import ReadCache


class Views:
    """A stand-in for the view store: only its stamp matters here."""

    def __init__(self) -> None:
        self.position = 0

    def stamp(self) -> tuple[tuple[str, int], ...]:
        return (("holds/g1/log", self.position),)


def test_twenty_readers_asking_at_once_cost_one_read() -> None:
    views, cache, reads = Views(), ReadCache(), []
    started = threading.Event()

    def read() -> int:
        reads.append(1)
        started.wait(5)  # the others arrive while this read is under way
        return 42

    with ThreadPoolExecutor(20) as pool:
        answers = [pool.submit(cache.get, views, ("queue",), read) for _ in range(20)]
        while not reads:
            pass
        started.set()
        assert [answer.result(5) for answer in answers] == [42] * 20
    assert len(reads) == 1


def test_a_change_of_the_views_is_read_again_and_an_unchanged_view_is_not() -> None:
    views, cache, seen = Views(), ReadCache(), []

    def read() -> int:
        seen.append(views.position)
        return views.position

    assert cache.get(views, ("queue",), read) == 0
    assert cache.get(views, ("queue",), read) == 0
    views.position = 7
    assert cache.get(views, ("queue",), read) == 7
    assert cache.get(views, ("other",), read) == 7
    assert seen == [0, 7, 7]


def test_a_failed_read_is_not_kept_and_those_waiting_read_for_themselves() -> None:
    views, cache = Views(), ReadCache()
    inside, release = threading.Event(), threading.Event()

    def failing() -> int:
        inside.set()
        release.wait(5)
        raise RuntimeError("the view database is locked")

    def broken() -> int:
        raise RuntimeError("the view database is locked")

    with pytest.raises(RuntimeError, match="locked"):
        cache.get(views, ("queue",), broken)
    assert cache.get(views, ("queue",), lambda: 9) == 9  # the failure was not kept

    views.position = 1
    with ThreadPoolExecutor(2) as pool:
        leader = pool.submit(cache.get, views, ("queue",), failing)
        inside.wait(5)
        waiting = pool.submit(cache.get, views, ("queue",), lambda: 5, fresh=True)
        release.set()
        with pytest.raises(RuntimeError, match="locked"):
            leader.result(5)
        assert waiting.result(5) == 5


def test_while_the_views_are_read_again_others_get_the_answer_before_and_one_who_acted_waits() -> None:
    views, cache = Views(), ReadCache()
    assert cache.get(views, ("queue",), lambda: "before") == "before"
    views.position = 1
    inside, release = threading.Event(), threading.Event()

    def slow() -> str:
        inside.set()
        release.wait(5)
        return "after"

    with ThreadPoolExecutor(3) as pool:
        leader = pool.submit(cache.get, views, ("queue",), slow)
        inside.wait(5)
        assert cache.get(views, ("queue",), lambda: "read twice") == "before"  # at once, not waiting
        acted = pool.submit(cache.get, views, ("queue",), lambda: "read twice", fresh=True)
        assert not acted.done()
        release.set()
        assert (leader.result(5), acted.result(5)) == ("after", "after")
    assert cache.get(views, ("queue",), lambda: "read twice") == "after"


def test_the_cache_keeps_at_most_its_size() -> None:
    views, cache = Views(), ReadCache(size=3)
    for number in range(10):
        cache.get(views, (number,), lambda number=number: number)
    assert cache.get(views, (9,), lambda: -1) == 9
    assert cache.get(views, (0,), lambda: -1) == -1
