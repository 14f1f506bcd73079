"""The public sign-up pages: ``/subscribe`` and what its messages link to.

- ``/subscribe`` — a form: email or phone, language, components (if the plan has them),
  and where the plan offers it, "Also send me alerts on WhatsApp" (+ before SMS).
  Sending it asks for a subscription through the same service as the API
  (``SignupService.request``); the page then says a message to confirm is on its way,
  the same words whether the address was subscribed already or not.
- ``/subscribe/confirm/<token>`` — the emailed link. ``GET`` only shows a button (mail
  scanners follow links); ``POST`` confirms.
- ``/subscribe/code`` — a phone number and the texted code.

Forms carry Flask-WTF's CSRF token; the pages load one stylesheet and no script, as the
Content-Security-Policy requires (web/headers.py).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, render_template, request
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from marshmallow import ValidationError
from wtforms import BooleanField, SelectField, StringField
from wtforms.validators import Length, Optional

from broadcaster.domain.component_choice import known_components
from broadcaster.domain.signups import SelfSubscriptionOff, TooManySignups, read_link_token
from broadcaster.infra import metrics
from broadcaster.rendering.i18n import gettext_for
from broadcaster.services import Services, services
from broadcaster.web.admin.forms import CheckboxesField, messages
from broadcaster.web.auth import client_ip
from broadcaster.web.public import locale_of

bp = Blueprint("subscribe", __name__)


class SignupForm(FlaskForm):
    email = StringField(validators=[Optional(), Length(max=320)])
    phone = StringField(validators=[Optional(), Length(max=40)])
    locale = SelectField(validate_choice=False)
    components = CheckboxesField(validate_choice=False)
    first = BooleanField()  # "contact me here first": heads their channel order
    # An explicit, unticked-by-default consent: WhatsApp requires one (docs/whatsapp.md).
    whatsapp = BooleanField()
    whatsapp_first = BooleanField()  # WhatsApp before SMS in their order


class CodeForm(FlaskForm):
    phone = StringField(validators=[Length(min=1, max=40)])
    code = StringField(validators=[Length(min=1, max=12)])


def _components(svc: Services, locale: str) -> list[tuple[str, str]]:
    """(id, name in ``locale``) of the plan's components, for the checkboxes."""
    out = []
    for component in getattr(svc.plan, "components", None) or ():
        name_for = getattr(component, "name_for", None)
        name = name_for(locale, svc.plan.default_locale) if name_for else str(component)
        out.append((getattr(component, "id", str(component)), name))
    return out or [(c, c) for c in known_components(svc.plan)]


def _page(template: str, svc: Services, locale: str, status: int = 200, **ctx: Any):
    return render_template(
        template,
        _=gettext_for(locale),
        locale=locale,
        organisation=svc.plan.organisation,
        offered=svc.plan.subscriptions is not None,
        channels=svc.plan.subscriptions.channels if svc.plan.subscriptions else (),
        **ctx,
    ), status


@bp.route("/subscribe", methods=["GET", "POST"])
def signup() -> ResponseReturnValue:
    """The sign-up form, and what sending it did."""
    svc = services()
    locale = request.form.get("locale") or locale_of(svc)
    if locale not in svc.plan.locales:
        locale = locale_of(svc)
    _ = gettext_for(locale)
    if svc.plan.subscriptions is None:
        return _page("public/subscribe.html", svc, locale, 404, form=None, state="off")
    form = SignupForm()
    form.locale.choices = list(svc.plan.locales)
    form.components.choices = _components(svc, locale)
    errors: list[str] = []
    status = 200
    if request.method == "POST":
        if not form.validate():
            status = 400 if form.csrf_token.errors else 422
            errors = messages(form.errors)
        else:
            body = {
                "email": form.email.data or None,
                "phone": form.phone.data or None,
                "locale": locale,
                "components": form.components.data or [],
                "first": bool(form.first.data),
            }
            if form.whatsapp.data or form.whatsapp_first.data:
                # Only when ticked: the service refuses them without a phone or an offer.
                body["whatsapp"] = bool(form.whatsapp.data)
                body["whatsapp_first"] = bool(form.whatsapp_first.data)
            try:
                svc.signups.request(body, client_ip())
            except SelfSubscriptionOff:  # pragma: no cover - checked above
                status = 404
            except ValidationError as exc:
                status, errors = 422, messages(exc.messages)
            except TooManySignups:
                status, errors = 429, [_("Too many sign-ups: please try again later.")]
            else:
                metrics.count(svc.redis, "signups", "request", "accepted")
                return _page("public/subscribe.html", svc, locale, 202, form=None, state="sent")
    return _page(
        "public/subscribe.html", svc, locale, status, form=form, state="form", errors=errors
    )


@bp.get("/subscribe/confirm/<token>")
def confirm_page(token: str) -> ResponseReturnValue:
    """Ask for the click that confirms; changes nothing (mail scanners open links)."""
    svc = services()
    secret = str(current_app.config["SECRET_KEY"])
    signup_id = read_link_token(secret, token, svc.signups.ttl) if svc.plan.subscriptions else None
    signup = svc.signups.get(signup_id) if signup_id else None
    if signup is None:  # forged, expired, or confirmed already
        return _page("public/subscribe_confirm.html", svc, locale_of(svc), 400, state="invalid")
    # In the language they chose when they asked, whatever this browser prefers.
    return _page("public/subscribe_confirm.html", svc, signup.locale, state="confirm")


@bp.post("/subscribe/confirm/<token>")
def confirm(token: str) -> ResponseReturnValue:
    """Confirm an email sign-up by its signed link (once; a second click finds it done)."""
    svc = services()
    locale = locale_of(svc)
    if svc.plan.subscriptions is None:
        return _page("public/subscribe_confirm.html", svc, locale, 404, state="invalid")
    subscriber_id = svc.signups.confirm_link(str(current_app.config["SECRET_KEY"]), token)
    if subscriber_id is None:
        return _page("public/subscribe_confirm.html", svc, locale, 400, state="invalid")
    person = svc.subscribers.get(subscriber_id) or {}
    metrics.count(svc.redis, "signups", "confirmed", "link")
    return _page("public/subscribe_confirm.html", svc, person.get("locale") or locale, state="done")


@bp.route("/subscribe/code", methods=["GET", "POST"])
def code() -> ResponseReturnValue:
    """Confirm a phone sign-up with the texted code."""
    svc = services()
    locale = locale_of(svc)
    _ = gettext_for(locale)
    if svc.plan.subscriptions is None:
        return _page("public/subscribe.html", svc, locale, 404, form=None, state="off")
    form = CodeForm()
    errors: list[str] = []
    status = 200
    if request.method == "POST":
        if not form.validate():
            status = 400 if form.csrf_token.errors else 422
            errors = messages(form.errors)
        else:
            try:
                svc.signups.count_caller(client_ip())
            except TooManySignups:
                status, errors = 429, [_("Too many attempts: please try again later.")]
            else:
                subscriber_id = svc.signups.confirm_code(form.phone.data, form.code.data)
                if subscriber_id is not None:
                    metrics.count(svc.redis, "signups", "confirmed", "code")
                    return _page("public/subscribe_confirm.html", svc, locale, state="done")
                status = 404
                errors = [_("This code is wrong or has expired.")]
    return _page("public/subscribe_code.html", svc, locale, status, form=form, errors=errors)
