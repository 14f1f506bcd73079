"""Stopping a worker in seconds, in the middle of a paced batch.

RQ's warm shutdown (SIGTERM, Ctrl-C) waits for the current job, and a batch paced at a
provider's rate can run for many minutes (500 SMS at 1/s). So the worker also sets this
process's stop request (``recovery.BroadcastWorker``); a batch checks it between its steps
and while it waits for a rate slot, gives back the claims it has not used, and puts the
rest of its recipients back at the *front* of its queue: the next worker goes on where this
one stopped, and nobody is sent to twice.
"""

from __future__ import annotations

import logging
import os
import threading

import redis

from broadcaster.delivery import queues

log = logging.getLogger(__name__)

_requested = threading.Event()
_pipe: tuple[int, int] | None = None


def install() -> None:
    """Get ready to be asked from a signal handler (the worker calls this at start).

    The handler only writes a byte to a pipe, which is safe anywhere; a thread reads it
    and sets the request. Setting it in the handler itself could wait forever for the
    event's own lock, held by the very code the signal interrupted.
    """
    global _pipe
    if _pipe is not None:
        return
    _pipe = os.pipe()
    threading.Thread(target=_relay, args=(_pipe[0],), name="stop-request", daemon=True).start()


def _relay(fd: int) -> None:
    os.read(fd, 1)
    _requested.set()


def request() -> None:
    """Ask the batch running in this process to stop after its current messages."""
    if _pipe is None:
        _requested.set()
    else:
        os.write(_pipe[1], b"s")


def requested() -> bool:
    """Whether this process was asked to stop."""
    return _requested.is_set()


def event() -> threading.Event:
    """The stop request, for waits that must end when it comes (a rate slot, a lease)."""
    return _requested


def sleep(seconds: float) -> bool:
    """Sleep ``seconds`` unless a stop is requested meanwhile; True if it was."""
    return _requested.wait(max(0.0, seconds))


def requeue(
    r: redis.Redis,
    announcement_id: str,
    channel: str,
    subscriber_ids: list[str],
    attempt: int,
    for_staff: bool,
) -> None:
    """Put the recipients a stopped batch did not reach back at the front of its queue."""
    log.info(
        "stopping: %d %s deliveries of %s go back to the front of the queue",
        len(subscriber_ids),
        channel,
        announcement_id,
    )
    queues.enqueue_batch(
        r, announcement_id, channel, subscriber_ids, attempt, for_staff=for_staff, at_front=True
    )
