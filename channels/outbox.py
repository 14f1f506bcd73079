"""The outbox transport: records the rendered message instead of sending it.

Used for every external channel that has no provider credentials, so a fresh
``broadcaster up`` shows the whole path (deliveries API) with no accounts.
"""

from __future__ import annotations

import uuid

from channels.base import Outgoing, PublicPost, PublishResult, Result


def personalise(item: Outgoing) -> dict[str, str]:
    """The message exactly as this person would get it (placeholders filled in)."""
    content = dict(item.content)
    for placeholder, value in item.personal.items():
        content = {key: text.replace(placeholder, value) for key, text in content.items()}
    return content


def record(batch: list[Outgoing]) -> list[Result]:
    """Mark every message sent, keeping its rendered content on the delivery record."""
    return [
        Result(
            item.subscriber_id,
            "sent",
            provider_id=f"outbox-{uuid.uuid4().hex[:12]}",
            extra={"message": personalise(item)},
        )
        for item in batch
    ]


def publish(post: PublicPost) -> PublishResult:
    """Record a public post; threads are chained with made-up ids as a real network would."""
    post_id = f"outbox-{uuid.uuid4().hex[:12]}"
    return PublishResult(post_id, thread={"id": post_id}, extra={"message": {"text": post.text}})
