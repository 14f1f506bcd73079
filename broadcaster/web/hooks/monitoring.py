"""Inbound monitoring webhooks: ``/hooks/alertmanager``, ``/hooks/grafana``, ``/hooks/generic``.

Authenticated first, by the gate (``web/gate.py``, with ``monitor_credentials``): a
``monitor`` token as Bearer or as the Basic-auth password; for the generic hook also an
HMAC signature, each signed request once. Without it nothing is read or recorded. Each
token is then held to a rate (``throttle.py``: 429 with ``Retry-After``). Then the raw
payload is kept, validated (400 with the reason), and handed to the monitoring rules.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from broadcaster.domain.tokens import lookup
from broadcaster.infra import metrics
from broadcaster.services import services
from broadcaster.web.errors import error_body, summarise
from broadcaster.web.gate import Check, authenticated_by
from broadcaster.web.hooks import throttle
from broadcaster.web.hooks.alerts import (
    MonitorEvent,
    Processor,
    from_alertmanager,
    from_generic,
    record_event,
)
from broadcaster.web.limits import MalformedJSON, parse_json, refuse
from channels.webhook import SIGNATURE_HEADER, sign, verify

bp = Blueprint("hooks", __name__, url_prefix="/hooks")

HMAC_TOLERANCE = 300  # seconds a signature's timestamp may be from now, either way
_SIGNED_AT = re.compile(r"(?:^|,)\s*t=([0-9]{1,15})\s*(?:,|$)")

_Labels = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)


class _AlertSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    status = fields.String(required=True, validate=validate.OneOf(["firing", "resolved"]))
    labels = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    annotations = _Labels
    startsAt = fields.String(load_default=None)  # noqa: N815 - the wire names
    endsAt = fields.String(load_default=None)  # noqa: N815
    fingerprint = fields.String(load_default=None)


class AlertmanagerSchema(Schema):
    """Alertmanager's webhook payload, version 4 (Grafana sends the same, plus extras)."""

    class Meta:
        unknown = EXCLUDE

    version = fields.String(load_default="4")
    groupKey = fields.String(required=True, validate=validate.Length(min=1))  # noqa: N815
    status = fields.String(required=True, validate=validate.OneOf(["firing", "resolved"]))
    truncatedAlerts = fields.Integer(load_default=0)  # noqa: N815
    groupLabels = _Labels  # noqa: N815
    commonLabels = _Labels  # noqa: N815
    commonAnnotations = _Labels  # noqa: N815
    alerts = fields.List(
        fields.Nested(_AlertSchema), required=True, validate=validate.Length(min=1)
    )
    title = fields.String(load_default=None)


class GenericSchema(Schema):
    """``{"key", "status": "firing"|"resolved", "title", "summary", "severity", "labels"}``."""

    key = fields.String(required=True, validate=validate.Length(min=1, max=500))
    status = fields.String(required=True, validate=validate.OneOf(["firing", "resolved"]))
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    summary = fields.String(load_default=None)
    severity = fields.String(
        load_default=None, validate=validate.OneOf(["info", "minor", "major", "critical"])
    )
    labels = _Labels


def _json_error(code: int, message: str, errors: dict | None = None) -> tuple[Response, int]:
    return jsonify(error_body(code, message, errors)), code


def _authorised(signed: bool) -> bool:
    """A monitor (or admin) token as Bearer or Basic password; or, if allowed, an HMAC."""
    token = throttle.presented_token()
    if token:
        principal = lookup(services().redis, token)
        return principal is not None and principal.may("hooks")
    secret = current_app.config.get("HOOKS_SECRET")
    header = request.headers.get(SIGNATURE_HEADER, "")
    if signed and secret and header:
        body = request.get_data()
        if not verify(str(secret), header, body, tolerance=HMAC_TOLERANCE):
            return False
        _refuse_replay(str(secret), header, body)
        return True
    return False


def _refuse_replay(secret: str, header: str, body: bytes) -> None:
    """409 if this signed request (same timestamp, same body) was received before.

    The key is the signature we expect, not the header as sent: extra ``v1=`` values or
    spaces would make a new header around the same signed request.
    """
    timestamp = _SIGNED_AT.search(header)
    if timestamp is None:  # pragma: no cover - verify() accepted exactly one t=
        return
    expected = sign(secret, body, int(timestamp.group(1))).rpartition("v1=")[2]
    # Longer than the window a timestamp stays valid in (± the tolerance around it).
    ttl = 2 * HMAC_TOLERANCE + 60
    if services().redis.set(f"bc:hooks:hmac-seen:{expected}", 1, nx=True, ex=ttl):
        return
    metrics.count(services().redis, "hook_replays", "generic", "signature_seen")
    refuse(409, "this signed request was already received (replay); sign each request anew")


def monitor_credentials(source: str, signed: bool = False) -> Check:
    """The gate's check for a monitoring hook: 401 unless ``_authorised(signed)``, then the
    caller's rate (429), all before the body is parsed."""

    def check() -> ResponseReturnValue | None:
        if not _authorised(signed):
            return _json_error(
                401,
                "send a monitor token (Bearer or Basic password)"
                + (" or an X-Broadcaster-Signature" if signed else ""),
            )
        throttle.check(source)  # per token, before any work: a flood is refused at the door
        return None

    return check


def _receive(source: str, schema: Schema, convert: Any) -> ResponseReturnValue:
    # The gate (web/gate.py) ran monitor_credentials before this: nothing unauthenticated
    # or over its rate is recorded or parsed.
    svc = services()
    raw = request.get_data(as_text=True)
    if not request.is_json:
        event_id = record_event(svc, source, raw, {"outcome": "rejected: not a JSON content type"})
        refuse(415, "send the payload as Content-Type: application/json", {"event_id": [event_id]})
    try:
        payload = parse_json(request.get_data())
    except MalformedJSON as exc:  # malformed, not UTF-8 or too deep: kept, refused, no 500
        event_id = record_event(svc, source, raw, {"outcome": f"rejected: {exc}"})
        refuse(400, str(exc), {"event_id": [event_id]})
    try:
        data = schema.load(payload)
    except ValidationError as exc:
        errors = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        reason = summarise(errors)
        event_id = record_event(svc, source, raw, {"outcome": f"rejected: {reason}"})
        return _json_error(400, f"not a valid {source} payload: {reason}", errors)
    event: MonitorEvent = convert(data)
    result = Processor(svc).handle(event)
    event_id = record_event(
        svc, source, raw, {**result, "group_key": event.group_key, "status": event.status}
    )
    return jsonify({"event_id": event_id, **result})


@bp.post("/alertmanager")
@authenticated_by("monitor token", monitor_credentials("alertmanager"))
def alertmanager() -> ResponseReturnValue:
    """Prometheus Alertmanager's webhook receiver (payload v4)."""
    return _receive("alertmanager", AlertmanagerSchema(), from_alertmanager)


@bp.post("/grafana")
@authenticated_by("monitor token", monitor_credentials("grafana"))
def grafana() -> ResponseReturnValue:
    """Grafana unified-alerting webhook contact point."""
    return _receive("grafana", AlertmanagerSchema(), lambda d: from_alertmanager(d, "grafana"))


@bp.post("/generic")
@authenticated_by("monitor token or HMAC signature", monitor_credentials("generic", signed=True))
def generic() -> ResponseReturnValue:
    """Any tool: the small generic shape, with a token or an HMAC signature."""
    return _receive("generic", GenericSchema(), from_generic)
