"""What pages read from the views, kept until a view changes and read once however many ask."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Stamped(Protocol):
    def stamp(self) -> Hashable: ...


@dataclass
class _Flight:
    """One read under way, of the views as they stood at `stamp`."""

    stamp: Hashable
    done: threading.Event = field(default_factory=threading.Event)
    value: Any = None
    failed: bool = False


@dataclass
class ReadCache:
    """Reports read from the views, kept until any view changes.

    Twenty people on the queue page ask the same question many times a second, and the answer
    changes only when a projector commits a batch; the views' stamp (every projector
    generation's position, one small query) says whether it has. When it has, the first to
    ask reads, and the others are given the answer before it (one batch older, as a page
    fetched a moment earlier would have shown) rather than each making the read or waiting
    for it: a page costs at most one read at a time, however many are looking and however
    often the views change, and nobody waits for it but the first. A reader that must see
    the views as they are now (`fresh`: someone who has just acted) waits for that read, or
    makes its own, instead of taking the older answer.
    """

    size: int = 256
    _latest: dict[tuple[Any, ...], tuple[Hashable, Any]] = field(default_factory=dict)
    _flights: dict[tuple[Any, ...], _Flight] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, views: Stamped, key: tuple[Any, ...], compute: Callable[[], T], *, fresh: bool = False) -> T:
        stamp = views.stamp()
        with self._lock:
            latest = self._latest.get(key)
            if latest is not None and latest[0] == stamp:
                return latest[1]  # type: ignore[no-any-return]
            flight = self._flights.get(key)
            if flight is not None and latest is not None and not fresh:
                return latest[1]  # type: ignore[no-any-return]
            leading = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight(stamp)
        if leading:
            return self._lead(key, flight, compute)
        if flight.stamp == stamp:
            flight.done.wait()
            if not flight.failed:
                return flight.value  # type: ignore[no-any-return]
        value = compute()  # the read under way failed, or is of another moment: read apart
        self._keep(key, stamp, value)
        return value

    def _lead(self, key: tuple[Any, ...], flight: _Flight, compute: Callable[[], T]) -> T:
        try:
            flight.value = compute()
        except BaseException:
            flight.failed = True  # those waiting read for themselves, and meet the fault themselves
            raise
        finally:
            with self._lock:
                del self._flights[key]
                if not flight.failed:
                    self._keep_locked(key, flight.stamp, flight.value)
            flight.done.set()
        return flight.value  # type: ignore[no-any-return]

    def _keep(self, key: tuple[Any, ...], stamp: Hashable, value: Any) -> None:
        with self._lock:
            self._keep_locked(key, stamp, value)

    def _keep_locked(self, key: tuple[Any, ...], stamp: Hashable, value: Any) -> None:
        self._latest.pop(key, None)  # the most recently read last: the first to go is the oldest
        if len(self._latest) >= self.size:
            self._latest.pop(next(iter(self._latest)))
        self._latest[key] = (stamp, value)
