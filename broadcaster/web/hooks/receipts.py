"""Delivery receipts: ``POST /hooks/twilio/status`` and ``POST /hooks/sendgrid/events``.

As in pypi/warehouse's ``ses/views.py``: verify the provider's signature first (the gate,
``web/gate.py``, runs ``twilio_verified`` or ``sendgrid_verified`` before the view: nothing
is parsed or recorded before that), skip events already seen, then move the delivery's
state machine. Receipts only move a delivery *forward*: ``queued``/``sending``/``sent`` may
become ``delivered``, ``undelivered``, ``bounced``, ``dropped`` or ``failed``, and those are
final — a late "sent" or "processed" never undoes a "delivered", and a second "delivered"
changes nothing.

Correlation needs no lookup table: the SMS channel gives Twilio a StatusCallback URL that
carries the announcement and subscriber ids (the URL is part of what Twilio signs), and the
email channel puts them in SendGrid ``custom_args``, which every event echoes.
"""

from __future__ import annotations

import binascii
import logging
import math
import re
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from flask import Blueprint, Flask, Response, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader
from twilio.request_validator import RequestValidator

from broadcaster.config import ConfigError
from broadcaster.domain import whatsapp_consent
from broadcaster.domain.ledger import Ledger
from broadcaster.infra import metrics
from broadcaster.services import Services, services
from broadcaster.web.errors import error_body
from broadcaster.web.gate import authenticated_by
from broadcaster.web.limits import MalformedJSON, parse_json, refuse

log = logging.getLogger(__name__)

bp = Blueprint("receipts", __name__, url_prefix="/hooks")

# A receipt may only move a delivery out of these states; everything else is final.
ADVANCE_FROM = ("queued", "sending", "sent")
# Twilio MessageStatus → ledger state; queued/sending/sent/accepted add nothing we lack.
TWILIO_STATES = {
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
}
# SendGrid event → ledger state. An open or a click proves delivery even if the
# "delivered" event is late or lost.
SENDGRID_STATES = {
    "delivered": "delivered",
    "open": "delivered",
    "click": "delivered",
    "bounce": "bounced",  # includes type=blocked
    "dropped": "dropped",
}
# The person asked for no more email: honour it like the unsubscribe link.
SENDGRID_OPT_OUTS = ("unsubscribe", "group_unsubscribe", "spamreport")
# Twilio's error for free text outside the WhatsApp 24-hour window.
OUTSIDE_WINDOW = "63016"
SEEN_TTL = 7 * 24 * 3600  # SendGrid retries a failed POST for up to 72 hours
_UNIX_TIME = re.compile(r"[0-9]{1,15}")  # str.isdigit() would also take other scripts' digits


def _error(code: int, message: str) -> tuple[Response, int]:
    return jsonify(error_body(code, message)), code


def callback_url(public_url: str, path: str, query: bytes) -> str:
    """The URL Twilio called, as it saw it (it signs the public URL, not ours)."""
    url = public_url.rstrip("/") + path
    return f"{url}?{query.decode('latin-1')}" if query else url


def twilio_verified() -> tuple[Response, int] | None:
    """None if ``X-Twilio-Signature`` is valid for this request, else the error response.

    The gate's check for the Twilio hooks. Twilio signs the URL and the form's fields, so
    the form is read here, within the body size limit; nothing else is looked at.
    """
    token = current_app.config.get("TWILIO_AUTH_TOKEN")
    if not token:
        return _error(
            503, "Twilio callbacks cannot be verified: BROADCASTER_TWILIO_AUTH_TOKEN is not set"
        )
    signature = request.headers.get("X-Twilio-Signature", "")
    url = callback_url(str(current_app.config["PUBLIC_URL"]), request.path, request.query_string)
    if not signature or not RequestValidator(str(token)).validate(url, request.form, signature):
        log.warning("rejected a Twilio callback with a bad signature on %s", request.path)
        return _error(401, "invalid X-Twilio-Signature")
    return None


def seen(svc: Services, kind: str, event_id: str) -> bool:
    """True if this event id was processed before (and remember it otherwise)."""
    return not svc.redis.set(f"bc:rcpt:seen:{kind}:{event_id}", 1, nx=True, ex=SEEN_TTL)


def apply(
    svc: Services,
    provider: str,
    event: str,
    channel: str,
    announcement_id: str,
    subscriber_id: str,
    state: str,
    details: dict[str, Any],
) -> str:
    """Move one delivery forward to ``state``; returns the outcome for metrics and the reply."""
    ledger = Ledger(svc.redis, announcement_id)
    if ledger.move(channel, [subscriber_id], state, ADVANCE_FROM):
        ledger.note(channel, {subscriber_id: details})
        log.info(
            "%s receipt: %s delivery is %s",
            provider,
            channel,
            state,
            extra={"announcement_id": announcement_id},
        )
        outcome = "applied"
    else:
        # Already final (a duplicate, or an earlier event arriving late) or not ours.
        current = ledger.states(channel, [subscriber_id]).get(subscriber_id)
        outcome = "stale" if current else "unmatched"
    metrics.count(svc.redis, "receipts", provider, event, outcome)
    return outcome


@bp.post("/twilio/status")
@authenticated_by("Twilio signature", twilio_verified)
def twilio_status() -> ResponseReturnValue:
    """Twilio's StatusCallback for one message: the URL names announcement and subscriber."""
    return _twilio_receipt("sms")


@bp.post("/twilio/whatsapp/status")
@authenticated_by("Twilio signature", twilio_verified)
def twilio_whatsapp_status() -> ResponseReturnValue:
    """The StatusCallback of one WhatsApp message (sent, delivered, read, failed…)."""
    svc = services()
    subscriber_id = request.args.get("s", "")
    if request.form.get("ErrorCode") == OUTSIDE_WINDOW and subscriber_id:
        # We took their window for open and Twilio knows better: templates until they write.
        whatsapp_consent.close_window(svc.redis, subscriber_id)
    return _twilio_receipt("whatsapp")


def _twilio_receipt(channel: str) -> ResponseReturnValue:
    svc = services()
    provider = "twilio" if channel == "sms" else f"twilio_{channel}"
    status = request.form.get("MessageStatus", "")
    announcement_id, subscriber_id = request.args.get("a", ""), request.args.get("s", "")
    state = TWILIO_STATES.get(status)
    if not state:
        return "", 204  # an intermediate status: the batch job already recorded "sent"
    if not announcement_id or not subscriber_id:
        metrics.count(svc.redis, "receipts", provider, status, "unmatched")
        return "", 204
    details: dict[str, Any] = {"receipt": status, "provider_id": request.form.get("MessageSid")}
    if request.form.get("ErrorCode"):
        details["error"] = f"twilio {request.form['ErrorCode']}: {status}"
    apply(svc, provider, status, channel, announcement_id, subscriber_id, state, details)
    return "", 204


def _sendgrid_verifier() -> EventWebhook | None:
    return current_app.extensions.get("broadcaster_sendgrid_webhook")


def sendgrid_verified() -> tuple[Response, int] | None:
    """None if the Event Webhook signature is valid for the raw body, else the error response.

    The gate's check for ``/hooks/sendgrid/events``: the signature covers the raw bytes,
    so nothing is parsed before it holds.
    """
    verifier = _sendgrid_verifier()
    if verifier is None:
        return _error(
            503,
            "SendGrid events are refused: set BROADCASTER_SENDGRID_WEBHOOK_PUBLIC_KEY to the "
            "Event Webhook's verification key (unsigned events are never accepted)",
        )
    signature = request.headers.get(EventWebhookHeader.SIGNATURE, "")
    timestamp = request.headers.get(EventWebhookHeader.TIMESTAMP, "")
    try:
        # Without both headers the body is not even read.
        valid = bool(signature and timestamp) and verifier.verify_signature(
            request.get_data(as_text=True), signature, timestamp
        )
    except (binascii.Error, ValueError):  # not base64, or not a DER signature
        valid = False
    if not valid:
        log.warning("rejected a SendGrid event batch with a bad signature")
        return _error(401, "invalid SendGrid Event Webhook signature")
    max_age = float(current_app.config["SENDGRID_EVENT_MAX_AGE"])
    # The timestamp is signed with the body: an old one is a captured batch sent again.
    # Both ways, or a far-future timestamp would make a batch replayable later.
    if not _UNIX_TIME.fullmatch(timestamp) or abs(time.time() - int(timestamp)) > max_age:
        log.warning("rejected a SendGrid event batch signed at %r (replayed or stale)", timestamp)
        metrics.count(services().redis, "hook_replays", "sendgrid", "stale")
        return _error(
            403, f"SendGrid Event Webhook timestamp is more than {max_age:.0f} s from now"
        )
    return None


@bp.post("/sendgrid/events")
@authenticated_by("SendGrid signature", sendgrid_verified)
def sendgrid_events() -> ResponseReturnValue:
    """SendGrid's signed Event Webhook: a JSON list of events, each echoing our custom_args."""
    payload = request.get_data(as_text=True)
    now = time.time()
    try:
        events = parse_json(payload)
    except MalformedJSON as exc:  # malformed or too deep (signed, but still no 500)
        refuse(400, str(exc))
    if not isinstance(events, list):
        return _error(400, "expected a JSON list of events")
    svc = services()
    outcomes: dict[str, int] = {}
    for event in events:
        outcome = _sendgrid_event(svc, event, now) if isinstance(event, dict) else "ignored"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return jsonify({"events": len(events), **outcomes})


def event_time(event: dict[str, Any], now: float) -> float:
    """When a SendGrid event happened (its ``timestamp``), never later than now."""
    value = event.get("timestamp")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return now  # SendGrid always sends one; without it, receipt time is the best we know
    # Whole seconds: an event in the same second as an opt-in may have come after it, and
    # an opt-out is the choice to honour then. A future time would shield the change from
    # every later one: cap it at now.
    return min(float(value) + (0.999 if isinstance(value, int) else 0.0), now)


def _sendgrid_event(svc: Services, event: dict[str, Any], now: float) -> str:
    kind = str(event.get("event") or "")
    event_id = str(event.get("sg_event_id") or "")
    announcement_id = str(event.get("announcement_id") or "")
    subscriber_id = str(event.get("subscriber_id") or "")
    if event_id and seen(svc, "sg", event_id):
        metrics.count(svc.redis, "receipts", "sendgrid", kind, "duplicate")
        return "duplicate"
    if not announcement_id or not subscriber_id:
        metrics.count(svc.redis, "receipts", "sendgrid", kind, "unmatched")
        return "unmatched"  # mail sent by something else on the same SendGrid account
    if kind in SENDGRID_OPT_OUTS:
        try:
            _, stale = svc.subscribers.changed_opt_outs(
                subscriber_id, ["email"], opted_out=True, at=event_time(event, now)
            )
        except KeyError:
            return "unmatched"  # erased meanwhile
        if stale:  # they opted back in after this event: the newer choice stands
            metrics.count(svc.redis, "receipts", "sendgrid", kind, "stale")
            return "stale"
        metrics.count(svc.redis, "receipts", "sendgrid", kind, "applied")
        return "opted_out"
    state = SENDGRID_STATES.get(kind)
    if not state:
        return "ignored"  # processed, deferred: nothing the ledger does not know
    details: dict[str, Any] = {"receipt": kind}
    if kind in ("bounce", "dropped"):
        reason = str(event.get("reason") or event.get("type") or kind)
        details["error"] = f"sendgrid {kind}: {reason[:300]}"
    return apply(svc, "sendgrid", kind, "email", announcement_id, subscriber_id, state, details)


def init_app(app: Flask) -> None:
    """Register the receipt hooks; a malformed SendGrid verification key fails at start-up."""
    key = app.config.get("SENDGRID_WEBHOOK_PUBLIC_KEY")
    if key:
        try:
            verifier = EventWebhook(str(key).strip())
            if not isinstance(verifier.public_key, ec.EllipticCurvePublicKey):
                raise ValueError("not an elliptic-curve key")
            app.extensions["broadcaster_sendgrid_webhook"] = verifier
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                "BROADCASTER_SENDGRID_WEBHOOK_PUBLIC_KEY: not a base64 ECDSA public key "
                f"as SendGrid shows it ({exc})"
            ) from exc
    app.register_blueprint(bp)
