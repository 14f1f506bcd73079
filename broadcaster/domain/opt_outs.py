"""Opt-outs and opt-ins applied in event-time order, per person and channel.

Opt-outs arrive from many places and not in order: an unsubscribe link, a STOP reply, a
SendGrid "unsubscribe" event that SendGrid retries for days, the API or admin opting a
person back in. Each change carries the time it happened (SendGrid's event ``timestamp``;
for an SMS reply or a click, the time we received it), and the subscriber's hash keeps,
per channel, the time of the last change applied (``opt_at:<channel>``). A change older than
that is stale and ignored, so a late or replayed opt-out never undoes a newer opt-in.
"""

from __future__ import annotations

import time

import redis

OPT_OUTS_FIELD = "opt_outs"


def stamp_field(channel: str) -> str:
    return f"opt_at:{channel}"


def apply(
    r: redis.Redis, key: str, channels: list[str], opted_out: bool, at: float | None = None
) -> tuple[list[str], list[str]] | None:
    """Opt the person at ``key`` out of (or into) ``channels`` as of ``at`` (default: now).

    Returns (opt-outs now, channels whose change was stale), or None if there is no such
    person. Atomic (WATCH/MULTI): two changes racing cannot both read the old state.
    """
    when = time.time() if at is None else at
    outcome: list[tuple[list[str], list[str]] | None] = [None]

    def change(pipe: redis.client.Pipeline) -> None:
        fields = [OPT_OUTS_FIELD, "id", *(stamp_field(c) for c in channels)]
        raw_outs, exists, *stamps = pipe.hmget(key, fields)
        if exists is None:
            outcome[0] = None
            return
        current = {c for c in (raw_outs or b"").decode().split(",") if c}
        newest = {c: float(s) if s else 0.0 for c, s in zip(channels, stamps, strict=True)}
        fresh = [c for c in channels if when >= newest[c]]
        current = current | set(fresh) if opted_out else current - set(fresh)
        pipe.multi()
        pipe.hset(
            key,
            mapping={
                OPT_OUTS_FIELD: ",".join(sorted(current)),
                "updated_at": time.time(),
                **{stamp_field(c): when for c in fresh},
            },
        )
        outcome[0] = (sorted(current), [c for c in channels if c not in fresh])

    r.transaction(change, key)
    return outcome[0]
