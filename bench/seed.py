"""Seed subscribers fast through ``SubscriberStore.upsert_many``, so the stored format is real.

Rows skip the API's validation (they are valid by construction); seeding time is not part
of any measurement.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import redis

from broadcaster.domain.subscribers import SubscriberStore

AUDIENCE = "everyone"
BATCH = 5000


def email_of(n: int) -> str:
    return f"u{n}@bench.example"


def phone_of(n: int) -> str:
    """A valid Dutch mobile number in E.164 (+316 and eight digits): room for 10^8 people."""
    return f"+316{n + 10_000_000:08d}"


def rows(start: int, count: int, email: bool, phone: bool) -> Iterator[list[dict]]:
    """Batches of subscriber rows numbered ``start .. start+count-1``."""
    for first in range(start, start + count, BATCH):
        yield [
            {
                "external_id": f"bench-{n}",
                "email": email_of(n) if email else None,
                "phone": phone_of(n) if phone else None,
                "locale": "en",
                "audiences": [AUDIENCE],
                "channels": None,
            }
            for n in range(first, min(first + BATCH, start + count))
        ]


def seed(url: str, count: int, email: bool = True, phone: bool = True, start: int = 0) -> float:
    """Store ``count`` subscribers in the bench audience; returns the seconds it took."""
    began = time.monotonic()
    store = SubscriberStore(redis.Redis.from_url(url))
    for batch in rows(start, count, email, phone):
        store.upsert_many(batch)
    return time.monotonic() - began


def seed_incidents(
    url: str, count: int, newest_days_ago: float = 3, spacing: float = 3000
) -> float:
    """Store ``count`` resolved incidents, as the announcement service stores them.

    Each has an "investigating" and a "resolved" announcement; the newest was resolved
    ``newest_days_ago`` days ago, each next one ``spacing`` seconds earlier (10,000 at 50
    minutes: a year of history, ~300 of them within the status page's 14 days). Filed by
    recency as a publish files them (``status.index``), and off the banner's active set, as
    the banner's own refresh leaves them once their all-clear is over. Returns seconds taken.
    """
    from broadcaster.domain.announcement import Announcement
    from broadcaster.domain.announcements import (
        ACTIVE_KEY,
        BANNER_INCIDENTS_KEY,
        AnnouncementStore,
    )
    from broadcaster.rendering import status

    began = time.monotonic()
    r = redis.Redis.from_url(url)
    store = AnnouncementStore(r)
    now = time.time()
    for first in range(0, count, BATCH):
        pipe = r.pipeline(transaction=False)
        for n in range(first, min(first + BATCH, count)):
            resolved = now - newest_days_ago * 86400 - n * spacing
            opened = resolved - 1800
            incident = {
                "id": f"inc_bench{n:06d}",
                "title": f"Past outage {n}",
                "opened_at": opened,
                "resolved_at": resolved,
                "severity": "minor",
                "status": "resolved",
                "updated_at": resolved,
            }
            for k, (state, at) in enumerate((("investigating", opened), ("resolved", resolved))):
                announcement = Announcement(
                    id=f"ann_bench{n:06d}{k}",
                    incident_id=incident["id"],
                    title=f"Past outage {n}" if k == 0 else f"Past outage {n} fixed",
                    body="Card payments failed for 30 minutes. It is fixed.",
                    severity="minor",
                    status=state,
                    audiences=[AUDIENCE],
                    channels=["banner", "email"],
                    author="bench",
                    state="published",
                    created_at=at,
                    published_at=at,
                )
                store.write(pipe, announcement, incident, new=True)
            pipe.srem(ACTIVE_KEY, incident["id"])
            pipe.srem(BANNER_INCIDENTS_KEY, incident["id"])
            status.index(pipe, incident)
        pipe.execute()
    return time.monotonic() - began
