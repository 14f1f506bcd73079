"""Form pieces the admin pages share: checkbox lists and error messages per field."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import SelectMultipleField, TextAreaField
from wtforms.validators import DataRequired, Length
from wtforms.widgets import CheckboxInput, ListWidget

# Status of a re-rendered form: a stale or missing CSRF token is a bad request, bad input
# is unprocessable — the same codes the API uses.
CSRF_FAILED = 400
INVALID = 422


class CheckboxesField(SelectMultipleField):
    """Several choices as checkboxes (a multi-select is clumsy on a phone)."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class WithdrawForm(FlaskForm):
    """Withdraw a published announcement (incident page): the reason is public."""

    reason = TextAreaField(
        "Reason (shown to the public)",
        validators=[
            DataRequired("Say why it is withdrawn: the public reads the reason."),
            Length(max=2000),
        ],
    )


def messages(errors: Any) -> list[str]:
    """Every message in a marshmallow error structure (lists, nested dicts), flattened."""
    if isinstance(errors, str):
        return [errors]
    if isinstance(errors, dict):
        return [m for value in errors.values() for m in messages(value)]
    if isinstance(errors, list | tuple):
        return [m for value in errors for m in messages(value)]
    return [str(errors)]


def add_error(form: FlaskForm, name: str, message: str) -> None:
    """Attach ``message`` to the field ``name`` (or to the form as a whole)."""
    field = getattr(form, name, None)
    if field is None or not hasattr(field, "errors"):
        form.form_errors.append(message)
        return
    if not isinstance(field.errors, list):  # WTForms keeps a tuple until validation
        field.errors = list(field.errors)
    field.errors.append(message)


def csrf_failed(form: FlaskForm) -> bool:
    """True when the form was refused for its CSRF token (not for what was typed)."""
    return bool(form.meta.csrf and form.csrf_token.errors)
