"""``POST /hooks/sendgrid/inbound``: customers' email replies, from SendGrid Inbound Parse.

SendGrid posts each email to the address our announcements reply to as
``multipart/form-data`` (``from``, ``to``, ``subject``, ``text``, ``headers``, …) and signs
nothing, so the URL carries a secret (``?secret=…``, ``BROADCASTER_INBOUND_EMAIL_SECRET``)
or the request uses basic auth with it as the password. A reply from a subscriber we
emailed is kept on the incident of the latest announcement we emailed them, like an SMS
reply, and becomes a helpdesk ticket (``delivery/reply_tickets.py``). The quoted
announcement below the reply is left out. SendGrid retries anything but a 2xx, so
whatever we cannot use is answered 200 and counted.
"""

from __future__ import annotations

import hmac
import logging
import re
from email.utils import parseaddr

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from marshmallow import ValidationError

from broadcaster.domain.subscriber_rows import normalise_email
from broadcaster.infra import metrics
from broadcaster.infra.logs import mask_contact
from broadcaster.services import services
from broadcaster.web.errors import error_body
from broadcaster.web.gate import authenticated_by
from broadcaster.web.hooks.inbound import answered, keep_reply
from broadcaster.web.hooks.receipts import seen

log = logging.getLogger(__name__)

bp = Blueprint("email_inbound", __name__, url_prefix="/hooks")

# Where the quoted announcement starts: "> …", or "On … wrote:" / "Op … schreef:" / "Den …
# skrev:" / "Am … schrieb:" and the Outlook separator.
_QUOTE_START = re.compile(
    r"^\s*(>|-{2,}\s*Original Message|_{5,}|(On|Op|Den|Am|Le|El) .+ "
    r"(wrote|schreef|skrev|schrieb|a écrit|escribió):\s*$)",
    re.IGNORECASE,
)
_MESSAGE_ID = re.compile(r"^Message-ID:\s*(\S+)\s*$", re.IGNORECASE | re.MULTILINE)


def secret_given() -> tuple[object, int] | None:
    """The gate's check: the secret in ``?secret=`` or as the basic-auth password."""
    secret = str(current_app.config.get("INBOUND_EMAIL_SECRET") or "")
    if not secret:
        body = error_body(503, "inbound email is off: BROADCASTER_INBOUND_EMAIL_SECRET is not set")
        return jsonify(body), 503
    given = request.args.get("secret", "")
    if not given and request.authorization:
        given = request.authorization.password or ""
    if not hmac.compare_digest(given.encode(), secret.encode()):
        log.warning("rejected an inbound email without the secret")
        return jsonify(error_body(401, "missing or wrong inbound email secret")), 401
    return None


def reply_text(text: str) -> str:
    """The customer's own words: the lines before the quoted announcement."""
    kept = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if _QUOTE_START.match(line):
            break
        kept.append(line)
    return "\n".join(kept).strip()


@bp.post("/sendgrid/inbound")
@authenticated_by("inbound email secret", secret_given)
def sendgrid_inbound() -> ResponseReturnValue:
    """An email to our reply address: kept on the incident it answers, made a ticket."""
    svc = services()
    found = _MESSAGE_ID.search(request.form.get("headers", ""))
    if found and seen(svc, "email-in", found.group(1)):
        return jsonify({"outcome": "seen before"})  # SendGrid retried one we handled
    _, address = parseaddr(request.form.get("from", ""))
    try:
        sender = normalise_email(address) if address else ""
    except ValidationError:
        sender = ""
    subscriber_id = svc.subscribers.find_by_contact("email", sender) if sender else None
    announcement = answered(svc, subscriber_id, "email") if subscriber_id else None
    body = reply_text(request.form.get("text", ""))
    if announcement is None or not body:
        log.info("email from %s answers no announcement of ours", mask_contact(sender or "?"))
        metrics.count(svc.redis, "inbound_email", "unmatched")
        return jsonify({"outcome": "unmatched"})
    keep_reply(
        svc,
        announcement,
        "email",
        sender,
        subscriber_id,
        body,
        found.group(1) if found else None,
        subject=request.form.get("subject", "")[:200],
    )
    metrics.count(svc.redis, "inbound_email", "reply")
    return jsonify({"outcome": "reply", "incident_id": announcement.incident_id})
