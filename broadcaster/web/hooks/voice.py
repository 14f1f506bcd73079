"""Twilio's callbacks during and after a voice call (``channels/voice.py`` places it).

- ``POST /hooks/twilio/voice/status``: the call ended — ``completed``, ``busy``,
  ``no-answer``, ``failed`` or ``canceled`` — recorded in the ledger like an SMS receipt.
- ``POST /hooks/twilio/voice/amd``: the asynchronous answering-machine verdict. When a
  machine's greeting has ended, the live call's TwiML is replaced by the short message.
- ``POST /hooks/twilio/voice/gather``: the key pressed after the message. 1: the person
  heard it (the confirmation, ``domain/confirmations.py``) and is thanked; 2: they are
  connected to the audience's emergency route; anything else: the prompt once more.

Every one is signed by Twilio (``twilio_verified``, checked by the gate before anything is
read) and names its delivery in the query string, as the SMS receipts do. What the call
says is rendered again here, in the person's language, by the same renderer as the call.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, request
from flask.typing import ResponseReturnValue

from broadcaster.domain import all_clear, confirmations
from broadcaster.domain.announcement import Announcement
from broadcaster.domain.errors import NotFound
from broadcaster.domain.ledger import Ledger
from broadcaster.infra import metrics
from broadcaster.rendering import exercise
from broadcaster.services import Services, services
from broadcaster.web.gate import authenticated_by
from broadcaster.web.hooks.receipts import apply, seen, twilio_verified
from channels import voice_twiml
from channels.base import DeliveryError

log = logging.getLogger(__name__)

bp = Blueprint("voice_hooks", __name__, url_prefix="/hooks/twilio/voice")

CHANNEL = "voice"
# Twilio's final CallStatus → ledger state. A completed call was answered (by a person or a
# machine: ``answered_by`` in the details says which); busy and no-answer reached nobody.
CALL_STATES = {
    "completed": "delivered",
    "busy": "undelivered",
    "no-answer": "undelivered",
    "canceled": "undelivered",
    "failed": "failed",
}
# AnsweredBy values of DetectMessageEnd that mean a machine's greeting is over: the moment
# to leave the short message.
MACHINE_ENDS = ("machine_end_beep", "machine_end_silence", "machine_end_other")


@dataclass
class Call:
    """The delivery a callback is about, and what its call says (in the person's language)."""

    announcement: Announcement
    subscriber_id: str
    content: dict[str, str]


def _twiml(twiml: str) -> Response:
    return Response(twiml, mimetype="text/xml")


def _call(svc: Services) -> Call | None:
    """The call the query names, if it is one of our voice deliveries."""
    announcement_id, subscriber_id = request.args.get("a", ""), request.args.get("s", "")
    if not announcement_id or not subscriber_id:
        return None
    if not Ledger(svc.redis, announcement_id).states(CHANNEL, [subscriber_id]).get(subscriber_id):
        return None
    try:
        announcement = svc.announcements.get(announcement_id)
    except NotFound:
        return None
    person = svc.subscribers.get(subscriber_id)
    # Erased since the call was placed: the call still speaks, in the plan's language.
    locale = person["locale"] if person else svc.plan.default_locale
    audiences = (
        all_clear.audiences_for(person, announcement) if person else list(announcement.audiences)
    )
    content = svc.renderer.render(CHANNEL, announcement, audiences, locale).content
    if announcement.exercise:
        content = exercise.marked(content, locale)
    return Call(announcement, subscriber_id, content)


def _note(svc: Services, call: Call, details: dict[str, Any]) -> None:
    Ledger(svc.redis, call.announcement.id).note(CHANNEL, {call.subscriber_id: details})


@bp.post("/status")
@authenticated_by("Twilio signature", twilio_verified)
def status() -> ResponseReturnValue:
    """The call ended: move its delivery to delivered, undelivered or failed."""
    svc = services()
    call_status = request.form.get("CallStatus", "")
    announcement_id, subscriber_id = request.args.get("a", ""), request.args.get("s", "")
    state = CALL_STATES.get(call_status)
    if not state:
        return "", 204  # ringing, in-progress: the batch job already recorded "sent"
    if not announcement_id or not subscriber_id:
        metrics.count(svc.redis, "receipts", "twilio", call_status, "unmatched")
        return "", 204
    details: dict[str, Any] = {"receipt": call_status, "provider_id": request.form.get("CallSid")}
    for field, key in (("AnsweredBy", "answered_by"), ("CallDuration", "duration")):
        if request.form.get(field):
            details[key] = request.form[field][:40]
    if request.form.get("ErrorCode"):
        details["error"] = f"twilio {request.form['ErrorCode'][:20]}: {call_status}"
    elif state != "delivered":
        details["error"] = f"call {call_status}"
    apply(svc, "twilio", call_status, CHANNEL, announcement_id, subscriber_id, state, details)
    return "", 204


@bp.post("/amd")
@authenticated_by("Twilio signature", twilio_verified)
def machine_detection() -> ResponseReturnValue:
    """The answering-machine verdict: a machine gets the short message after its beep."""
    svc = services()
    call = _call(svc)
    answered_by = request.form.get("AnsweredBy", "")[:40]
    if call is None:
        return "", 204
    details: dict[str, Any] = {"answered_by": answered_by}
    call_sid = request.form.get("CallSid", "")
    # Twilio signs no timestamp: a verdict sent again (a retry, a replay) must not make us
    # update the call again. One verdict per call, remembered as long as receipts.
    if not call_sid or seen(svc, "tw-amd", call_sid):
        metrics.count(svc.redis, "hook_replays", "twilio_voice_amd", "repeated")
        return "", 204
    if answered_by in MACHINE_ENDS:
        try:
            svc.channels[CHANNEL].leave_message(call_sid, call.content)  # type: ignore[attr-defined]
        except DeliveryError as exc:  # the call ended meanwhile, or Twilio is down
            log.warning("no message left on an answering machine: %s", exc.reason)
            details["error"] = f"no message left: {exc.reason}"[:300]
        else:
            details["left_message"] = True
            metrics.count(svc.redis, "voice_calls", "machine")
    _note(svc, call, details)
    return "", 204


@bp.post("/gather")
@authenticated_by("Twilio signature", twilio_verified)
def gather() -> ResponseReturnValue:
    """The key pressed after the message: 1 heard, 2 connect, else the prompt once more."""
    svc = services()
    call = _call(svc)
    if call is None:
        return _twiml(voice_twiml.spoken("", svc.plan.default_locale))
    content, locale = call.content, call.content.get("locale", svc.plan.default_locale)
    digits = request.form.get("Digits", "")[:10]
    key = digits if digits in ("1", "2") else ""
    if key == "2" and not content.get("emergency"):
        key = ""  # nobody to connect them to: the prompt did not offer it
    answer = None
    if key:
        answer = confirmations.answer(svc, call.announcement, call.subscriber_id, CHANNEL, key)
    details: dict[str, Any] = {"pressed": digits, "pressed_at": time.time()}
    if answer:
        details["confirmation"] = answer
    _note(svc, call, details)
    if key == "1":
        metrics.count(svc.redis, "voice_calls", "key_1")
        return _twiml(voice_twiml.spoken(content["thanks"], locale))
    if key == "2":
        metrics.count(svc.redis, "voice_calls", "key_2")
        return _twiml(voice_twiml.connect(content, content["emergency"]))
    metrics.count(svc.redis, "voice_calls", "other_key" if digits else "no_key")
    if request.args.get("again"):  # the prompt was repeated once already
        return _twiml(voice_twiml.spoken(content["goodbye"], locale))
    voice = svc.channels[CHANNEL]
    action = voice.hook_url(  # type: ignore[attr-defined]
        "gather", call.announcement.id, call.subscriber_id, again="1"
    )
    return _twiml(voice_twiml.prompt_again(content, action))
