"""One incoming subscriber row, validated: at least one contact, known audiences, known
channels in order, a language of the plan, and a WhatsApp opt-in with its date and source.

``SubscriberRow.load_row`` checks the common row without marshmallow's machinery (most of
an import's time) and gives the same answer as ``load`` (tests/test_import.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from email_validator import EmailNotValidError, validate_email
from marshmallow import Schema, ValidationError, fields, post_load, validates_schema

from broadcaster.domain import whatsapp_consent
from broadcaster.domain.contact_checks import plain_email
from broadcaster.domain.phone_numbers import PhonePolicy
from broadcaster.domain.plan import Plan
from channels import PERSONAL


def normalise_email(value: str) -> str:
    """Normalised email address, or ValidationError with the reason."""
    quick = plain_email(value)  # the common address, without the library's machinery
    if quick is not None:
        return quick
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValidationError(str(exc)) from exc


_SCALARS = ("external_id", "email", "phone", "locale")
_ROW_FIELDS = frozenset((*_SCALARS, "audiences", "channels"))
_PERSONAL = frozenset(PERSONAL)


class SubscriberRow(Schema):
    """One incoming subscriber: at least one contact, known audiences, known channels."""

    external_id = fields.String(load_default=None, validate=lambda s: 0 < len(s) <= 200)
    email = fields.String(load_default=None)
    phone = fields.String(load_default=None)
    locale = fields.String(load_default=None)
    audiences = fields.List(fields.String(), required=True)
    channels = fields.List(fields.String(), load_default=None)
    # When and how they agreed to WhatsApp messages (domain/whatsapp_consent.py).
    whatsapp_opt_in_at = fields.Raw(load_default=None)
    whatsapp_opt_in_source = fields.Raw(load_default=None)

    def __init__(self, plan: Plan, senders: Iterable[str] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        # ``senders``: our own numbers (phone_numbers.sender_numbers), never a subscriber's.
        self.phones = PhonePolicy(plan.default_region, plan.sms_countries, frozenset(senders))

    @validates_schema
    def _check(self, data: dict[str, Any], **_: Any) -> None:
        errors: dict[str, list[str]] = {}
        if not data.get("email") and not data.get("phone"):
            errors["_schema"] = ["give at least one contact: email or phone"]
        for name, normalise in (
            ("email", normalise_email),
            ("phone", self.phones.check),
        ):
            if data.get(name):
                try:
                    data[name] = normalise(data[name].strip())
                except ValidationError as exc:
                    errors[name] = exc.messages if isinstance(exc.messages, list) else [str(exc)]
        unknown = [a for a in data.get("audiences") or [] if a not in self.plan.audiences]
        if not data.get("audiences"):
            errors["audiences"] = ["give at least one audience"]
        elif unknown:
            known = ", ".join(self.plan.audiences)
            errors["audiences"] = [f"unknown audience {unknown[0]!r} (known: {known})"]
        chosen = data.get("channels") or []
        bad = [c for c in chosen if c not in PERSONAL]
        if bad:
            errors["channels"] = [f"unknown channel {bad[0]!r} (known: {', '.join(PERSONAL)})"]
        elif len(set(chosen)) < len(chosen):
            # The list is an order (docs/api.md#channel-order): a channel has one place in it.
            twice = next(c for c in chosen if chosen.count(c) > 1)
            errors["channels"] = [f"{twice!r} is named twice (the list is an order)"]
        at, source = data.pop("whatsapp_opt_in_at", None), data.pop("whatsapp_opt_in_source", None)
        if at is not None or source is not None:
            try:
                data["whatsapp_opt_in"] = whatsapp_consent.parse_opt_in(at, source)
            except whatsapp_consent.OptInError as exc:
                errors[exc.field] = [exc.reason]
        locale = data.get("locale")
        if locale and locale not in self.plan.locales:
            errors["locale"] = [
                f"unknown locale {locale!r} (plan has: {', '.join(self.plan.locales)})"
            ]
        if errors:
            raise ValidationError(errors)

    @post_load
    def _defaults(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        data["locale"] = data.get("locale") or self.plan.default_locale
        data["audiences"] = sorted(set(data["audiences"]))
        return data

    def load_row(self, row: dict[str, Any]) -> dict[str, Any]:
        """``load`` for a row of plain strings and lists of strings, without marshmallow's
        machinery (most of an import's time); anything else, or anything wrong, takes
        ``load`` itself, for its exact reasons. Both give the same (tests/test_import.py)."""
        if not row.keys() <= _ROW_FIELDS:
            return self.load(row)
        external_id, email, phone, locale = (row.get(k) for k in _SCALARS)
        audiences, channels = row.get("audiences"), row.get("channels")
        if not (
            all(v is None or type(v) is str for v in (external_id, email, phone, locale))
            and type(audiences) is list
            and audiences
            and all(type(a) is str and a in self.plan.audiences for a in audiences)
            and (
                channels is None
                or (type(channels) is list and all(type(c) is str for c in channels))
            )
            and not set(channels or ()) - _PERSONAL
            and len(set(channels or ())) == len(channels or ())
            and (external_id is None or 0 < len(external_id) <= 200)
            and (not locale or locale in self.plan.locales)
            and (email or phone)
        ):
            return self.load(row)
        try:
            email = normalise_email(email.strip()) if email else email
            phone = self.phones.check(phone.strip()) if phone else phone
        except ValidationError:
            return self.load(row)
        return {
            "external_id": external_id,
            "email": email,
            "phone": phone,
            "locale": locale or self.plan.default_locale,
            "audiences": sorted(set(audiences)),
            "channels": channels,
        }
