"""``POST /hooks/twilio/inbound``: SMS replies to our number.

A YES (JA, … in any language of the plan) from a number with a pending sign-up confirms
it (domain/signups.py). An opt-out word (STOP, STOPP, AFMELD… in any language of the plan)
opts the sender out of SMS through the same helper as the unsubscribe link; START/UNSTOP
opts them back in. A "1"/OK or "2"/HELP to an announcement that asked them to confirm is
their answer (domain/confirmations.py ``answer``). Any other text is kept, append-only,
on the incident of the latest announcement we texted to that number, and shown in
``GET /api/v1/incidents/{id}`` as ``replies`` (phone masked).
Twilio gets an empty TwiML answer: no automatic reply goes out from here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from typing import Any

import redis
from flask import Blueprint, Response, request
from flask.typing import ResponseReturnValue
from twilio.twiml.messaging_response import MessagingResponse

from broadcaster.delivery import reply_tickets
from broadcaster.domain.announcement import Announcement
from broadcaster.domain.announcements import ANNOUNCEMENTS_KEY
from broadcaster.domain.confirmations import answer
from broadcaster.domain.errors import NotFound
from broadcaster.domain.ledger import Ledger
from broadcaster.infra import metrics
from broadcaster.infra.logs import mask_contact
from broadcaster.services import Services, services
from broadcaster.web.gate import authenticated_by
from broadcaster.web.hooks.receipts import seen, twilio_verified

log = logging.getLogger(__name__)

bp = Blueprint("inbound", __name__, url_prefix="/hooks")

# Opt-out words per locale, upper case. STOP works everywhere (carriers and Twilio's own
# filtering use it); the others are what people write in each language. The words of
# every plan locale apply to everyone: a Dane living in the Netherlands may answer in Danish.
OPT_OUT_WORDS: dict[str, tuple[str, ...]] = {
    "en": ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"),
    "nl": ("STOP", "STOPPEN", "AFMELDEN", "UITSCHRIJVEN"),
    "da": ("STOP", "AFMELD", "AFMELDE", "FRAMELD"),
    "sv": ("STOPP", "STOP", "AVSLUTA", "AVREGISTRERA"),
    "nb": ("STOPP", "STOP", "AVSLUTT", "AVMELD"),
    "de": ("STOP", "STOPP", "ABMELDEN"),
    "fr": ("STOP", "ARRET", "ARRÊT", "DESABONNER", "DÉSABONNER"),
    "fi": ("STOP", "LOPETA"),
}
# Everyday words that start ordinary replies ("End of the outage when?"): they opt out
# only when they are the whole message, as Twilio's own STOP filtering does.
WHOLE_MESSAGE_ONLY = frozenset({"CANCEL", "END", "QUIT"})
OPT_IN_WORDS = frozenset({"START", "UNSTOP"})  # Twilio's standard words to undo a STOP
# Words that confirm a pending sign-up (domain/signups.py), per locale, upper case. YES
# works everywhere (our English message says it); like opt-out words, every plan locale's
# words apply to everyone. Only a short answer counts ("Ja", "ja tack", "Yes please!").
CONFIRM_WORDS: dict[str, tuple[str, ...]] = {
    "en": ("YES", "Y", "YEP", "YEAH", "YUP", "OK", "OKAY"),
    "nl": ("JA", "J", "JAWEL", "OK", "OKE", "OKÉ"),
    "da": ("JA", "J", "JO", "JEP", "OK"),
    "sv": ("JA", "J", "JAA", "JAPP", "OK"),
    "nb": ("JA", "J", "JO"),
    "de": ("JA", "J", "OK"),
    "fr": ("OUI", "O"),
    "fi": ("KYLLÄ", "K"),
}
CONFIRM_MAX_WORDS = 3
REPLY_MAX = 1600  # Twilio's limit for one (concatenated) message body
REPLIES_SHOWN = 1000
RECENT_ANNOUNCEMENTS = 100  # how far back a reply looks for what it answers
_WORDS = re.compile(r"[^\W\d_]+")


def _replies_key(incident_id: str) -> str:
    return f"bc:inc:{incident_id}:replies"


def keyword(body: str, locales: tuple[str, ...]) -> str | None:
    """``"opt_out"``, ``"opt_in"`` or None for an SMS body (case-insensitive, first word)."""
    words = _WORDS.findall(body.upper())
    if not words:
        return None
    first, alone = words[0], len(words) == 1
    opt_out = {"STOP"}.union(*(OPT_OUT_WORDS.get(loc.split("-")[0], ()) for loc in locales))
    if first in opt_out and (alone or first not in WHOLE_MESSAGE_ONLY):
        return "opt_out"
    if first in OPT_IN_WORDS and alone:
        return "opt_in"
    return None


def confirms(body: str, locales: tuple[str, ...]) -> bool:
    """Whether an SMS body says yes to a pending sign-up (first word, short answer)."""
    words = _WORDS.findall(body.upper())
    if not words or len(words) > CONFIRM_MAX_WORDS:
        return False
    yes = {"YES"}.union(*(CONFIRM_WORDS.get(loc.split("-")[0], ()) for loc in locales))
    return words[0] in yes


def _note_stop(svc: Services, subscriber_id: str, phone: str, channel: str = "sms") -> None:
    """Count a STOP on the incident it answers (the post-incident report shows them)."""
    announcement = answered(svc, subscriber_id, channel)
    if announcement is None:
        return
    key = _stops_key(announcement.incident_id)
    if not svc.redis.sadd(key + ":who", subscriber_id):
        return  # the same person saying STOP again is one STOP
    entry = {"at": time.time(), "from": mask_contact(phone), "announcement_id": announcement.id}
    pipe = svc.redis.pipeline(transaction=True)
    pipe.rpush(key, json.dumps(entry))
    pipe.ltrim(key, -REPLIES_SHOWN, -1)
    pipe.incr(key + ":count")
    pipe.execute()


def _stops_key(incident_id: str) -> str:
    return f"bc:inc:{incident_id}:stops"


def stops(r: redis.Redis, incident_id: str) -> tuple[int, list[dict[str, Any]]]:
    """(how many STOPs answered the incident's messages, the latest of them, oldest first)."""
    count = int(r.get(_stops_key(incident_id) + ":count") or 0)
    return count, [json.loads(raw) for raw in r.lrange(_stops_key(incident_id), 0, -1)]


def replies(r: redis.Redis, incident_id: str) -> list[dict[str, Any]]:
    """The incident's customer replies, oldest first (the latest REPLIES_SHOWN)."""
    return [json.loads(raw) for raw in r.lrange(_replies_key(incident_id), -REPLIES_SHOWN, -1)]


def answered(svc: Services, subscriber_id: str, channel: str = "sms") -> Announcement | None:
    """The latest announcement sent to this person by ``channel`` (None: we never did, or
    it is gone)."""
    recent = [
        member.decode()
        for member in svc.redis.zrevrange(ANNOUNCEMENTS_KEY, 0, RECENT_ANNOUNCEMENTS - 1)
    ]
    found = Ledger.latest_reached(
        svc.redis, recent, channel, subscriber_id, ("sending", "sent", "delivered")
    )
    try:
        return svc.announcements.get(found) if found else None
    except NotFound:
        return None


def seen_before(svc: Services, message_sid: str, phone: str, body: str) -> bool:
    """True if this SMS was handled before (and remember it otherwise).

    By ``MessageSid`` when there is one. Twilio's signature has no timestamp, so a signed
    request without a sid could be replayed at will: those are known by what they say (from,
    to, text), and the same text from the same number within the window counts once.
    """
    if message_sid:
        return seen(svc, "tw-in", message_sid)
    content = "\x1f".join((phone, request.form.get("To", ""), body))
    digest = hashlib.sha256(content.encode("utf-8", "surrogatepass")).hexdigest()
    window = max(1, int(svc.config["INBOUND_DEDUPE_WINDOW"]))
    if svc.redis.set(f"bc:rcpt:seen:tw-in-body:{digest}", 1, nx=True, ex=window):
        return False
    log.info("dropped a repeated SMS without MessageSid from %s", mask_contact(phone))
    metrics.count(svc.redis, "hook_replays", "twilio_inbound", "repeated")
    return True


def _twiml() -> Response:
    return Response(str(MessagingResponse()), mimetype="text/xml")


@bp.post("/twilio/inbound")
@authenticated_by("Twilio signature", twilio_verified)
def twilio_inbound() -> ResponseReturnValue:
    """An SMS to our number: opt-out/opt-in word, or a reply kept on the incident."""
    svc = services()
    message_sid = request.form.get("MessageSid", "")
    phone, body = request.form.get("From", ""), request.form.get("Body", "")
    if seen_before(svc, message_sid, phone, body):
        return _twiml()  # Twilio retried a request we already handled, or it was replayed

    if phone and svc.plan.subscriptions is not None and confirms(body, svc.plan.locales):
        # YES to a pending sign-up subscribes them; it answers no announcement.
        if svc.signups.confirm_reply(phone):
            log.info("sign-up confirmed by SMS from %s", mask_contact(phone))
            metrics.count(svc.redis, "inbound_sms", "confirm")
            metrics.count(svc.redis, "signups", "confirmed", "reply")
            return _twiml()
    subscriber_id = svc.subscribers.find_by_contact("phone", phone) if phone else None
    kind = keyword(body, svc.plan.locales)
    if kind and subscriber_id:
        try:
            svc.subscribers.set_opt_outs(subscriber_id, ["sms"], opted_out=kind == "opt_out")
        except KeyError:
            subscriber_id = None  # erased between the lookup and now
        else:
            log.info("%s by SMS from %s", kind.replace("_", "-"), mask_contact(phone))
            metrics.count(svc.redis, "inbound_sms", kind)
            if kind == "opt_out":
                _note_stop(svc, subscriber_id, phone)
            return _twiml()
    announcement = answered(svc, subscriber_id) if subscriber_id else None
    if announcement is None:
        # Nothing we sent them: Twilio's console keeps the message; we only count it.
        log.info("SMS from %s answers no announcement of ours", mask_contact(phone))
        metrics.count(svc.redis, "inbound_sms", "unmatched")
        return _twiml()
    assert subscriber_id is not None
    # "1"/OK or "2"/HELP to an announcement that asked them to confirm (domain/confirmations.py).
    confirmed = answer(svc, announcement, subscriber_id, "sms", body)
    if confirmed:
        log.info("%s by SMS from %s", confirmed, mask_contact(phone))
        metrics.count(svc.redis, "inbound_sms", confirmed)
        return _twiml()
    keep_reply(svc, announcement, "sms", phone, subscriber_id, body, message_sid)
    metrics.count(svc.redis, "inbound_sms", "reply")
    return _twiml()


def keep_reply(
    svc: Services,
    announcement: Announcement,
    channel: str,
    contact: str,
    subscriber_id: str | None,
    body: str,
    provider_id: str | None,
    subject: str = "",
) -> None:
    """Keep a customer's reply on its incident (contact masked) and hand it to the helpdesks."""
    reply = {
        "at": time.time(),
        "from": mask_contact(contact),
        "channel": channel,
        "subscriber_id": subscriber_id,
        "announcement_id": announcement.id,
        "body": body[:REPLY_MAX],
        "provider_id": provider_id or None,
    }
    svc.redis.rpush(_replies_key(announcement.incident_id), json.dumps(reply))
    log.info(
        "customer reply by %s from %s",
        channel.upper(),
        mask_contact(contact),
        extra={"announcement_id": announcement.id, "incident_id": announcement.incident_id},
    )
    person = svc.subscribers.get(subscriber_id) if subscriber_id else None
    if announcement.exercise:
        return  # a drill's reply is the team rehearsing, not a customer for the helpdesk
    reply_tickets.after_reply(
        svc,
        {
            "incident_id": announcement.incident_id,
            "announcement_id": announcement.id,
            "title": announcement.title,
            "channel": channel,
            "contact": contact,
            "language": (person or {}).get("locale") or svc.plan.default_locale,
            "body": body[:REPLY_MAX],
            "subject": subject,
        },
    )
