"""Sign in and out of the admin pages, throttled per (account, address), per address and,
with a short delay only, per account (``signin_limit``)."""

from __future__ import annotations

import unicodedata
from urllib.parse import urlsplit

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired

from broadcaster.domain import audit
from broadcaster.domain.users import authenticate
from broadcaster.services import services
from broadcaster.web import sessions, signin_limit
from broadcaster.web.admin.blueprint import bp
from broadcaster.web.auth import client_ip


class SignInForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])


def _safe_next(target: str | None) -> str:
    r"""Only a path on this site: never bounce a fresh session to somebody else's.

    No control characters (CR/LF in a Location header was a 500 after signing in; a tab
    is dropped by browsers, so ``/\t/evil.example`` means ``//evil.example``) and no
    backslash (browsers read ``/\evil.example`` as ``//evil.example``); otherwise /admin/.
    """
    if (
        target
        and target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
        and not any(unicodedata.category(ch)[0] in "CZ" and ch != " " for ch in target)
    ):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for("admin.home")


# What a refused attempt is told, by the throttle's scope.
WAIT_MESSAGES = {
    "address": "Too many failed sign-ins from your address. Try again in {minutes} minutes.",
    "account_address": (
        "Too many failed attempts for this account from your address. "
        "Try again in {minutes} minutes."
    ),
    "account": (
        "This account had failed sign-ins a moment ago, so it is slowed down. "
        "Try again in {seconds} seconds."
    ),
}


def _refused(refusal: signin_limit.Refusal) -> str:
    minutes = max(1, (refusal.retry_after + 59) // 60)
    return WAIT_MESSAGES[refusal.scope].format(minutes=minutes, seconds=refusal.retry_after)


@bp.route("/signin", methods=["GET", "POST"])
def signin() -> ResponseReturnValue:
    """The sign-in form; 429 with Retry-After while an attempt must wait."""
    form = SignInForm()
    status, headers = 200, {}
    if form.validate_on_submit():
        svc, ip = services(), client_ip()
        r, limits = svc.redis, signin_limit.Limits.from_config(svc.config)
        email = form.email.data.strip().lower()
        refusal = signin_limit.check(r, email, ip, limits)
        if refusal:
            if refusal.first:  # once per wait, so hammering cannot flood the log
                audit.record(
                    r,
                    email,
                    "signin.throttled",
                    ip=ip,
                    scope=refusal.scope,
                    retry_after=refusal.retry_after,
                )
            form.password.errors.append(_refused(refusal))
            status, headers = 429, {"Retry-After": str(refusal.retry_after)}
        elif (user := authenticate(r, email, form.password.data)) is None:
            delay = signin_limit.failed(r, email, ip, limits)
            audit.record(r, email, "signin.failed", ip=ip, **({"delay": delay} if delay else {}))
            form.password.errors.append("Wrong email or password.")
            status = 401
        else:
            signin_limit.succeeded(r, user.email, ip)
            sessions.start(r, user.email)
            audit.record(r, user.email, "signin.succeeded", ip=ip)
            return redirect(_safe_next(request.args.get("next")))
    elif request.method == "POST":
        status = 400  # e.g. the CSRF token is missing or stale: the form says which
    return render_template("admin/signin.html", form=form), status, headers


class SignOutForm(FlaskForm):
    pass


@bp.post("/signout")
def signout() -> ResponseReturnValue:
    """End the session (a POST with the CSRF token, so no other site can sign you out)."""
    r = services().redis
    if SignOutForm().validate_on_submit():
        email = sessions.current_email(r)
        sessions.end(r)
        if email:
            audit.record(r, email, "signout", ip=client_ip())
        flash("Signed out.")
    return redirect(url_for("admin.signin"))
