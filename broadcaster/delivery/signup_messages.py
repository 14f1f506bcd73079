"""Send the message of a sign-up exactly once: the confirmation request, or the note that
the address is subscribed already.

``SignupService.request`` stores the sign-up and queues ``message_job`` (one RQ job per
sign-up, ``job_id`` ``signup-<id>-<attempt>``). The job claims the sign-up's message with a
Redis ``SET NX`` before the provider call and marks it after, so a job run twice (a retry
after a crash, a second enqueue) sends nothing twice: like the delivery ledger, a claim
lost with a crashed worker is not sent again (the person can simply ask again). A
provider's transient error (timeout, 5xx, 429) releases the claim and queues the next
attempt with the deliveries' backoff, up to ``MAX_ATTEMPTS``.
"""

from __future__ import annotations

import logging

from broadcaster.delivery import queues
from broadcaster.infra import metrics
from broadcaster.infra.logs import mask_contact
from broadcaster.rendering import signup_messages
from broadcaster.services import services
from channels.base import Outgoing

log = logging.getLogger(__name__)


def sent_key(signup_id: str) -> str:
    """The claim on a sign-up's message: ``sending``, then ``sent`` or ``failed``."""
    return f"bc:signup:sent:{signup_id}"


def message_job(signup_id: str, attempt: int = 1) -> str:
    """Send the message of one sign-up (at most once); the outcome."""
    svc = services()
    signup = svc.signups.get(signup_id)
    if signup is None:
        return "skipped: confirmed or expired before its message went"
    key = sent_key(signup_id)
    if not svc.redis.set(key, "sending", nx=True, ex=svc.signups.ttl + 3600):
        return "skipped: sent already"
    content, personal = signup_messages.render(svc, signup)
    # The id names no subscriber: receipts for it find no delivery to move.
    outgoing = Outgoing(f"signup:{signup_id}", signup.contact, content, personal)
    [result] = svc.channels[signup.channel].send([outgoing])
    event = f"{signup.kind}_{signup.channel}"
    if result.outcome == "sent":
        svc.redis.set(key, "sent", xx=True, keepttl=True)
        metrics.count(svc.redis, "signups", event, "sent")
        return "sent"
    if result.outcome == "retry" and attempt < int(svc.config["MAX_ATTEMPTS"]):
        svc.redis.delete(key)  # not sent: the next attempt may claim it
        delay = queues.retry_delay(svc.config, attempt, result.retry_after)
        queues.enqueue_signup_message(svc.redis, signup_id, attempt + 1, delay)
        metrics.count(svc.redis, "signups", event, "retried")
        return f"again in {delay:.0f}s"
    svc.redis.set(key, "failed", xx=True, keepttl=True)
    log.warning(
        "sign-up message to %s failed: %s", mask_contact(signup.contact), result.error or "?"
    )
    metrics.count(svc.redis, "signups", event, "failed")
    return "failed"
