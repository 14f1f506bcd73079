"""Sign in and out of the admin pages, rate limited per account and per IP."""

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


@bp.route("/signin", methods=["GET", "POST"])
def signin() -> ResponseReturnValue:
    """The sign-in form; 429 while an account or address is locked out."""
    form = SignInForm()
    status = 200
    if form.validate_on_submit():
        r, ip = services().redis, client_ip()
        email = form.email.data.strip().lower()
        wait = signin_limit.locked_for(r, email, ip)
        if wait:
            audit.record(r, email, "signin.throttled", ip=ip)
            form.password.errors.append(
                f"Too many failed attempts. Try again in {max(1, (wait + 59) // 60)} minutes."
            )
            status = 429
        elif (user := authenticate(r, email, form.password.data)) is None:
            signin_limit.failed(r, email, ip)
            audit.record(r, email, "signin.failed", ip=ip)
            form.password.errors.append("Wrong email or password.")
            status = 401
        else:
            signin_limit.succeeded(r, user.email)
            sessions.start(r, user.email)
            audit.record(r, user.email, "signin.succeeded", ip=ip)
            return redirect(_safe_next(request.args.get("next")))
    elif request.method == "POST":
        status = 400  # e.g. the CSRF token is missing or stale: the form says which
    return render_template("admin/signin.html", form=form), status


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
