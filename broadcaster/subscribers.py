"""Subscribers: validation of contact data and their Redis store.

A subscriber is found again by ``external_id``, else by email, else by phone, so importing
the same list twice updates people instead of duplicating them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import phonenumbers
import redis
from email_validator import EmailNotValidError, validate_email
from marshmallow import Schema, ValidationError, fields, post_load, validates_schema

from broadcaster.plan import Plan
from channels import CHANNELS

ALL_KEY = "bc:subs"
INDEX_KEY = "bc:subx"
# How a person is found again, in order of preference: (index prefix, field).
_LOOKUPS = (("ext", "external_id"), ("email", "email"), ("phone", "phone"))


def _sub_key(subscriber_id: str) -> str:
    return f"bc:sub:{subscriber_id}"


def audience_key(audience: str) -> str:
    return f"bc:aud:{audience}"


def normalise_phone(value: str, region: str | None) -> str:
    """E.164 form of a phone number, or ValidationError with the reason."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        hint = "" if region else " (write it with a country code, e.g. +31…)"
        raise ValidationError(f"not a phone number: {exc}{hint}") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValidationError(f"{value!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(value: str) -> str:
    """Normalised email address, or ValidationError with the reason."""
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValidationError(str(exc)) from exc


class SubscriberRow(Schema):
    """One incoming subscriber: at least one contact, known audiences, known channels."""

    external_id = fields.String(load_default=None, validate=lambda s: 0 < len(s) <= 200)
    email = fields.String(load_default=None)
    phone = fields.String(load_default=None)
    locale = fields.String(load_default=None)
    audiences = fields.List(fields.String(), required=True)
    channels = fields.List(fields.String(), load_default=None)

    def __init__(self, plan: Plan, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan

    @validates_schema
    def _check(self, data: dict[str, Any], **_: Any) -> None:
        errors: dict[str, list[str]] = {}
        if not data.get("email") and not data.get("phone"):
            errors["_schema"] = ["give at least one contact: email or phone"]
        for name, normalise in (
            ("email", normalise_email),
            ("phone", lambda v: normalise_phone(v, self.plan.default_region)),
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
        bad = [c for c in data.get("channels") or [] if c not in CHANNELS]
        if bad:
            errors["channels"] = [f"unknown channel {bad[0]!r} (known: {', '.join(CHANNELS)})"]
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


class SubscriberStore:
    """Subscribers in Redis, indexed by contact and by audience."""

    def __init__(self, r: redis.Redis) -> None:
        self.r = r

    def upsert(self, row: dict[str, Any]) -> tuple[str, bool]:
        """Create or update one validated subscriber; returns (id, created)."""
        lookups = [f"{kind}:{row[field]}" for kind, field in _LOOKUPS if row.get(field)]
        existing = None
        for lookup in lookups:
            found = self.r.hget(INDEX_KEY, lookup)
            if found:
                existing = found.decode()
                break
        created = existing is None
        subscriber_id = existing or uuid.uuid4().hex[:16]
        if created and not self.r.hsetnx(INDEX_KEY, lookups[0], subscriber_id):
            # Someone created the same person a moment ago: update theirs instead.
            subscriber_id, created = self.r.hget(INDEX_KEY, lookups[0]).decode(), False
        old = self.get(subscriber_id) or {}
        now = time.time()
        record = {
            "id": subscriber_id,
            "external_id": row.get("external_id") or old.get("external_id") or "",
            "email": row.get("email") or old.get("email") or "",
            "phone": row.get("phone") or old.get("phone") or "",
            "locale": row["locale"],
            "audiences": ",".join(row["audiences"]),
            "channels": ",".join(row["channels"])
            if row.get("channels") is not None
            else old.get("channels_raw", ""),
            "created_at": old.get("created_at", now),
            "updated_at": now,
        }
        pipe = self.r.pipeline()
        for kind, field in _LOOKUPS:
            if old.get(field) and old[field] != record[field]:
                pipe.hdel(INDEX_KEY, f"{kind}:{old[field]}")
            if record[field]:
                pipe.hset(INDEX_KEY, f"{kind}:{record[field]}", subscriber_id)
        for audience in set(old.get("audiences", [])) - set(row["audiences"]):
            pipe.zrem(audience_key(audience), subscriber_id)
        for audience in row["audiences"]:
            pipe.zadd(audience_key(audience), {subscriber_id: record["created_at"]}, nx=True)
        pipe.zadd(ALL_KEY, {subscriber_id: record["created_at"]}, nx=True)
        pipe.hset(_sub_key(subscriber_id), mapping=record)
        pipe.execute()
        return subscriber_id, created

    def get(self, subscriber_id: str) -> dict[str, Any] | None:
        """One subscriber as a plain dict, or None."""
        raw = self.r.hgetall(_sub_key(subscriber_id))
        return _decode(raw) if raw else None

    def get_many(self, subscriber_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Subscribers by id (missing ones, e.g. erased, are left out)."""
        pipe = self.r.pipeline(transaction=False)
        for sid in subscriber_ids:
            pipe.hgetall(_sub_key(sid))
        return {
            sid: _decode(raw)
            for sid, raw in zip(subscriber_ids, pipe.execute(), strict=True)
            if raw
        }

    def count(self, audience: str | None = None) -> int:
        return int(self.r.zcard(audience_key(audience) if audience else ALL_KEY))

    def page(self, offset: int, limit: int, audience: str | None = None) -> list[dict[str, Any]]:
        """Subscribers in order of creation."""
        key = audience_key(audience) if audience else ALL_KEY
        ids = [m.decode() for m in self.r.zrange(key, offset, offset + limit - 1)]
        found = self.get_many(ids)
        return [found[i] for i in ids if i in found]

    def ids_in(self, audiences: Iterable[str], chunk: int = 5000) -> Iterator[list[str]]:
        """Stream the audiences' subscriber ids in chunks (a person may repeat across audiences)."""
        for audience in audiences:
            start = 0
            while True:
                ids = self.r.zrange(audience_key(audience), start, start + chunk - 1)
                if not ids:
                    break
                yield [i.decode() for i in ids]
                start += chunk


def _decode(raw: dict[bytes, bytes]) -> dict[str, Any]:
    data = {k.decode(): v.decode() for k, v in raw.items()}
    channels_raw = data.get("channels", "")
    return {
        "id": data["id"],
        "external_id": data.get("external_id") or None,
        "email": data.get("email") or None,
        "phone": data.get("phone") or None,
        "locale": data.get("locale"),
        "audiences": [a for a in data.get("audiences", "").split(",") if a],
        "channels": [c for c in channels_raw.split(",") if c] or None,
        "channels_raw": channels_raw,
        "created_at": float(data.get("created_at", 0)),
        "updated_at": float(data.get("updated_at", 0)),
    }


def import_rows(
    rows: Iterable[tuple[int, Any]], plan: Plan, store: SubscriberStore
) -> dict[str, Any]:
    """Validate and upsert (position, row) pairs; rejected rows are reported, never dropped."""
    schema = SubscriberRow(plan)
    report: dict[str, Any] = {"created": 0, "updated": 0, "rejected": []}
    for index, row in rows:
        if not isinstance(row, dict):
            errors = {"_schema": ["each row must be an object"]}
            report["rejected"].append({"index": index, "external_id": None, "errors": errors})
            continue
        try:
            clean = schema.load(row)
        except ValidationError as exc:
            report["rejected"].append(
                {"index": index, "external_id": row.get("external_id"), "errors": exc.messages}
            )
            continue
        _, created = store.upsert(clean)
        report["created" if created else "updated"] += 1
    return report
