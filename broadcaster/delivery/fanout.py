"""The fan-out jobs: one plan job per announcement, then batch jobs per channel.

The plan job streams the audiences' subscribers, picks each person's channels, records a
``queued`` delivery per (channel, person) — the ledger refuses a second record, which is
what deduplicates people in several audiences — and enqueues batches. A batch job claims
its recipients just before the provider call and marks them after.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from broadcaster.delivery import drill_guard, outcomes, pacing, publishing, queues, staff, stopping
from broadcaster.delivery.escalation import start as ask_to_confirm
from broadcaster.delivery.recovery import CLAIM_LEASE, LeaseKeeper
from broadcaster.delivery.staff import ledger_id as staff_ledger
from broadcaster.domain import all_clear, confirm_links, whatsapp_consent
from broadcaster.domain import unsubscribe_links as unsubscribe
from broadcaster.domain.announcement import Announcement
from broadcaster.domain.incidents import closes
from broadcaster.domain.ledger import Ledger
from broadcaster.rendering import exercise, staff_message, whatsapp
from broadcaster.services import Services, services
from channels import CONTACT_FIELD
from channels.base import CONFIRM_PLACEHOLDER, UNSUBSCRIBE_PLACEHOLDER, Outgoing

log = logging.getLogger(__name__)

# A provider paused (429) or down (breaker open) for longer than this: the batch is
# rescheduled for when it may be up, instead of holding a worker (app config may override).
INLINE_WAIT = 10.0


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
        personal = {}
        if sender.unsubscribe_link:
            personal[UNSUBSCRIBE_PLACEHOLDER] = unsubscribe.link(secret, public_url, sid)
        if CONFIRM_PLACEHOLDER in rendered[key].get("text", ""):  # it asks to confirm
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
    run = _Run(svc, ledger, channel, sender, gate, attempt, outgoing, reached)
    run.counts["skipped"] = len(gone)
    with LeaseKeeper(ledger, channel) as keeper:
        run.keeper = keeper
        run.send_all(_units(todo, people, announcement, sender))
        # Claims still held by someone else: if their holder died, take them over once the
        # lease runs out; a holder that is alive renews and finishes them itself.
        held = [sid for sid, state in ledger.states(channel, todo).items() if state == "sending"]
        if held and not run.deferred:
            if run.stopped or stopping.sleep(ledger.lease_left(channel, held) + 0.1):
                run.stopped.extend(held)  # the requeued rest takes them over
            else:
                run.send_all(_units(held, people, announcement, sender))

    # Say again whom this run reached: a Redis failover loses what the old primary had
    # not passed on (docs/reliability.md), and a record lost would be sent again.
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


def _units(
    todo: list[str],
    people: dict[str, dict[str, Any]],
    announcement: Announcement,
    sender: Any,
) -> list[list[str]]:
    """What is claimed, paced and recorded together.

    Email: one provider request per rendering (≤ ``per_request`` recipients). SMS (one
    message per request): a *step* of messages, sent concurrently; a step costs a handful of
    Redis round trips (claim, rate reservation, record), not a handful per message.
    """
    if sender.per_request == 1:
        size = sms_steps(sender)[0]
        return [todo[i : i + size] for i in range(0, len(todo), size)]
    groups: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for sid in todo:
        person = people[sid]
        audiences = tuple(all_clear.audiences_for(person, announcement))
        groups.setdefault((person["locale"], audiences), []).append(sid)
    size = sender.per_request
    return [ids[i : i + size] for ids in groups.values() for i in range(0, len(ids), size)]


# SMS steps a batch job works on at once: while one step waits for Twilio, the next is
# being claimed and paced, and the last recorded. Together they hold SMS_CONCURRENCY claims
# at most, so a crash re-sends no more than that.
SMS_STEPS_IN_FLIGHT = 2


def sms_steps(sender: Any) -> tuple[int, int]:
    """(messages per SMS step, steps at once): SMS_CONCURRENCY requests in flight at most."""
    concurrency = max(1, int(getattr(sender, "concurrency", 1)))
    at_once = min(SMS_STEPS_IN_FLIGHT, concurrency)
    return concurrency // at_once, at_once


class _Run:
    """One batch job's sending: claim a unit just before its request, pace it, record it."""

    def __init__(
        self,
        svc: Services,
        ledger: Ledger,
        channel: str,
        sender: Any,
        gate: pacing.Gate | None,
        attempt: int,
        outgoing: Callable[[str], Outgoing],
        reached: str | None = None,
    ) -> None:
        self.svc, self.ledger, self.channel, self.sender = svc, ledger, channel, sender
        self.gate, self.attempt, self.outgoing = gate, attempt, outgoing
        self.reached = reached  # the incident's reached set for this channel
        self.keeper: LeaseKeeper | None = None
        self.counts = {"sent": 0, "failed": 0, "retry": 0, "skipped": 0}
        self.retry_ids: list[str] = []
        self.retry_after = 0.0
        self.deferred: list[str] = []
        self.defer_for = 0.0
        self.fallback: list[str] = []
        self.sent: list[str] = []
        self.stopped: list[str] = []  # not sent because the worker is stopping
        self._lock = threading.Lock()
        self._pausing = threading.Event()
        self._inline_wait = float(svc.config.get("PROVIDER_WAIT_INLINE", INLINE_WAIT))

    def send_all(self, units: list[list[str]]) -> None:
        """Send every unit; SMS steps a few at a time (each sends its messages concurrently)."""
        workers = sms_steps(self.sender)[1] if self.sender.per_request == 1 else 1
        if workers <= 1 or len(units) <= 1:
            for unit in units:
                self._send(unit)
            return
        with ThreadPoolExecutor(max_workers=min(workers, len(units))) as pool:
            for future in [pool.submit(self._send, unit) for unit in units]:
                future.result()  # a bug in a unit is a bug in the job: let RQ see it

    def _send(self, unit: list[str]) -> None:
        if stopping.requested():
            self._stop(unit)
            return
        if self._pausing.is_set():
            self._defer(unit, 0.0)
            return
        claimed = self.ledger.claim(self.channel, unit, CLAIM_LEASE)
        if not claimed:
            return  # sent, or being sent, by another run
        assert self.keeper is not None
        self.keeper.hold(claimed)
        try:
            # Render before taking a rate slot, so the request leaves right on its slot.
            batch = [self.outgoing(sid) for sid in claimed]
            n = -(-len(batch) // self.sender.per_request)  # provider requests
            try:
                gate = self.gate
                later = gate.wait_turn(self._inline_wait, n, stopping.event()) if gate else 0.0
            except pacing.Stopped:
                self.ledger.release(self.channel, claimed)
                self._stop(claimed)
                return
            if later:
                self.ledger.release(self.channel, claimed)
                self._pausing.set()
                self._defer(claimed, later)
                return
            if n > 1 and self.gate is not None and self.gate.spacing:
                # One reservation for the step: each message leaves on its own slot.
                first, spacing = time.monotonic(), self.gate.spacing
                batch = [
                    replace(m, not_before=first + i * spacing, stop=stopping.event())
                    for i, m in enumerate(batch)
                ]
            results = self.sender.send(batch)
            if self.gate is not None:  # what a stop held back says nothing of the provider
                self.gate.observe([r for r in results if not r.extra.get("stopped")])
            outcomes.record(
                self.ledger,
                self.channel,
                batch,
                results,
                self.attempt,
                self.sender.transport,
                self.reached,
            )
        finally:
            self.keeper.drop(claimed)
        with self._lock:
            for result in results:
                if result.extra.get("stopped"):  # never sent: back to the queue's front
                    self.stopped.append(result.subscriber_id)
                    continue
                self.counts[result.outcome] += 1
                if result.outcome == "sent":
                    self.sent.append(result.subscriber_id)
                if result.outcome == "retry" and result.extra.get("held"):
                    # Held back by the channel, never sent: no attempt spent (as a pause).
                    self.deferred.append(result.subscriber_id)
                    self.defer_for = max(self.defer_for, result.retry_after or 0.0)
                elif result.outcome == "retry":
                    self.retry_ids.append(result.subscriber_id)
                    self.retry_after = max(self.retry_after, result.retry_after or 0.0)
                elif result.outcome == "failed":  # their next channel, or the plan's fallback
                    self.fallback.append(result.subscriber_id)

    def _stop(self, unit: list[str]) -> None:
        with self._lock:
            self.stopped.extend(unit)

    def _defer(self, unit: list[str], seconds: float) -> None:
        with self._lock:
            self.deferred.extend(unit)
            self.defer_for = max(self.defer_for, seconds)
