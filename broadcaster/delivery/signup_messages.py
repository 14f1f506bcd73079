"""Send the message of every sign-up exactly once: the confirmation request, or the note
that the address is subscribed already.

``SignupService.request`` puts each sign-up in the outbox list and, when no sender is
awake, queues ``sender_job``. The sender drains the outbox in batches: emails that differ
only in their link share one SendGrid request (the link is a per-person substitution),
SMS go out concurrently through the SMS channel. A burst of sign-ups is a few jobs, not one
per sign-up.

Each message is claimed with a Redis ``SET NX`` before the provider call and marked after,
so a sign-up handled twice (a sender re-run after a crash, a retry queued twice) is sent
once. A sender that dies mid-batch loses that batch (taken from the outbox, perhaps
claimed): at most once, like the delivery ledger's claims; the people can simply ask again.
A provider's transient error (timeout, 5xx, 429) releases the claim and queues
``message_job`` for that sign-up with the deliveries' backoff, up to ``MAX_ATTEMPTS``.
"""

from __future__ import annotations

import logging

from broadcaster.delivery import queues
from broadcaster.domain.signups import OUTBOX_KEY, SENDER_AWAKE_KEY, SENDER_AWAKE_TTL, Signup
from broadcaster.infra import metrics
from broadcaster.infra.logs import mask_contact
from broadcaster.rendering import signup_messages
from broadcaster.services import Services, services
from channels.base import Outgoing

log = logging.getLogger(__name__)

BATCH = 500  # sign-ups taken from the outbox at a time


def sent_key(signup_id: str) -> str:
    """The claim on a sign-up's message: ``sending``, then ``sent`` or ``failed``."""
    return f"bc:signup:sent:{signup_id}"


def sender_job() -> str:
    """Send the messages of the sign-ups in the outbox until it is empty; the count."""
    svc = services()
    sent = 0
    while True:
        svc.redis.expire(SENDER_AWAKE_KEY, SENDER_AWAKE_TTL)  # still awake: nobody wakes another
        taken = svc.redis.lpop(OUTBOX_KEY, BATCH)
        if taken:
            sent += _send(svc, [raw.decode() for raw in taken], attempt=1)
            continue
        svc.redis.delete(SENDER_AWAKE_KEY)
        # A sign-up stored between the pop and the delete saw us awake and woke nobody.
        if svc.redis.llen(OUTBOX_KEY) and svc.redis.set(
            SENDER_AWAKE_KEY, 1, nx=True, ex=SENDER_AWAKE_TTL
        ):
            continue
        return f"sent {sent}"


def message_job(signup_id: str, attempt: int = 1) -> str:
    """Another attempt at one sign-up's message (after a transient error)."""
    return f"sent {_send(services(), [signup_id], attempt)}"


def _send(svc: Services, signup_ids: list[str], attempt: int) -> int:
    """Claim, send and mark the messages of ``signup_ids``; how many were sent."""
    pipe = svc.redis.pipeline(transaction=False)
    for signup_id in signup_ids:
        pipe.hgetall(f"bc:signup:{signup_id}")
    # Confirmed or expired before its message went: nothing to send.
    signups = [Signup.from_redis(raw) for raw in pipe.execute() if raw]
    ttl = svc.signups.ttl + 3600
    for signup in signups:
        pipe.set(sent_key(signup.id), "sending", nx=True, ex=ttl)
    claimed = [s for s, won in zip(signups, pipe.execute(), strict=True) if won]
    by_channel: dict[str, list[Outgoing]] = {}
    for signup in claimed:
        content, personal = signup_messages.render(svc, signup)
        # The id names no subscriber: receipts for it find no delivery to move.
        outgoing = Outgoing(f"signup:{signup.id}", signup.contact, content, personal)
        by_channel.setdefault(signup.channel, []).append(outgoing)
    known = {s.id: s for s in claimed}
    sent = 0
    for channel, batch in by_channel.items():
        for result in svc.channels[channel].send(batch):
            signup = known[result.subscriber_id.removeprefix("signup:")]
            sent += _record(svc, signup, result.outcome, result.error, result.retry_after, attempt)
    return sent


def _record(
    svc: Services,
    signup: Signup,
    outcome: str,
    error: str | None,
    retry_after: float | None,
    attempt: int,
) -> int:
    key = sent_key(signup.id)
    event = f"{signup.kind}_{signup.channel}"
    if outcome == "sent":
        svc.redis.set(key, "sent", xx=True, keepttl=True)
        metrics.count(svc.redis, "signups", event, "sent")
        return 1
    if outcome == "retry" and attempt < int(svc.config["MAX_ATTEMPTS"]):
        svc.redis.delete(key)  # not sent: the next attempt may claim it
        delay = queues.retry_delay(svc.config, attempt, retry_after)
        queues.enqueue_signup_message(svc.redis, signup.id, attempt + 1, delay)
        metrics.count(svc.redis, "signups", event, "retried")
        return 0
    svc.redis.set(key, "failed", xx=True, keepttl=True)
    log.warning("sign-up message to %s failed: %s", mask_contact(signup.contact), error or "?")
    metrics.count(svc.redis, "signups", event, "failed")
    return 0
