"""Delivery channels, one module each, registered in explicit dicts.

Personal channels send one message per subscriber; public channels post once per
announcement (the banner is served by the app itself, ``social`` posts to every
configured network, ``webhook`` to every target in the plan).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from channels.base import Channel, ChannelConfigError, PublicChannel
from channels.bluesky import BlueskyChannel
from channels.email import EmailChannel
from channels.mastodon import MastodonChannel
from channels.sms import SmsChannel

PERSONAL: dict[str, type] = {
    "email": EmailChannel,
    "sms": SmsChannel,
}
NETWORKS: dict[str, type] = {  # the "social" channel
    "mastodon": MastodonChannel,
    "bluesky": BlueskyChannel,
}
PUBLIC: tuple[str, ...] = ("banner", "social", "webhook")
# Every channel name a plan, an audience or an announcement may use.
CHANNELS: tuple[str, ...] = (*PERSONAL, *PUBLIC)

# The subscriber field each personal channel sends to.
CONTACT_FIELD: dict[str, str] = {"email": "email", "sms": "phone"}


def build_channels(config: Mapping[str, Any]) -> dict[str, Channel]:
    """Build the personal channels; a missing setting fails here, at start-up."""
    return {name: cls(config) for name, cls in PERSONAL.items()}


def build_networks(config: Mapping[str, Any]) -> dict[str, PublicChannel]:
    """Build the social networks (outbox where not configured)."""
    return {name: cls(config) for name, cls in NETWORKS.items()}


__all__ = [
    "CHANNELS",
    "CONTACT_FIELD",
    "NETWORKS",
    "PERSONAL",
    "PUBLIC",
    "Channel",
    "ChannelConfigError",
    "build_channels",
    "build_networks",
]
