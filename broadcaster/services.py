"""The composition root: the long-lived parts one app (web or worker) shares.

Redis, plan, channels, renderer, and the announcement service wired to the layers it
must not import itself (the fan-out queue and the approvers' notice job here, the banner
refresh from create_app).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import redis
from flask import current_app

from broadcaster.delivery import queues
from broadcaster.domain.announcement import Announcement
from broadcaster.domain.announcement_service import AnnouncementService
from broadcaster.domain.announcements import AnnouncementStore
from broadcaster.domain.phone_numbers import sender_numbers
from broadcaster.domain.plan import Plan
from broadcaster.domain.signups import SignupService
from broadcaster.domain.subscribers import SubscriberStore
from broadcaster.rendering.messages import Renderer
from channels import Channel
from channels.base import PublicChannel
from channels.helpdesks import Helpdesk
from channels.slack_threads import SlackThreads
from channels.webhook import WebhookChannel


@dataclass
class Services:
    redis: redis.Redis
    plan: Plan
    channels: dict[str, Channel]  # personal: one message per subscriber
    networks: dict[str, PublicChannel]  # the "social" channel's networks
    webhook: WebhookChannel
    slack: SlackThreads  # staff in Slack, a thread per incident (when configured)
    helpdesks: dict[str, Helpdesk]  # the configured helpdesks (may be none)
    renderer: Renderer
    config: dict[str, Any]
    # What must happen once an announcement is published (the banner and status refresh):
    # wired by create_app, so this module imports no rendering and no cycle forms.
    on_published: Callable[[Announcement], None] = lambda announcement: None

    @cached_property
    def announcements(self) -> AnnouncementService:
        """The one way in for announcements, wired to the fan-out and the banner."""
        return AnnouncementService(
            AnnouncementStore(self.redis),
            self.plan,
            enqueue_plan=lambda pipe, announcement_id: queues.enqueue_plan(
                self.redis, announcement_id, pipeline=pipe
            ),
            on_published=lambda announcement: self.on_published(announcement),
            # A new announcement that waits: a job tells the approvers (by email and chat).
            on_pending=lambda announcement: queues.enqueue_notice(self.redis, announcement.id),
            keep_promise=lambda pipe, announcement: queues.enqueue_reminder(
                self.redis, announcement.id, announcement.next_update_at or 0.0, pipeline=pipe
            ),
            max_body_bytes=int(self.config["MAX_BODY_BYTES"]),
        )

    @cached_property
    def senders(self) -> frozenset[str]:
        """Our own sender numbers: refused as a subscriber's phone."""
        return sender_numbers(self.config)

    @cached_property
    def signups(self) -> SignupService:
        """The one way in for self-subscription, wired to its message job."""
        return SignupService(
            self.redis,
            self.plan,
            self.config,
            wake_sender=lambda: queues.enqueue_signup_sender(self.redis),
            senders=self.senders,
        )

    def on_help(self, announcement_id: str, subscriber_id: str) -> None:
        """Someone asked for help in answer to a confirmation: a job tells staff at once."""
        queues.enqueue_help(self.redis, announcement_id, subscriber_id)

    @property
    def subscribers(self) -> SubscriberStore:
        return SubscriberStore(self.redis)


def services() -> Services:
    """The services of the current app."""
    return current_app.extensions["broadcaster"]
