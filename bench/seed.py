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
