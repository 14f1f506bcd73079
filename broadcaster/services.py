"""The long-lived parts one app (web or worker) shares: Redis, plan, channels, renderer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis
from flask import current_app

from broadcaster.domain.announcements import AnnouncementStore
from broadcaster.domain.plan import Plan
from broadcaster.domain.subscribers import SubscriberStore
from broadcaster.rendering.messages import Renderer
from channels import Channel
from channels.base import PublicChannel
from channels.webhook import WebhookChannel


@dataclass
class Services:
    redis: redis.Redis
    plan: Plan
    channels: dict[str, Channel]  # personal: one message per subscriber
    networks: dict[str, PublicChannel]  # the "social" channel's networks
    webhook: WebhookChannel
    renderer: Renderer
    config: dict[str, Any]

    @property
    def announcements(self) -> AnnouncementStore:
        return AnnouncementStore(self.redis, self.plan)

    @property
    def subscribers(self) -> SubscriberStore:
        return SubscriberStore(self.redis)


def services() -> Services:
    """The services of the current app."""
    return current_app.extensions["broadcaster"]
