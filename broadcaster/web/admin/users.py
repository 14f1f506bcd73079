"""``/admin/users``: who may sign in, and a form for admins to add people."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Length

from broadcaster.domain.users import MIN_PASSWORD, USER_ROLES, UserError, all_users, create_user
from broadcaster.services import services
from broadcaster.web.admin.blueprint import bp
from broadcaster.web.admin.forms import CSRF_FAILED, INVALID, add_error, csrf_failed
from broadcaster.web.admin.guard import principal, signed_in
from broadcaster.web.auth import client_ip


class UserForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired("Who is it? Their email signs them in.")])
    name = StringField("Name", validators=[Length(max=200)])
    role = SelectField("Role", choices=list(USER_ROLES), default="helpdesk")
    password = PasswordField(
        "First password",
        validators=[
            DataRequired("Give them a first password."),
            Length(min=MIN_PASSWORD, message=f"At least {MIN_PASSWORD} characters."),
        ],
    )


@bp.route("/users", methods=["GET", "POST"])
@signed_in("users")
def users() -> ResponseReturnValue:
    """Everyone who can sign in; admins add people here."""
    r = services().redis
    form = UserForm()
    status = 200
    if request.method == "POST":
        if not form.validate():
            status = CSRF_FAILED if csrf_failed(form) else INVALID
        else:
            try:
                user = create_user(
                    r,
                    form.email.data,
                    form.name.data or "",
                    form.role.data,
                    form.password.data,
                    created_by=principal().person,
                    ip=client_ip(),
                )
            except UserError as exc:
                # The message starts with the field it is about ("email: …").
                field, _, message = str(exc).partition(": ")
                add_error(form, field if field in ("email", "role", "password") else "", message)
                status = INVALID
            else:
                flash(f"Added {user.name} ({user.email}) as {user.role}.")
                return redirect(url_for("admin.users"), 303)
    return render_template(
        "admin/users.html", form=form, people=all_users(r), min_password=MIN_PASSWORD
    ), status
