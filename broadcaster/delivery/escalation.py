"""Escalation: people who do not confirm in time get their next channel, then the next.

After the customers' fan-out of an announcement that asks to confirm
(domain/confirm_plan.py), ``start`` records whom it asked (domain/confirmations.py) and
schedules step 1 ``within_minutes`` later (RQ ``enqueue_at`` on the promises queue, like a
promise's reminder). Each step gives everyone still ``waiting`` the next rung of their
ladder (domain/channel_order.py: their own order, else the plan's ``escalate`` list) —
the first channel they have no delivery of this announcement by — and schedules the next
step; whoever has no rung left is ``unreachable``, for a person to call.

Nobody is contacted twice on one channel: a rung is a new delivery in the announcement's
ledger, which refuses a second record per (channel, person). A step re-run after a crash
reads the channels its first run chose (``Confirmations.choose``), so it never climbs two
rungs at once, and batches whatever it had queued but not sent; the batch claims stop any
double send. Escalation stops when the incident is resolved, or when a later announcement
of the incident asks again. A drill escalates only within the drill audiences (its ledger
refuses anyone else, delivery/drill_guard.py).

``help_job``: a "2"/HELP answer reaches staff at once — each internal Slack/Teams webhook
target and the incident's Slack thread, with a link to the incident page.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from broadcaster.delivery import drill_guard, queues, staff
from broadcaster.delivery.approver_notices import chat_targets
from broadcaster.delivery.publishing import post_in_thread
from broadcaster.domain.announcement import Announcement
from broadcaster.domain.channel_order import asking_audiences, rungs_for
from broadcaster.domain.confirmations import Confirmations, incident_key
from broadcaster.domain.errors import NotFound
from broadcaster.domain.incidents import closes
from broadcaster.domain.ledger import Ledger
from broadcaster.infra import metrics
from broadcaster.infra.logs import mask_contact
from broadcaster.services import Services, services
from channels import PERSONAL
from channels.base import DeliveryError, PublicPost, TransientDeliveryError

log = logging.getLogger(__name__)

HELP_EVENT = "confirmation.help"
IN_FLIGHT = frozenset({"queued", "sending"})


def _asking(svc: Services, announcement: Announcement) -> list[str]:
    """The audiences of its customers' fan-out that ask to confirm (a drill: the drill's)."""
    chosen = staff.customer_audiences(svc.plan, announcement)
    audiences = drill_guard.audiences(svc.plan, announcement, chosen)
    return asking_audiences(svc.plan, announcement, audiences)


def window(svc: Services, asking: list[str]) -> float:
    """Seconds people have to confirm: the shortest ``within_minutes`` of the audiences."""
    minutes = min(
        svc.plan.audiences[a].confirm.within_minutes  # type: ignore[union-attr]
        for a in asking
    )
    return minutes * float(svc.config.get("CONFIRM_MINUTE_SECONDS", 60))


def _ledger(svc: Services, announcement: Announcement) -> Ledger:
    return drill_guard.ledger_for(
        svc.redis, announcement.id, announcement, svc.plan, svc.subscribers
    )


def start(svc: Services, announcement: Announcement) -> int:
    """After the fan-out: record whom the announcement asks, schedule step 1; how many."""
    asking = _asking(svc, announcement)
    if not asking:
        return 0
    book = Confirmations(svc.redis, announcement.id)
    asked = 0
    for chunk in svc.subscribers.ids_in(asking):
        waiting: list[str] = []
        nowhere: list[str] = []
        for sid, person in svc.subscribers.get_many(chunk).items():
            rungs = rungs_for(person, announcement, svc.plan, asking)
            if rungs is None:
                continue
            (waiting if rungs else nowhere).append(sid)
        book.ask(announcement.incident_id, waiting, nowhere)
        asked += len(waiting)
    queues.enqueue_escalation(svc.redis, announcement.id, 1, time.time() + window(svc, asking))
    log.info("%s asks %d people to confirm", announcement.id, asked)
    return asked


def _stop_reason(svc: Services, announcement: Announcement, book: Confirmations) -> str | None:
    if book.finished():
        return book.finished()
    try:
        incident = svc.announcements.get_incident(announcement.incident_id)
    except NotFound:
        return "incident gone"
    if closes(incident.get("status")):
        return "resolved"
    latest = svc.redis.zrevrange(incident_key(announcement.incident_id), 0, 0)
    if latest and latest[0].decode() != announcement.id:
        return "superseded"  # a later announcement asks again; its escalation takes over
    return None


def step_job(announcement_id: str, step: int) -> dict[str, Any]:
    """Escalation ``step``: the next channel for everyone still waiting; counts."""
    svc = services()
    try:
        announcement = svc.announcements.get(announcement_id)
    except NotFound:
        return {"stopped": "announcement gone"}
    book = Confirmations(svc.redis, announcement_id)
    reason = _stop_reason(svc, announcement, book)
    if reason:
        book.finish(reason)
        return {"stopped": reason}
    asking = _asking(svc, announcement)
    if not asking:  # the plan changed since: no audience of it asks to confirm any more
        book.finish("plan changed")
        return {"stopped": "plan changed"}
    ledger = _ledger(svc, announcement)
    by_channel: dict[str, list[str]] = {}
    unreachable: list[str] = []
    erased: list[str] = []
    pending = 0  # their last message has not left yet (a paced or paused provider)
    for chunk in book.ids_in("waiting"):
        picks = book.chosen(step, chunk)  # a re-run: what the first run chose
        fresh: dict[str, str] = {}
        todo = [sid for sid in chunk if sid not in picks]
        people = svc.subscribers.get_many(todo)
        erased += [sid for sid in todo if sid not in people]
        states = {channel: ledger.states(channel, todo) for channel in PERSONAL}
        for sid, person in people.items():
            theirs = {channel: states[channel].get(sid) for channel in PERSONAL}
            if IN_FLIGHT & set(theirs.values()):
                pending += 1  # the window starts when a message leaves: next step
                continue
            rungs = rungs_for(person, announcement, svc.plan, asking) or []
            untried = next((c for c in rungs if theirs.get(c) is None), None)
            if untried:
                fresh[sid] = untried
            else:
                unreachable.append(sid)
        picks.update(book.choose(step, fresh))
        for sid, channel in picks.items():
            by_channel.setdefault(channel, []).append(sid)
    escalated: list[str] = []
    for channel, ids in by_channel.items():
        new = set(ledger.enqueue(channel, ids))
        # A re-run batches again what its first run queued; claims stop a second send.
        states = ledger.states(channel, [sid for sid in ids if sid not in new])
        todo = [sid for sid in ids if sid in new or states.get(sid) == "queued"]
        ledger.note(channel, {sid: {"escalation": step} for sid in new})
        size = int(svc.config.get(svc.channels[channel].batch_setting) or 500)
        for i in range(0, len(todo), size):
            queues.enqueue_batch(svc.redis, announcement_id, channel, todo[i : i + size])
        escalated += ids
        metrics.count(svc.redis, "escalations", channel, amount=len(new))
    book.escalated(escalated, step)
    gone = book.move(unreachable, "unreachable", ["waiting"])
    book.note(gone, {"reason": "no answer on any channel"})
    book.note(book.move(erased, "unreachable", ["waiting"]), {"reason": "erased"})
    if escalated or pending:
        due = time.time() + window(svc, asking)
        queues.enqueue_escalation(svc.redis, announcement_id, step + 1, due)
    else:
        book.finish("done")
    log.info(
        "escalation %d of %s: %d escalated, %d unreachable",
        step,
        announcement_id,
        len(escalated),
        len(gone),
    )
    return {"escalated": len(escalated), "unreachable": len(gone), "pending": pending}


def help_job(announcement_id: str, subscriber_id: str, attempt: int = 1) -> str:
    """Tell staff at once that a person asked for help: chat targets and the Slack thread."""
    svc = services()
    try:
        announcement = svc.announcements.get(announcement_id)
    except NotFound:
        return "skipped: announcement gone"
    person = svc.subscribers.get(subscriber_id) or {}
    contact = person.get("phone") or person.get("email") or ""
    link = f"{str(svc.config['PUBLIC_URL']).rstrip('/')}/admin/incidents/{announcement.incident_id}"
    # Contacts stay masked in chat; the incident page shows them to whoever may see them.
    title = f"Call back: {mask_contact(contact) or subscriber_id} asked for help"
    text = f"{title} ({announcement.title}) {link}"
    done_key = f"bc:cf:{announcement_id}:help-told:{subscriber_id}"
    done = {m.decode() for m in svc.redis.smembers(done_key)}
    later: list[float] = []
    event = {"title": title, "text": announcement.title, "link": link}
    for target in chat_targets(svc):
        place = f"webhook:{target.name}"
        if place in done:
            continue
        post = PublicPost(
            announcement.id,
            announcement.incident_id,
            text,
            link,
            svc.plan.default_locale,
            f"{announcement_id}:help:{subscriber_id}:{target.name}",
            event=event,
            event_type=HELP_EVENT,
        )
        try:
            svc.webhook.deliver(target, post)
        except TransientDeliveryError as exc:
            later.append(exc.retry_after or 0.0)
            continue
        except DeliveryError as exc:
            log.warning("help notice for %s: %s", announcement_id, exc.reason)
        svc.redis.sadd(done_key, place)
    if svc.slack.configured and "slack" not in done:
        try:
            post_in_thread(svc, announcement.incident_id, text)
        except TransientDeliveryError as exc:
            later.append(exc.retry_after or 0.0)
        except DeliveryError as exc:
            log.warning("help notice for %s: %s", announcement_id, exc.reason)
            svc.redis.sadd(done_key, "slack")
        else:
            svc.redis.sadd(done_key, "slack")
    svc.redis.expire(done_key, 7 * 24 * 3600)
    if later and attempt < int(svc.config["MAX_ATTEMPTS"]):
        delay = queues.retry_delay(svc.config, attempt, max(later))
        queues.enqueue_help(svc.redis, announcement_id, subscriber_id, attempt + 1, delay)
        return f"told, {len(later)} again in {delay:.0f}s"
    return "told"
