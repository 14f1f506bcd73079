"""The long-lived parts one app (web or worker) shares: Redis, plan, channels, renderer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis
from flask import current_app

from broadcaster.announcements import AnnouncementStore
from broadcaster.plan import Plan
from broadcaster.rendering import Renderer
from broadcaster.subscribers import SubscriberStore
from channels import Channel


@dataclass
class Services:
    redis: redis.Redis
    plan: Plan
    channels: dict[str, Channel]
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
