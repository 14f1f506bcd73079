"""Delivery channels, one module each, registered in one explicit dict."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from channels.base import Channel, ChannelConfigError
from channels.email import EmailChannel
from channels.sms import SmsChannel

CHANNELS: dict[str, type] = {
    "email": EmailChannel,
    "sms": SmsChannel,
}

# The subscriber field each channel sends to.
CONTACT_FIELD: dict[str, str] = {"email": "email", "sms": "phone"}


def build_channels(config: Mapping[str, Any]) -> dict[str, Channel]:
    """Build every channel from the configuration; a missing setting fails here, at start-up."""
    return {name: cls(config) for name, cls in CHANNELS.items()}


__all__ = ["CHANNELS", "CONTACT_FIELD", "Channel", "ChannelConfigError", "build_channels"]
