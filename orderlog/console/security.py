"""Sessions, CSRF tokens, the sign-in throttle and the headers every response carries.

Sessions live in the console process's memory: a random token in a Secure, HttpOnly,
SameSite=Strict cookie names one, which ends after 30 idle minutes, 12 hours in all, at
sign-out, or when its account is disabled. Restarting the console signs everyone out; that
is the price of keeping no session secret anywhere on disk. Each session has its own CSRF
token, which every state-changing request must carry (a form field or a header); the
sign-in form, which has no session yet, uses a token in a cookie of its own (double submit).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

from orderlog.domain.account import Role

SESSION_COOKIE = "orderlog_session"
SIGNIN_COOKIE = "orderlog_signin"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
IDLE_SECONDS = 30 * 60
LIFETIME_SECONDS = 12 * 60 * 60

FREE_FAILURES = 5
"""Wrong passwords allowed before each further attempt must wait."""
LONGEST_WAIT_SECONDS = 15 * 60

HEADERS = {
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
"""Scripts and styles from the console itself only (so injected markup cannot run), never
framed, nothing cached (pages hold personal data for some roles)."""


@dataclass
class Session:
    token: str
    name: str
    role: Role
    csrf: str
    started: float
    seen: float
    messages: list[str] = field(default_factory=list)
    """Said once on the next page (after a redirect): what an action did."""
    acted: bool = False
    """It has changed the views since its last read of them: its next read waits for them."""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    """Held while its messages change: a session's pages may be asked for at once (two tabs)."""


def _expired(session: Session, now: float) -> bool:
    return now - session.seen > IDLE_SECONDS or now - session.started > LIFETIME_SECONDS


@dataclass
class Sessions:
    """The signed-in sessions of this process, by token."""

    clock: object = time.monotonic
    _by_token: dict[str, Session] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, name: str, role: Role) -> Session:
        """A new session; those that have run out are forgotten here (nobody asks for them again)."""
        now = self._now()
        session = Session(secrets.token_urlsafe(32), name, role, secrets.token_urlsafe(32), now, now)
        with self._lock:
            for token in [token for token, old in self._by_token.items() if _expired(old, now)]:
                del self._by_token[token]
            self._by_token[session.token] = session
        return session

    def find(self, token: str | None) -> Session | None:
        """The live session `token` names (its idle time restarted), or None."""
        if not token:
            return None
        now = self._now()
        with self._lock:
            session = self._by_token.get(token)
            if session is None:
                return None
            if _expired(session, now):
                del self._by_token[token]
                return None
            session.seen = now
            return session

    def end(self, token: str) -> None:
        with self._lock:
            self._by_token.pop(token, None)

    def _now(self) -> float:
        return self.clock()  # type: ignore[operator,no-any-return]


FORGET_SECONDS = 2 * LONGEST_WAIT_SECONDS
"""A name or address with no attempt for this long starts again from nothing."""
REMEMBERED = 100_000
"""Names and addresses the throttle keeps at most (the oldest forgotten first)."""


@dataclass
class Throttle:
    """Slows down guessing: after FREE_FAILURES wrong passwords for one name, or from one
    address, each further attempt waits twice as long as the last (1 s, 2 s, ... 15 min),
    answered at once with 429 and the wait, so an attacker gets no more tries and the
    console no more work. An attempt is counted when it is let in, before the password is
    checked, so attempts sent all at once are counted as they come, not after the slow
    hash; a correct password clears the name's count and takes back its own from the
    address's. After FORGET_SECONDS without an attempt, a name or address is forgotten.

    The price: anyone can keep a name waiting by failing for it once per wait. The account
    is never locked, and signing in from an address with no failures is not slowed for
    other names.
    """

    clock: object = time.monotonic
    _failures: dict[str, tuple[int, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self, keys: list[str]) -> float:
        """0 if an attempt for `keys` may go ahead now (and it is counted against them),
        else the seconds before one may."""
        now = self._now()
        with self._lock:
            wait = max((self._wait(key, now) for key in keys), default=0.0)
            if wait > 0:
                return wait
            for key in keys:
                count, _last = self._current(key, now)
                self._failures.pop(key, None)  # moved to the end: the most recent last
                self._failures[key] = (count + 1, now)
            while len(self._failures) > REMEMBERED:
                self._failures.pop(next(iter(self._failures)))
            return 0.0

    def succeeded(self, name_key: str, address_key: str) -> None:
        with self._lock:
            self._failures.pop(name_key, None)
            count, last = self._failures.get(address_key, (0, 0.0))
            if count > 1:
                self._failures[address_key] = (count - 1, last)
            else:
                self._failures.pop(address_key, None)

    def _current(self, key: str, now: float) -> tuple[int, float]:
        count, last = self._failures.get(key, (0, now))
        return (0, now) if now - last > FORGET_SECONDS else (count, last)

    def _wait(self, key: str, now: float) -> float:
        count, last = self._current(key, now)
        if count < FREE_FAILURES:
            return 0.0
        delay = min(2.0 ** (count - FREE_FAILURES), LONGEST_WAIT_SECONDS)
        return max(0.0, last + delay - now)

    def _now(self) -> float:
        return self.clock()  # type: ignore[operator,no-any-return]


def same_token(expected: str | None, given: str | None) -> bool:
    """Whether a CSRF token matches, compared in constant time."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())  # bytes: any text compares, none raises


def new_token() -> str:
    return secrets.token_urlsafe(32)
