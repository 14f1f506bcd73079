"""``POST /hooks/twilio/whatsapp/inbound``: WhatsApp messages to our WhatsApp sender.

Handled like SMS replies (``inbound.py``), with WhatsApp's own rules on top:

- every message opens the person's 24-hour window, within which we may answer in free
  text (``domain/whatsapp_consent.py``);
- STOP (and every plan language's opt-out word) opts them out of WhatsApp only; START
  opts them back in and, when no opt-in was recorded, records this one ("WhatsApp START");
- a reply to an announcement first goes to the confirmation contract (1/OK, 2/HELP),
  else is kept on the incident with channel "whatsapp" and handed to the helpdesks.

``From`` is ``whatsapp:+31…``: the person is found by the phone number after the prefix.
"""

from __future__ import annotations

import logging
import time

from flask import Blueprint, request
from flask.typing import ResponseReturnValue

from broadcaster.domain import whatsapp_consent
from broadcaster.domain.confirmations import answer
from broadcaster.infra import metrics
from broadcaster.infra.logs import mask_contact
from broadcaster.services import services
from broadcaster.web.gate import authenticated_by
from broadcaster.web.hooks.inbound import (
    _note_stop,
    _twiml,
    answered,
    keep_reply,
    keyword,
    seen_before,
)
from broadcaster.web.hooks.receipts import twilio_verified
from channels.whatsapp import PREFIX

log = logging.getLogger(__name__)

bp = Blueprint("whatsapp_inbound", __name__, url_prefix="/hooks")

START_SOURCE = "WhatsApp START"


@bp.post("/twilio/whatsapp/inbound")
@authenticated_by("Twilio signature", twilio_verified)
def twilio_whatsapp_inbound() -> ResponseReturnValue:
    """A WhatsApp message to our sender: opt-out/opt-in word, confirmation, or a reply."""
    svc = services()
    message_sid = request.form.get("MessageSid", "")
    sender, body = request.form.get("From", ""), request.form.get("Body", "")
    if seen_before(svc, message_sid, sender, body):
        return _twiml()
    phone = sender.removeprefix(PREFIX)
    subscriber_id = (
        svc.subscribers.find_by_contact("phone", phone) if sender.startswith(PREFIX) else None
    )
    if subscriber_id is None:
        log.info("WhatsApp from %s: no subscriber of ours", mask_contact(phone))
        metrics.count(svc.redis, "inbound_whatsapp", "unmatched")
        return _twiml()
    whatsapp_consent.open_window(svc.redis, subscriber_id)
    kind = keyword(body, svc.plan.locales)
    if kind:
        try:
            person = svc.subscribers.set_opt_outs(
                subscriber_id, ["whatsapp"], opted_out=kind == "opt_out"
            )
        except KeyError:
            return _twiml()  # erased between the lookup and now
        if kind == "opt_in" and not whatsapp_consent.opted_in(person):
            svc.subscribers.record_whatsapp_opt_in(subscriber_id, time.time(), START_SOURCE)
        log.info("%s by WhatsApp from %s", kind.replace("_", "-"), mask_contact(phone))
        metrics.count(svc.redis, "inbound_whatsapp", kind)
        if kind == "opt_out":
            _note_stop(svc, subscriber_id, phone, "whatsapp")
        return _twiml()
    announcement = answered(svc, subscriber_id, "whatsapp")
    if announcement is None:
        log.info("WhatsApp from %s answers no announcement of ours", mask_contact(phone))
        metrics.count(svc.redis, "inbound_whatsapp", "unmatched")
        return _twiml()
    outcome = answer(svc, announcement, subscriber_id, "whatsapp", body)
    if outcome:
        metrics.count(svc.redis, "inbound_whatsapp", outcome)
        return _twiml()
    keep_reply(svc, announcement, "whatsapp", phone, subscriber_id, body, message_sid)
    metrics.count(svc.redis, "inbound_whatsapp", "reply")
    return _twiml()
