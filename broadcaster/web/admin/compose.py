"""``/admin/compose``: write an announcement, see its live preview, submit it.

What the form sends is checked by the API's own schema (``AnnouncementIn``), so the page
and the API accept and refuse exactly the same announcements.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from marshmallow import ValidationError
from wtforms import BooleanField, SelectField, StringField, TextAreaField

from broadcaster.domain.announcement_service import AnnouncementService
from broadcaster.domain.errors import Conflict, Invalid
from broadcaster.domain.incidents import SEVERITIES, STATUSES
from broadcaster.domain.plan import Plan
from broadcaster.rendering.clock import zone_name
from broadcaster.services import services
from broadcaster.web.admin import prefill, promise_input
from broadcaster.web.admin.blueprint import bp
from broadcaster.web.admin.forms import (
    CSRF_FAILED,
    INVALID,
    CheckboxesField,
    add_error,
    csrf_failed,
    messages,
)
from broadcaster.web.admin.guard import principal, signed_in
from broadcaster.web.api.schemas import AnnouncementIn
from broadcaster.web.auth import client_ip
from channels import CHANNELS

RECENT_INCIDENTS = 50
BYPASS_MIN = 5  # the schema's minimum, said up front on the page


class ComposeForm(FlaskForm):
    """The fixed fields; translation fields are added per plan locale (``form_for``)."""

    title = StringField("Title")
    body = TextAreaField("Message")
    # validate_choice=False throughout: the API's schema judges every value, in its words.
    severity = SelectField(
        "Severity", choices=list(SEVERITIES), default="minor", validate_choice=False
    )
    status = SelectField(
        "Status", choices=list(STATUSES), default="investigating", validate_choice=False
    )
    audiences = CheckboxesField("Audiences", validate_choice=False)
    channels = CheckboxesField("Channels", choices=list(CHANNELS), validate_choice=False)
    # The store checks these exist (and fit together); choices only help people pick.
    incident_id = SelectField("Follow-up of", validate_choice=False)
    corrects = SelectField("Corrects", validate_choice=False)
    # A wall-clock time in the plan's zone (promise_input.py); the service checks its range.
    next_update_at = StringField("Next update by")
    bypass = BooleanField("Emergency bypass: publish without a second person")
    bypass_reason = TextAreaField("Reason for the bypass")


_FORMS: dict[tuple[str, ...], type[ComposeForm]] = {}


def form_for(plan: Plan) -> type[ComposeForm]:
    """The compose form with a title and body field per translated locale of the plan."""
    locales = tuple(loc for loc in plan.locales if loc != plan.default_locale)
    if locales not in _FORMS:
        extra: dict[str, Any] = {}
        for locale in locales:
            extra[f"tr_{locale}_title"] = StringField(f"Title ({locale})")
            extra[f"tr_{locale}_body"] = TextAreaField(f"Message ({locale})")
        _FORMS[locales] = type("ComposeFormWithLocales", (ComposeForm,), extra)
    return _FORMS[locales]


def _choices(store: AnnouncementService) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(open incidents, published announcements of those) as select choices."""
    _, recent = store.incidents(0, RECENT_INCIDENTS)
    incidents = [("", "— a new incident —")]
    corrects = [("", "— nothing —")]
    for incident in recent:
        if incident.get("resolved_at"):
            continue
        incidents.append(
            (incident["id"], f"{incident['title']} ({incident['severity']}, {incident['status']})")
        )
        for ann in store.timeline(incident["id"]):
            if ann.published:
                corrects.append((ann.id, f"{incident['title']} › {ann.title}"))
    return incidents, corrects


def _payload(form: ComposeForm, plan: Plan) -> dict[str, Any]:
    """The API request body the form describes (blank fields left out, as a client would)."""
    data: dict[str, Any] = {
        "severity": form.severity.data,
        "status": form.status.data,
        "audiences": form.audiences.data or [],
        "channels": form.channels.data or [],
    }
    for name in ("title", "body", "incident_id", "corrects"):
        value = (getattr(form, name).data or "").strip()
        if value:
            data[name] = value
    translations = {}
    for locale in plan.locales:
        title = getattr(form, f"tr_{locale}_title", None)
        body = getattr(form, f"tr_{locale}_body", None)
        if title is None or body is None:
            continue
        text = {k: v for k, v in (("title", title.data), ("body", body.data)) if (v or "").strip()}
        if text:  # half a translation is an error the schema names; none at all is fine
            translations[locale] = text
    if translations:
        data["translations"] = translations
    if form.bypass.data:
        data["bypass_reason"] = (form.bypass_reason.data or "").strip()
    return data


# The schema's wording is for API clients; people get plainer words for the common cases.
PLAINER = {
    "Missing data for required field.": "Required.",
    "Shorter than minimum length 1.": "Choose at least one.",
    "must lie between now and 30 days ahead": "Pick a time between now and 30 days ahead.",
}


def _show_errors(form: ComposeForm, errors: dict[str, Any]) -> None:
    """Put each schema error next to the field it is about."""
    for key, value in errors.items():
        if key == "translations" and isinstance(value, dict):
            for locale, inner in value.items():
                inner = inner.get("value", inner) if isinstance(inner, dict) else inner
                if isinstance(inner, dict):
                    for part, msgs in inner.items():
                        for message in messages(msgs):
                            add_error(form, f"tr_{locale}_{part}", PLAINER.get(message, message))
                else:
                    for message in messages(inner):
                        add_error(form, f"tr_{locale}_title", message)
            continue
        if key.startswith("translations."):  # "translations.nl.body" from the plan check
            _, locale, part = key.split(".", 2)
            name = f"tr_{locale}_{part}"
        else:
            name = key
        for message in messages(value):
            add_error(form, name, PLAINER.get(message, message))


@bp.route("/compose", methods=["GET", "POST"])
@signed_in("draft")
def compose() -> ResponseReturnValue:
    """The compose form; on submit, store the announcement and go to its incident."""
    svc = services()
    plan, store, who = svc.plan, svc.announcements, principal()
    form = form_for(plan)()
    # Said where the choice is made: an internal audience keeps the announcement inside.
    form.audiences.choices = [
        (name, f"{name} (internal: never public)" if audience.internal else name)
        for name, audience in plan.audiences.items()
    ]
    form.incident_id.choices, form.corrects.choices = _choices(store)
    status = 200
    if request.method == "GET":
        form.incident_id.data = request.args.get("incident_id", "")
        form.corrects.data = request.args.get("corrects", "")
        form.channels.data = list(plan.channels_by_severity.get(form.severity.data, ()))
        start, incident = prefill.source(store, form.incident_id.data, form.corrects.data)
        if start is not None and incident is not None:
            prefill.fill(form, start, plan)
            form.incident_id.data = incident["id"]
            # Resolved (or older than the list): still the one this update belongs to.
            if incident["id"] not in dict(form.incident_id.choices):
                form.incident_id.choices.append((incident["id"], incident["title"]))
            if form.corrects.data and start.id not in dict(form.corrects.choices):
                form.corrects.choices.append((start.id, f"{incident['title']} › {start.title}"))
        # A new promise from now, also for an update pre-filled from the last one.
        form.next_update_at.data = promise_input.proposed(plan)
    elif not form.validate():
        status = CSRF_FAILED if csrf_failed(form) else INVALID
    else:
        if form.bypass.data and not who.may("bypass"):
            abort(403, f"Your role ({who.role}) may not publish without approval.")
        data = _payload(form, plan)
        loaded: dict[str, Any] | None
        try:
            loaded = AnnouncementIn().load(data)
        except ValidationError as exc:
            _show_errors(form, exc.messages if isinstance(exc.messages, dict) else {})
            loaded = None
        promise = (form.next_update_at.data or "").strip()
        if promise:
            try:
                when = promise_input.parse(promise, plan.timezone)
            except ValueError as exc:
                add_error(form, "next_update_at", str(exc))
                loaded = None
            else:
                if loaded is not None:
                    loaded["next_update_at"] = when
        if not data["channels"]:  # the API falls back to the plan; a person chose none
            add_error(form, "channels", "Choose at least one channel.")
            loaded = None
        if loaded is None:
            status = INVALID
        else:
            try:
                announcement = store.create(loaded, who, ip=client_ip())
            except Invalid as exc:
                _show_errors(form, exc.errors)
                status = INVALID
            except Conflict as exc:
                add_error(form, "corrects", str(exc))
                status = 409
            else:
                if announcement.published:
                    flash(f"Published “{announcement.title}”.")
                else:
                    flash(f"“{announcement.title}” is waiting for approval by a second person.")
                return redirect(
                    url_for("admin.incident", incident_id=announcement.incident_id), 303
                )
    return render_template(
        "admin/compose.html",
        form=form,
        plan=plan,
        translations=[
            (loc, getattr(form, f"tr_{loc}_title"), getattr(form, f"tr_{loc}_body"))
            for loc in plan.locales
            if loc != plan.default_locale
        ],
        channel_defaults={k: list(v) for k, v in plan.channels_by_severity.items()},
        needs_approval=sorted(plan.approval_required),
        internal_audiences=[name for name, a in plan.audiences.items() if a.internal],
        may_bypass=who.may("bypass"),
        may_publish=who.may("publish"),
        bypass_min=BYPASS_MIN,
        zone=zone_name("en", plan.timezone),
        promise_minutes=plan.promise_interval // 60,
    ), status
