"""WhatsApp through Twilio's WhatsApp sender: the Messages API with ``whatsapp:`` addresses.

The same SDK, HTTP pool, errors and pacing as SMS (``channels/sms.py``); only the message
differs. The fan-out hands over one of two forms, never both (``rendering/whatsapp.py``):

- a pre-approved template (``content_sid`` + ``content_variables`` JSON): what a business
  may send anyone who opted in, at any time — Twilio sends it as ``ContentSid`` and
  ``ContentVariables`` and refuses a ``Body`` beside them;
- free text (``text``): only within 24 hours of the person's last message to us (the
  WhatsApp customer service window); outside it Twilio fails it with error 63016.

Which one a person gets is decided before the channel (a channel never decides *who*).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from channels.base import ChannelConfigError, Outgoing
from channels.sms import SmsChannel

PREFIX = "whatsapp:"


def address(phone: str) -> str:
    """A phone number (E.164) as a WhatsApp address for Twilio: ``whatsapp:+31…``."""
    return phone if phone.startswith(PREFIX) else PREFIX + phone


class WhatsAppChannel(SmsChannel):
    """The ``whatsapp`` channel: Twilio's WhatsApp sender when configured, else the outbox."""

    name: ClassVar[str] = "whatsapp"
    provider: ClassVar[str] = "twilio_whatsapp"  # its own rate and breaker, apart from SMS
    contact_field: ClassVar[str] = "phone"  # E.164; sent to as whatsapp:+…
    max_batch: ClassVar[int] = 500
    batch_setting: ClassVar[str] = "WHATSAPP_BATCH_SIZE"
    unsubscribe_link: ClassVar[bool] = False  # people answer STOP (/hooks/twilio/inbound)
    rate_setting: ClassVar[str] = "TWILIO_WHATSAPP_RATE"
    # A conservative default: set BROADCASTER_TWILIO_WHATSAPP_RATE to the sender's throughput
    # as Twilio shows it for your WhatsApp sender.
    rate: ClassVar[float] = 20.0
    callback_path: ClassVar[str] = "/hooks/twilio/whatsapp/status"

    @classmethod
    def rate_for(cls, config: Mapping[str, Any]) -> float | None:
        """Messages/s of the WhatsApp sender (the setting, else the default)."""
        return float(config.get(cls.rate_setting) or 0) or cls.rate

    @classmethod
    def sender_id(cls, config: Mapping[str, Any]) -> str:
        """The WhatsApp sender's own bucket: its number or the messaging service."""
        sender = (
            config.get("TWILIO_WHATSAPP_FROM")
            or config.get("TWILIO_MESSAGING_SERVICE_SID")
            or config.get("TWILIO_FROM")
        )
        return f"{cls.provider}:{sender}"

    def _sender(self, config: Mapping[str, Any]) -> dict[str, str]:
        """BROADCASTER_TWILIO_WHATSAPP_FROM, else the messaging service (with a WhatsApp
        sender in its pool), else the SMS from-number (registered as a WhatsApp sender)."""
        if config.get("TWILIO_WHATSAPP_FROM"):
            return {"from_": address(str(config["TWILIO_WHATSAPP_FROM"]))}
        if config.get("TWILIO_MESSAGING_SERVICE_SID"):
            return {"messaging_service_sid": str(config["TWILIO_MESSAGING_SERVICE_SID"])}
        if config.get("TWILIO_FROM"):
            return {"from_": address(str(config["TWILIO_FROM"]))}
        raise ChannelConfigError(
            "whatsapp: set BROADCASTER_TWILIO_WHATSAPP_FROM (or BROADCASTER_TWILIO_FROM, "
            "or BROADCASTER_TWILIO_MESSAGING_SERVICE_SID)"
        )

    def _message(self, item: Outgoing) -> dict[str, str]:
        """A template (ContentSid + ContentVariables, no Body) or free text (Body)."""
        if item.content.get("content_sid"):
            return {
                "to": address(item.to),
                "content_sid": item.content["content_sid"],
                "content_variables": item.content.get("content_variables") or "{}",
            }
        return {"to": address(item.to), "body": item.content["text"]}
