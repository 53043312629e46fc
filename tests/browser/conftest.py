"""Fixtures for the console's browser tests: Debian's Chromium driven by Playwright, and one
console for the whole session, serving a demo store with an account per role and a checkpoint,
set up with the `orderlog` command as a person would (`demo`, `users add`, `audit checkpoint`).

Without Chromium or Playwright (or when it does not start) the browser tests skip, saying in one
line what is missing and how to install it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

CHROMIUM = os.environ.get("ORDERLOG_TEST_CHROMIUM", "/usr/bin/chromium")
"""Debian's Chromium (Playwright cannot download its own browsers here); else `chromium` on PATH."""
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""Root in a container, on a closed network: without the background-networking flags
Chromium's own connections are refused and page loads stall behind them."""

DEMO_ORDERS = 300
"""Enough for overdue exceptions about orders and SKUs in four departments, oversold SKUs, and cancellations
in the first two days; the demo takes about a second."""

PASSWORD = "browser-tests-only-password"
ADMIN, OPERATIONS, ANALYST, CUSTOMER_SERVICE = "ada", "olga", "ann", "chen"
ROLES = {ADMIN: "admin", OPERATIONS: "operations", ANALYST: "analyst", CUSTOMER_SERVICE: "customer_service"}

SCREENSHOTS = Path(os.environ.get("ORDERLOG_SCREENSHOTS") or Path(tempfile.gettempdir()) / "orderlog-screenshots")
"""Where the journeys save their pages: `make screenshots` points it at docs/screenshots, for
the README; a plain test run leaves the checkout as it found it."""
VIEWPORT = {"width": 1280, "height": 800}
TIMEOUT_MS = 10_000
"""Every wait in a page (a locator, a navigation, a download): fail in seconds, not Playwright's 30."""


@dataclass(frozen=True)
class Console:
    url: str
    home: Path
    """The console's working directory: the store, its views, the demo's signing key pair."""

    @property
    def public_key(self) -> Path:
        return self.home / "orderlog-demo.pub.pem"


_CHROMIUM: dict[str, Any] = {}
"""The session's Playwright and Chromium, started once (by the first module that asks), or why not."""


def start_chromium() -> str | None:
    """Starts Playwright and headless Chromium for the session, once; None, or in one line what is
    missing and how to install it. A browser test module calls this as it is imported, and skips
    itself with that line (a fixture's skip is reported once per test); `chromium` hands it out."""
    if "why_not" not in _CHROMIUM:
        _CHROMIUM["why_not"] = _start()
    return _CHROMIUM["why_not"]  # type: ignore[no-any-return]


def _start() -> str | None:
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError as error:
        return f"Playwright cannot be imported ({error}): pip install -e '.[test]', and apt-get install chromium"
    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if executable is None:
        return f"no Chromium at {CHROMIUM} or on PATH: apt-get install chromium"
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
    except Error as error:
        playwright.stop()
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        return f"Chromium at {executable} did not start ({first_line}): apt-get install chromium"
    _CHROMIUM.update(playwright=playwright, browser=browser)
    return None


def pytest_sessionfinish() -> None:
    """Chromium closes with the session, whether or not any browser test ran (say, all deselected)."""
    if "browser" in _CHROMIUM:
        _CHROMIUM.pop("browser").close()
        _CHROMIUM.pop("playwright").stop()


@pytest.fixture(scope="session")
def chromium() -> Browser:
    """Chromium, headless, for the whole session."""
    why_not = start_chromium()
    if why_not:
        pytest.skip(why_not)
    return _CHROMIUM["browser"]  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def console(chromium: Browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """`orderlog console` on a free port, serving a fresh demo store; stopped at the end of the session.

    (It asks for the browser first, so that a missing Chromium skips before any store is built.)
    """
    home = tmp_path_factory.mktemp("console")
    env = {name: value for name, value in os.environ.items() if not name.startswith("ORDERLOG_")}
    _orderlog(home, env, "demo", "--orders", str(DEMO_ORDERS))
    for name, role in ROLES.items():
        _orderlog(home, env, "users", "add", name, "--role", role, "--password-stdin", stdin=PASSWORD + "\n")
    _orderlog(home, env, "audit", "checkpoint", "--signing-key", "orderlog-demo.pem", "--out", "checkpoint.json")

    port = _free_port()
    log_path = home / "console.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "orderlog", "console", "--host", "127.0.0.1", "--port", str(port)],
            cwd=home,
            env={**env, "ORDERLOG_SIGNING_KEY": str(home / "orderlog-demo.pem")},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_until_it_answers(f"{url}/signin", process, log_path)
            yield Console(url, home)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def sign_in(chromium: Browser, console: Console) -> Iterator[Callable[[str], Page]]:
    """`sign_in(name)`: a page in a browser context of its own (its own cookies), signed in as `name`."""
    contexts: list[BrowserContext] = []

    def signed_in(name: str) -> Page:
        context = new_context(chromium)
        contexts.append(context)
        page = context.new_page()
        page.goto(f"{console.url}/signin")
        fill_in_sign_in(page, name)
        page.wait_for_url(f"{console.url}/exceptions")
        return page

    yield signed_in
    for context in contexts:
        context.close()


def new_context(chromium: Browser) -> BrowserContext:
    """A browser context of its own (cookies, downloads), 1280x800, failing in seconds."""
    context = chromium.new_context(viewport=VIEWPORT, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    return context


def fill_in_sign_in(page: Page, name: str) -> None:
    """On the sign-in form: `name`, its password, Sign in; checks the header names the person."""
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/signin'] button[type=submit]")
    who = page.locator("header.top .who")
    who.wait_for()
    assert who.inner_text().startswith(f"{name} "), f"signed in as {name}, the header says {who.inner_text()!r}"


def screenshot(page: Page, name: str) -> None:
    """SCREENSHOTS/NAME.png: the whole page as it is now (overwritten on every run)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


def _orderlog(home: Path, env: dict[str, str], *args: str, stdin: str | None = None) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "orderlog", *args],
        cwd=home,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"orderlog {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_it_answers(url: str, process: subprocess.Popen[bytes], log: Path, seconds: float = 30) -> None:
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"orderlog console exited {process.returncode}: {log.read_text(errors='replace').strip()}")
        try:
            with direct.open(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    pytest.fail(f"orderlog console did not answer {url} within {seconds:.0f} s: {log.read_text(errors='replace')}")
