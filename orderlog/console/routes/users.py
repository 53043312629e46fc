"""Accounts, for admins: who may sign in in which role; add one, disable one (recorded as events)."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from orderlog.accounts import AccountError, account_row, add_account, disable_account, list_accounts
from orderlog.console.guard import flash, guarded
from orderlog.console.roles import Permission
from orderlog.domain.account import Role

router = APIRouter()


@guarded(router, "GET", "/users", Permission.MANAGE_USERS)
def users_page(request: Request) -> Response:
    console = request.app.state.console
    rows = [account_row(account) for account in list_accounts(console.service)]
    return console.page(request, "users.html", accounts=rows, roles=list(Role))


@guarded(router, "POST", "/users/add", Permission.MANAGE_USERS)
def add_user(
    request: Request,
    name: str = Form(max_length=200),
    role: str = Form(max_length=50),
    password: str = Form(max_length=4096),
) -> Response:
    console = request.app.state.console
    try:
        with console.acting():
            add_account(console.service, name.strip(), role, password, request.state.session.name)
        flash(request, f"Account {name.strip()} added ({role}).")
    except AccountError as error:
        flash(request, str(error))
    return RedirectResponse("/users", status_code=303)


@guarded(router, "POST", "/users/disable", Permission.MANAGE_USERS)
def disable_user(
    request: Request, name: str = Form(max_length=200), reason: str = Form(default="", max_length=2000)
) -> Response:
    console = request.app.state.console
    try:
        with console.acting():
            disable_account(console.service, name.strip(), reason.strip(), request.state.session.name)
        flash(request, f"Account {name.strip()} disabled: it can no longer sign in.")
    except AccountError as error:
        flash(request, str(error))
    return RedirectResponse("/users", status_code=303)
