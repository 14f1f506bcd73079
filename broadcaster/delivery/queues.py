"""RQ queues: one for planning and one per channel, so a slow provider never blocks the rest."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import redis
from redis.client import Pipeline
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.serializers import JSONSerializer

PLAN_QUEUE = "plan"
PROMISE_QUEUE = "promises"
PUBLIC_QUEUE = "public"
# Workers take queues in this order: planning first, so fan-out starts at once; a reminder
# of an overdue promise and public posts are one job each and quick, so they never wait
# behind a large email batch.
QUEUE_NAMES = (PLAN_QUEUE, PROMISE_QUEUE, PUBLIC_QUEUE, "sms", "whatsapp", "email", "voice")

# Jobs name their function by dotted path. Jobs queued by a version before the layered
# layout name the old flat modules; the worker renames them, so an upgrade in the middle
# of an incident loses no announcement.
LEGACY_JOB_NAMES = {
    "broadcaster.fanout.plan_job": "broadcaster.delivery.fanout.plan_job",
    "broadcaster.fanout.batch_job": "broadcaster.delivery.fanout.batch_job",
    "broadcaster.publishing.public_job": "broadcaster.delivery.publishing.public_job",
}

_RESULT_TTL = 24 * 3600
_FAILURE_TTL = 7 * 24 * 3600
# A batch paced at a provider's rate can run long (500 SMS at 1/s: over 8 minutes); a dead
# worker is noticed by its missing heartbeat (recovery.py), not by this timeout.
_BATCH_TIMEOUT = 6 * 3600


def _retry() -> Retry:
    """Requeue a crashed or abandoned job at once, at the front (its people waited long
    enough); the ledger's claims stop any double send. Later retries back off."""
    return Retry(max=3, interval=[0, 30, 120], enqueue_at_front=True)


def queue(r: redis.Redis, name: str) -> Queue:
    """An RQ queue using the JSON serializer (jobs carry ids and plain JSON only)."""
    return Queue(name, connection=r, serializer=JSONSerializer)


def enqueue_plan(r: redis.Redis, announcement_id: str, pipeline: Pipeline | None = None) -> None:
    """Enqueue the plan job of a published announcement (inside ``pipeline`` if given)."""
    queue(r, PLAN_QUEUE).enqueue_call(
        "broadcaster.delivery.fanout.plan_job",
        args=[announcement_id],
        job_id=f"plan-{announcement_id}",
        retry=_retry(),
        result_ttl=_RESULT_TTL,
        failure_ttl=_FAILURE_TTL,
        pipeline=pipeline,
    )


def enqueue_reminder(
    r: redis.Redis, announcement_id: str, due: float, pipeline: Pipeline | None = None
) -> None:
    """Schedule the reminder of a published promise for the promised time ``due``.

    RQ's scheduler (workers run ``with_scheduler``) moves it to its queue at that time; the
    job is in Redis meanwhile, so restarts lose no reminder. One per announcement (job id).
    """
    when = datetime.fromtimestamp(math.ceil(due), tz=UTC)  # never a second early
    queue(r, PROMISE_QUEUE).enqueue_at(
        when,
        "broadcaster.delivery.promises.remind_job",
        announcement_id,
        job_id=f"promise-{announcement_id}",
        retry=Retry(max=3, interval=[30, 120, 600]),
        result_ttl=_RESULT_TTL,
        failure_ttl=_FAILURE_TTL,
        pipeline=pipeline,
    )


def enqueue_transition(
    r: redis.Redis,
    maintenance_id: str,
    kind: str,
    version: int,
    due: float,
    minutes: float | None = None,
    pipeline: Pipeline | None = None,
) -> str:
    """Schedule one transition of a maintenance (a reminder, its start, its end) for ``due``.

    On the promises queue: like a promise's reminder it waits in Redis for its time, and
    RQ's scheduler moves it to the queue then. The job carries the maintenance's version,
    so one scheduled before the plan changed does nothing. Returns the job id.
    """
    job_id = maintenance_job_id(maintenance_id, kind, version, minutes)
    when = datetime.fromtimestamp(math.ceil(due), tz=UTC)  # never a second early
    queue(r, PROMISE_QUEUE).enqueue_at(
        when,
        "broadcaster.delivery.maintenances.transition_job",
        maintenance_id,
        kind,
        version,
        minutes,
        job_id=job_id,
        retry=Retry(max=3, interval=[30, 120, 600]),
        result_ttl=_RESULT_TTL,
        failure_ttl=_FAILURE_TTL,
        pipeline=pipeline,
    )
    return job_id


def maintenance_job_id(maintenance_id: str, kind: str, version: int, minutes: float | None) -> str:
    suffix = f"-{minutes:g}" if minutes is not None else ""
    return f"maint-{maintenance_id}-v{version}-{kind}{suffix}".replace(".", "_")


def unschedule(r: redis.Redis, job_ids: list[str]) -> None:
    """Drop scheduled jobs (a maintenance's older plan): tidy only, stale ones do nothing."""
    q = queue(r, PROMISE_QUEUE)
    registry = q.scheduled_job_registry
    for job_id in job_ids:
        if registry.remove(job_id):  # still waiting (one that ran keeps its result)
            try:
                Job.fetch(job_id, connection=r, serializer=JSONSerializer).delete()
            except NoSuchJobError:
                pass


def retry_delay(config: Mapping[str, Any], attempt: int, retry_after: float | None) -> float:
    """Seconds before attempt ``attempt + 1``: doubling backoff, capped, never under Retry-After."""
    backoff = min(
        float(config["RETRY_BACKOFF"]) * 2 ** (attempt - 1), float(config["RETRY_BACKOFF_MAX"])
    )
    return max(backoff, retry_after or 0.0)


def _enqueue(
    q: Queue,
    func: str,
    args: list,
    delay: float,
    job_id: str | None = None,
    at_front: bool = False,
) -> None:
    options: dict[str, Any] = {
        "result_ttl": _RESULT_TTL,
        "failure_ttl": _FAILURE_TTL,
        "job_timeout": _BATCH_TIMEOUT,
        "retry": _retry(),
    }
    if job_id:
        options["job_id"] = job_id
    if delay > 0:
        # RQ's schedule has one-second resolution and rounds down: round up instead, so a
        # provider's Retry-After is never cut short.
        when = datetime.fromtimestamp(math.ceil(time.time() + delay), tz=UTC)
        q.enqueue_at(when, func, *args, **options)
    else:
        q.enqueue(func, *args, at_front=at_front, **options)


def enqueue_customers(r: redis.Redis, announcement_id: str, delay: float) -> None:
    """Enqueue the customers' fan-out of an announcement ``delay`` seconds from now (staff
    were briefed first); one job per announcement, whoever enqueues it again."""
    _enqueue(
        queue(r, PLAN_QUEUE),
        "broadcaster.delivery.fanout.customers_job",
        [announcement_id],
        delay,
        job_id=f"customers-{announcement_id}",
    )


def enqueue_public(
    r: redis.Redis,
    announcement_id: str,
    channel: str,
    place: str,
    attempt: int = 1,
    delay: float = 0,
    for_staff: bool = False,
) -> None:
    """Enqueue the job that posts an announcement (or, ``for_staff``, its brief) to one place."""
    _enqueue(
        queue(r, PUBLIC_QUEUE),
        "broadcaster.delivery.publishing.public_job",
        # Jobs for customers keep the arguments earlier versions queued and read.
        [announcement_id, channel, place, attempt] + ([True] if for_staff else []),
        delay,
    )


def enqueue_notice(
    r: redis.Redis, announcement_id: str, attempt: int = 1, delay: float = 0
) -> None:
    """Enqueue the job that tells the approvers an announcement waits for them."""
    _enqueue(
        queue(r, PUBLIC_QUEUE),
        "broadcaster.delivery.approver_notices.notice_job",
        [announcement_id, attempt],
        delay,
    )


def enqueue_digest(
    r: redis.Redis,
    ids: list[str] | None,
    digest_id: str = "",
    attempt: int = 1,
    delay: float = 0,
) -> None:
    """Enqueue the digest of announcements that started waiting within a notice window
    (``ids`` None: those gathered when it runs)."""
    _enqueue(
        queue(r, PUBLIC_QUEUE),
        "broadcaster.delivery.approver_notices.digest_job",
        [ids, digest_id, attempt],
        delay,
    )


def enqueue_batch(
    r: redis.Redis,
    announcement_id: str,
    channel: str,
    subscriber_ids: list[str],
    attempt: int = 1,
    delay: float = 0,
    for_staff: bool = False,
    at_front: bool = False,
) -> None:
    """Enqueue one batch job for a channel, now or after ``delay`` seconds (``for_staff``:
    a batch of staff people, who get the agent brief; ``at_front``: before the others, as
    the rest of a batch whose worker stopped)."""
    _enqueue(
        queue(r, channel),
        "broadcaster.delivery.fanout.batch_job",
        [announcement_id, channel, subscriber_ids, attempt] + ([True] if for_staff else []),
        delay,
        at_front=at_front,
    )


def enqueue_signup_sender(r: redis.Redis) -> None:
    """Enqueue the job that sends the messages of every sign-up waiting in the outbox."""
    _enqueue(queue(r, PUBLIC_QUEUE), "broadcaster.delivery.signup_messages.sender_job", [], 0)


def enqueue_signup_message(
    r: redis.Redis, signup_id: str, attempt: int = 1, delay: float = 0
) -> None:
    """Enqueue another attempt at one sign-up's message (after a transient error); one job
    per sign-up and attempt, whoever enqueues it again."""
    _enqueue(
        queue(r, PUBLIC_QUEUE),
        "broadcaster.delivery.signup_messages.message_job",
        [signup_id, attempt],
        delay,
        job_id=f"signup-{signup_id}-{attempt}",
    )


def enqueue_helpdesk(
    r: redis.Redis, job: str, incident_id: str, attempt: int = 1, delay: float = 0
) -> None:
    """Enqueue a helpdesk job (``sync_job``, ``deactivate_job``) for one incident."""
    _enqueue(
        queue(r, PUBLIC_QUEUE),
        f"broadcaster.delivery.helpdesk_sync.{job}",
        [incident_id, attempt],
        delay,
    )


def enqueue_ticket(
    r: redis.Redis,
    reply: dict[str, Any],
    attempt: int = 1,
    delay: float = 0,
    only: str | None = None,
) -> None:
    """Enqueue the job that turns a customer's reply into a helpdesk ticket or comment."""
    _enqueue(
        queue(r, PUBLIC_QUEUE),
        "broadcaster.delivery.reply_tickets.ticket_job",
        [reply, attempt, only],
        delay,
    )


def enqueue_escalation(r: redis.Redis, announcement_id: str, step: int, due: float) -> None:
    """Schedule escalation ``step`` of an announcement that asks to confirm for ``due``.

    On the promises queue, like a promise's reminder: it waits in Redis for its time and
    RQ's scheduler moves it to the queue then. One job per announcement and step (job id).
    """
    when = datetime.fromtimestamp(math.ceil(due), tz=UTC)  # never a second early
    queue(r, PROMISE_QUEUE).enqueue_at(
        when,
        "broadcaster.delivery.escalation.step_job",
        announcement_id,
        step,
        job_id=f"confirm-{announcement_id}-{step}",
        retry=_retry(),
        result_ttl=_RESULT_TTL,
        failure_ttl=_FAILURE_TTL,
    )


def enqueue_help(
    r: redis.Redis, announcement_id: str, subscriber_id: str, attempt: int = 1, delay: float = 0
) -> None:
    """Enqueue the job that tells staff a person answered HELP (at once, before the rest)."""
    _enqueue(
        queue(r, PUBLIC_QUEUE),
        "broadcaster.delivery.escalation.help_job",
        [announcement_id, subscriber_id, attempt],
        delay,
        at_front=True,
    )
