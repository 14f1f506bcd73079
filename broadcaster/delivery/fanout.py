"""The fan-out jobs: one plan job per announcement, then batch jobs per channel.

The plan job streams the audiences' subscribers, picks each person's channels, records a
``queued`` delivery per (channel, person) — the ledger refuses a second record, which is
what deduplicates people in several audiences — and enqueues batches. A batch job claims
its recipients just before the provider call and marks them after.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace

from broadcaster.delivery import drill_guard, outcomes, pacing, publishing, queues, staff, stopping
from broadcaster.delivery.batch_run import Run, units
from broadcaster.delivery.escalation import start as ask_to_confirm
from broadcaster.delivery.recovery import LeaseKeeper
from broadcaster.delivery.staff import ledger_id as staff_ledger
from broadcaster.domain import all_clear, confirm_links, whatsapp_consent
from broadcaster.domain import unsubscribe_links as unsubscribe
from broadcaster.domain.announcement import Announcement
from broadcaster.domain.incidents import closes
from broadcaster.domain.ledger import Ledger
from broadcaster.infra import redis_connect
from broadcaster.rendering import exercise, staff_message, whatsapp
from broadcaster.services import Services, services
from channels import CONTACT_FIELD
from channels.base import CONFIRM_PLACEHOLDER, UNSUBSCRIBE_PLACEHOLDER, Outgoing

log = logging.getLogger(__name__)


def plan_job(announcement_id: str) -> dict[str, int]:
    """Brief staff first where the plan says so, then fan out to the customers (now, or
    after the staff lead: ``customers_job``); returns recipients per channel."""
    svc = services()
    announcement = svc.announcements.get(announcement_id)
    if staff.applies(svc.plan, announcement):
        wait = staff.brief_first(
            svc,
            announcement,
            send=lambda channel, ids: send_batch(svc, announcement, channel, ids, for_staff=True),
            publish=lambda place: publishing.public_job(announcement_id, "webhook", place, 1, True),
        )
        if wait > 0:
            queues.enqueue_customers(svc.redis, announcement_id, wait)
            return {"customers_in": math.ceil(wait)}
    return _fan_out(svc, announcement)


def customers_job(announcement_id: str) -> dict[str, int]:
    """The customers' fan-out, once staff were briefed and the lead has passed."""
    svc = services()
    return _fan_out(svc, svc.announcements.get(announcement_id))


def _fan_out(svc: Services, announcement: Announcement) -> dict[str, int]:
    """Resolve audiences to recipients and enqueue batch jobs; returns recipients per channel."""
    announcement_id = announcement.id
    # Staff audiences had the brief (staff.py): the customers' fan-out is for the others.
    chosen = staff.customer_audiences(svc.plan, announcement)
    announcement = replace(
        announcement, audiences=drill_guard.audiences(svc.plan, announcement, chosen)
    )
    ledger = _ledger(svc, announcement, announcement_id)
    # A re-run after a crash must also pick up people it queued but never batched.
    rerun = not svc.redis.set(f"bc:plan:{announcement_id}:started", 1, nx=True, ex=7 * 24 * 3600)
    sizes = {
        name: min(ch.max_batch, int(svc.config.get(ch.batch_setting) or ch.max_batch))
        for name, ch in svc.channels.items()
    }
    pending: dict[str, list[str]] = {name: [] for name in svc.channels}
    totals: dict[str, int] = dict.fromkeys(svc.channels, 0)

    all_clear.adopt(svc.redis, svc.announcements.store, announcement)
    if all_clear.is_resolution(announcement):
        # Before reading who was reached: a delivery recorded after this finds it and
        # catches up (``_catch_up``), so nobody alerted late misses the all-clear.
        svc.redis.set(all_clear.resolution_key(announcement.incident_id), announcement_id)
    for by_channel, opted_out in all_clear.choices(
        svc.redis, svc.subscribers, svc.plan, announcement
    ):
        for channel, ids in opted_out.items():
            skipped = ledger.move(channel, ids, "skipped", ["new"])
            ledger.note(channel, {sid: {"error": "opted out"} for sid in skipped})
        for channel, ids in by_channel.items():
            new = ledger.enqueue(channel, ids)
            if rerun:
                states = ledger.states(channel, [i for i in ids if i not in set(new)])
                new += [sid for sid, state in states.items() if state == "queued"]
            pending[channel].extend(new)
            totals[channel] += len(new)
            while len(pending[channel]) >= sizes[channel]:
                batch, pending[channel] = (
                    pending[channel][: sizes[channel]],
                    pending[channel][sizes[channel] :],
                )
                queues.enqueue_batch(svc.redis, announcement_id, channel, batch)
    for channel, ids in pending.items():
        if ids:
            queues.enqueue_batch(svc.redis, announcement_id, channel, ids)
    totals["public"] = publishing.plan_public(svc, announcement, ledger)
    # An audience that must confirm: who was asked, and when to escalate.
    ask_to_confirm(svc, announcement)
    log.info("planned %s: %s", announcement_id, totals)
    return totals


def batch_job(
    announcement_id: str,
    channel: str,
    subscriber_ids: list[str],
    attempt: int = 1,
    for_staff: bool = False,
) -> dict[str, int]:
    """Send one channel's batch; returns counts of sent, failed, retried and skipped.

    ``for_staff``: the batch is of staff people, who get the agent brief (``staff.py``).
    """
    svc = services()
    announcement = svc.announcements.get(announcement_id)
    return send_batch(svc, announcement, channel, subscriber_ids, attempt, for_staff)


def send_batch(
    svc: Services,
    announcement: Announcement,
    channel: str,
    subscriber_ids: list[str],
    attempt: int = 1,
    for_staff: bool = False,
) -> dict[str, int]:
    """The batch job's work, here and now (the staff step sends its batches this way)."""
    announcement_id = announcement.id
    ledger = _ledger(svc, announcement, staff_ledger(announcement_id) if for_staff else None)
    sender = svc.channels[channel]
    people = svc.subscribers.get_many(subscriber_ids)
    states = ledger.states(channel, subscriber_ids)
    # "sending" too: after a crash the re-run takes over claims whose lease ran out.
    todo = [sid for sid in subscriber_ids if states.get(sid) in ("queued", "sending")]

    # Erased, contact removed or opted out since planning: record why, send nothing.
    reasons = {}
    for sid in todo:
        person = people.get(sid)
        if not person or not person.get(CONTACT_FIELD[channel]):
            reasons[sid] = "no contact for this channel any more"
        elif channel in (person.get("opt_outs") or []):
            reasons[sid] = "opted out"
        elif channel == "whatsapp" and not whatsapp_consent.opted_in(person):
            reasons[sid] = whatsapp_consent.NO_OPT_IN  # WhatsApp's rule: only who agreed
    gone = ledger.move(channel, list(reasons), "skipped", ["queued"])
    ledger.note(channel, {sid: {"error": reasons[sid]} for sid in gone})
    todo = [sid for sid in todo if sid not in reasons]

    rendered: dict[tuple[str, tuple[str, ...]], dict[str, str]] = {}
    asks: dict[tuple[str, tuple[str, ...]], bool] = {}  # per rendering: a confirm link in it
    # WhatsApp free text only within the person's 24-hour window (else the template).
    windows = whatsapp_consent.open_among(svc.redis, todo) if channel == "whatsapp" else set()
    secret, public_url = str(svc.config["SECRET_KEY"]), str(svc.config["PUBLIC_URL"])

    def outgoing(sid: str) -> Outgoing:
        person = people[sid]
        audiences = tuple(all_clear.audiences_for(person, announcement))
        key = (person["locale"], audiences)
        if key not in rendered:  # render once per locale × audience set, not per person
            rendered[key] = (
                staff_message.render(svc, channel, announcement, person["locale"])
                if for_staff
                else svc.renderer.render(channel, announcement, list(audiences), person["locale"])
            ).content
            if announcement.exercise:  # a drill: nobody may take it for the real thing
                rendered[key] = exercise.marked(rendered[key], person["locale"])
            asks[key] = CONFIRM_PLACEHOLDER in rendered[key].get("text", "")
        personal = {}
        if sender.unsubscribe_link:
            personal[UNSUBSCRIBE_PLACEHOLDER] = unsubscribe.link(secret, public_url, sid)
        if asks[key]:  # the rendering asks to confirm: each person gets their own link
            link = confirm_links.link(secret, public_url, announcement_id, sid)
            personal[CONFIRM_PLACEHOLDER] = link
        content = rendered[key]
        if channel == "whatsapp":
            content = whatsapp.choose(content, sid in windows)
        return Outgoing(sid, person[CONTACT_FIELD[channel]], content, personal)

    gate = pacing.gate_for(svc.redis, sender.transport, svc.config)
    # Only customer deliveries count as reached: the all-clear's customer fan-out reads the
    # set, and staff get the all-clear's own brief instead.
    reached = None if for_staff else all_clear.reached_key(announcement.incident_id, channel)
    run = Run(svc, ledger, channel, sender, gate, attempt, outgoing, reached)
    run.counts["skipped"] = len(gone)
    server = redis_connect.server_id(svc.redis)
    with LeaseKeeper(ledger, channel) as keeper:
        run.keeper = keeper
        run.send_all(units(todo, people, announcement, sender))
        # Claims still held by someone else: if their holder died, take them over once the
        # lease runs out; a holder that is alive renews and finishes them itself.
        held = [sid for sid, state in ledger.states(channel, todo).items() if state == "sending"]
        if held and not run.deferred:
            if run.stopped or stopping.sleep(ledger.lease_left(channel, held) + 0.1):
                run.stopped.extend(held)  # the requeued rest takes them over
            else:
                run.send_all(units(held, people, announcement, sender))

    # Say again whom this run reached if another Redis server answers now: a failover
    # loses what the old primary had not passed on (docs/reliability.md), and a record
    # lost would be sent again. The same server kept every mark it acknowledged.
    if server is None or redis_connect.server_id(svc.redis) != server:
        ledger.move(channel, run.sent, "sent", ["queued", "sending"], reached=reached)
    if run.stopped:  # the worker is stopping: the rest goes first to the next one
        stopping.requeue(svc.redis, announcement_id, channel, run.stopped, attempt, for_staff)
        run.counts["stopped"] = len(run.stopped)
    if run.deferred:
        # The provider is down or paused: come back when it may be up, without an attempt.
        log.info(
            "%s is paused: %d %s deliveries wait %.0fs",
            sender.transport,
            len(run.deferred),
            channel,
            run.defer_for,
        )
        queues.enqueue_batch(
            svc.redis, announcement_id, channel, run.deferred, attempt, run.defer_for, for_staff
        )
    if run.retry_ids:
        outcomes.retry_later(
            svc,
            ledger,
            announcement_id,
            channel,
            run.retry_ids,
            attempt,
            run.retry_after,
            for_staff,
        )
    if run.fallback:
        outcomes.fall_back(svc, ledger, announcement_id, channel, run.fallback, for_staff)
    if not for_staff and not all_clear.is_resolution(announcement):
        _catch_up(svc, announcement, channel, subscriber_ids)
    return run.counts


def _catch_up(
    svc: Services, announcement: Announcement, channel: str, subscriber_ids: list[str]
) -> None:
    """People this batch reached after the incident's all-clear was planned get it too.

    A big alert may still be going out (paced to the provider's rate) when the all-clear is
    planned; whoever it reaches afterwards was not in the reached set the all-clear read.
    Checked after recording, so either the all-clear's plan job saw them or they are seen
    here; the ledger refuses a second record, so a person seen by both gets one message.
    """
    incident_id = announcement.incident_id
    resolution_id = svc.redis.get(all_clear.resolution_key(incident_id))
    if not resolution_id:
        return
    if not closes(svc.announcements.get_incident(incident_id).get("status")):
        return  # reopened since: the next all-clear will read the set
    resolution = svc.announcements.get(resolution_id.decode())
    reached = all_clear.reached_among(svc.redis, incident_id, channel, subscriber_ids)
    if not reached:
        return
    send, skip = all_clear.late(svc.subscribers, svc.plan, resolution, channel, reached)
    ledger = _ledger(svc, resolution)
    skipped = ledger.move(channel, skip, "skipped", ["new"])
    ledger.note(channel, {sid: {"error": "opted out"} for sid in skipped})
    new = ledger.enqueue(channel, send)
    if new:
        log.info("%s of %s: %d reached late get the all-clear", channel, incident_id, len(new))
        queues.enqueue_batch(svc.redis, resolution.id, channel, new)


def _ledger(svc: Services, announcement: Announcement, ledger_id: str | None = None) -> Ledger:
    """The ledger deliveries are recorded in: an exercise's refuses anyone outside the drill."""
    return drill_guard.ledger_for(
        svc.redis, ledger_id or announcement.id, announcement, svc.plan, svc.subscribers
    )
