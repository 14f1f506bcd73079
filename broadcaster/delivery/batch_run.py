"""One batch job's sending (``delivery/fanout.py``): what is claimed, paced and recorded
together, and the run that sends it — claim a unit just before its request, wait for its
rate slot, send, record, and sort out what to retry, defer, fall back or leave for the
next worker when this one stops.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from broadcaster.delivery import outcomes, pacing, stopping
from broadcaster.delivery.recovery import CLAIM_LEASE, LeaseKeeper
from broadcaster.domain import all_clear
from broadcaster.domain.announcement import Announcement
from broadcaster.domain.ledger import Ledger
from broadcaster.services import Services
from channels.base import Outgoing

# A provider paused (429) or down (breaker open) for longer than this: the batch is
# rescheduled for when it may be up, instead of holding a worker (app config may override).
INLINE_WAIT = 10.0


def units(
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


class Run:
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
