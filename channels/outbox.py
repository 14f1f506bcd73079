"""The outbox transport: records the rendered message instead of sending it.

Used for every external channel that has no provider credentials, so a fresh
``broadcaster up`` shows the whole path (deliveries API) with no accounts.
"""

from __future__ import annotations

import uuid

from channels.base import Outgoing, Result


def record(batch: list[Outgoing]) -> list[Result]:
    """Mark every message sent, keeping its rendered content on the delivery record."""
    return [
        Result(
            item.subscriber_id,
            "sent",
            provider_id=f"outbox-{uuid.uuid4().hex[:12]}",
            extra={"message": dict(item.content)},
        )
        for item in batch
    ]
