"""Delivery channels, one module each, registered in explicit dicts.

Personal channels send one message per subscriber; public channels post once per
announcement (the banner is served by the app itself, ``social`` posts to every
configured network, ``webhook`` to every target in the plan).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from channels.base import (
    Channel,
    ChannelConfigError,
    ChannelFacts,
    Meter,
    MeterFactory,
    PublicChannel,
)
from channels.bluesky import BlueskyChannel
from channels.email import EmailChannel
from channels.helpdesks import Freshdesk, Zendesk
from channels.mastodon import MastodonChannel
from channels.sms import SmsChannel
from channels.voice import VoiceChannel
from channels.whatsapp import WhatsAppChannel

PERSONAL: dict[str, type[EmailChannel | SmsChannel | VoiceChannel]] = {
    "email": EmailChannel,
    "sms": SmsChannel,
    "whatsapp": WhatsAppChannel,
    "voice": VoiceChannel,
}
NETWORKS: dict[str, type[MastodonChannel | BlueskyChannel]] = {  # the "social" channel
    "mastodon": MastodonChannel,
    "bluesky": BlueskyChannel,
}
PUBLIC: tuple[str, ...] = ("banner", "social", "webhook")
# Every channel name a plan, an audience or an announcement may use.
CHANNELS: tuple[str, ...] = (*PERSONAL, *PUBLIC)

# The subscriber field each personal channel sends to.
CONTACT_FIELD: dict[str, str] = {name: cls.contact_field for name, cls in PERSONAL.items()}
# Provider transports (the outbox needs no rate limit nor breaker) → their channel class.
PROVIDERS: dict[str, type[ChannelFacts]] = {
    cls.provider: cls for cls in (*PERSONAL.values(), *NETWORKS.values(), Zendesk, Freshdesk)
}


def _meter(cls: type, meters: MeterFactory | None) -> Meter | None:
    return meters(cls.buffered_meter) if meters is not None else None


def build_channels(
    config: Mapping[str, Any], meters: MeterFactory | None = None
) -> dict[str, Channel]:
    """Build the personal channels; a missing setting fails here, at start-up.

    ``meters`` makes each channel's meter (none: the channels record no metrics).
    """
    return {name: cls(config, _meter(cls, meters)) for name, cls in PERSONAL.items()}


def build_networks(
    config: Mapping[str, Any],
    meters: MeterFactory | None = None,
    accounts: Mapping[str, tuple[str, Mapping[str, Any]]] | None = None,
) -> dict[str, PublicChannel]:
    """Build the social networks (outbox where not configured), by place.

    The settings give the default account of each network (``mastodon``); ``accounts``
    adds more: place (``mastodon:nl``) → (network, that account's settings over ``config``).
    """
    networks: dict[str, PublicChannel] = {
        name: cls(config, _meter(cls, meters)) for name, cls in NETWORKS.items()
    }
    for place, (network, settings) in (accounts or {}).items():
        cls = NETWORKS[network]
        networks[place] = cls({**config, **settings}, _meter(cls, meters))
    return networks


__all__ = [
    "CHANNELS",
    "CONTACT_FIELD",
    "NETWORKS",
    "PERSONAL",
    "PROVIDERS",
    "PUBLIC",
    "Channel",
    "ChannelConfigError",
    "ChannelFacts",
    "Meter",
    "MeterFactory",
    "build_channels",
    "build_networks",
]
