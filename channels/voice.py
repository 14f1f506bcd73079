"""Voice calls through Twilio Programmable Voice: one ``calls.create`` per person.

The call carries its TwiML inline (``channels/voice_twiml.py``): the message read twice,
then "press 1 / press 2" in a ``<Gather>`` whose answer comes to
``/hooks/twilio/voice/gather``. Answering machines are found by Twilio's asynchronous
machine detection (``DetectMessageEnd``): the call starts at once, and when the verdict
says a machine's greeting ended, ``/hooks/twilio/voice/amd`` replaces the call's TwiML with
the short message (``leave_message``). Status callbacks go to ``/hooks/twilio/voice/status``.
Each URL's query names the delivery, as the SMS channel's receipts do.

The Twilio SDK, its HTTP transport and the error table are the SMS channel's; the sender,
the rate (calls per second per number) and the concurrency are the voice channel's own.
Without an account SID and auth token the channel uses the outbox transport.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar
from urllib.parse import urlencode

from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from channels import voice_twiml
from channels.base import (
    ChannelFacts,
    Meter,
    NullMeter,
    Outgoing,
    Result,
)
from channels.sms import TwilioPacing, _classify, _HttpClient

# The call progress events the status callback is asked for: "completed" is the final one,
# whose CallStatus says how it ended (completed, busy, no-answer, failed, canceled).
STATUS_EVENTS = ["completed"]


class VoiceChannel(ChannelFacts, TwilioPacing):
    """The ``voice`` channel: Twilio calls when configured, else the outbox."""

    name: ClassVar[str] = "voice"
    # Its own name for the provider gate: calls have their own limit (calls per second per
    # number, 1 by default), apart from the messages the same account sends.
    provider: ClassVar[str] = "twilio-voice"
    contact_field: ClassVar[str] = "phone"  # E.164
    max_batch: ClassVar[int] = 100  # at 1 call/s a batch job runs for under two minutes
    batch_setting: ClassVar[str] = "VOICE_BATCH_SIZE"
    per_request: ClassVar[int] = 1  # one call per request: placed concurrently, paced
    unsubscribe_link: ClassVar[bool] = False
    rate_setting: ClassVar[str] = "TWILIO_VOICE_RATE"
    rate: ClassVar[float] = 1.0  # Twilio's default CPS for a number
    buffered_meter: ClassVar[bool] = True

    @classmethod
    def sender_id(cls, config: Mapping[str, Any]) -> str:
        """Twilio paces calls per calling number."""
        return f"{cls.provider}:{from_number(config)}"

    def __init__(self, config: Mapping[str, Any], meter: Meter | None = None) -> None:
        sid, token = config.get("TWILIO_ACCOUNT_SID"), config.get("TWILIO_AUTH_TOKEN")
        self.transport = self.provider if sid and token else "outbox"
        self.concurrency = int(config.get("VOICE_CONCURRENCY", 4))
        self.client: Client | None = None
        self.sender = from_number(config)
        self.hooks = str(config.get("PUBLIC_URL") or "").rstrip("/") + "/hooks/twilio/voice"
        self.meter = meter if meter is not None else NullMeter()
        self._hold_until = 0.0  # after a 429, as in the SMS channel
        # Twilio without a number to call from (SMS through a messaging service only): the
        # app refuses to start if the plan names voice (``missing``); an announcement that
        # asks for it anyway fails each call with this reason, and the plan's fallback runs.
        self.missing = ""
        if self.transport == self.provider and not self.sender:
            self.missing = (
                "voice: set BROADCASTER_TWILIO_VOICE_FROM (or BROADCASTER_TWILIO_FROM) "
                "to the Twilio number that calls"
            )
        elif self.transport == self.provider:
            base_url = str(config["TWILIO_BASE_URL"]).rstrip("/")
            http = _HttpClient(
                float(config.get("PROVIDER_TIMEOUT", 15)),
                self.concurrency,
                self.meter,
                base_url,
                self.provider,  # calls counted apart from messages in the metrics
            )
            self.client = Client(str(sid), str(token), http_client=http)
            self.client.api.base_url = base_url
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="voice")

    def hook_url(self, kind: str, announcement_id: str, subscriber_id: str, **more: str) -> str:
        """Our hook for ``kind`` (status, gather, amd), the delivery named in the query."""
        query = urlencode({"a": announcement_id, "s": subscriber_id, **more})
        return f"{self.hooks}/{kind}?{query}"

    def send(self, batch: list[Outgoing]) -> list[Result]:
        """Place every call concurrently, each on its rate slot; one Result per call."""
        if self.missing:
            return [Result(item.subscriber_id, "failed", error=self.missing) for item in batch]
        return super().send(batch)

    def _send_one(self, item: Outgoing) -> Result:
        assert self.client is not None
        waited = self.turn(item)
        if waited is not None:
            return waited
        announcement_id = item.content.get("announcement_id", "")
        options: dict[str, Any] = {}
        if self.hooks.startswith("http") and announcement_id:
            sid = item.subscriber_id
            options = {
                "status_callback": self.hook_url("status", announcement_id, sid),
                "status_callback_event": STATUS_EVENTS,
                "machine_detection": "DetectMessageEnd",
                "async_amd": "true",
                "async_amd_status_callback": self.hook_url("amd", announcement_id, sid),
            }
            action = self.hook_url("gather", announcement_id, sid)
        else:
            action = ""  # no public URL: nowhere for the key press to go
        client, twiml = self.client, voice_twiml.fitted_call(item.content, action)
        return self.request(
            item, lambda: client.calls.create(to=item.to, from_=self.sender, twiml=twiml, **options)
        )

    def leave_message(self, call_sid: str, content: Mapping[str, str]) -> None:
        """Replace a live call's TwiML with the short message (an answering machine).

        Raises ``DeliveryError`` when Twilio refuses (the call may have ended meanwhile).
        """
        if self.client is None:
            return  # the outbox places no calls
        try:
            self.client.calls(call_sid).update(twiml=voice_twiml.machine(content))
        except TwilioRestException as exc:
            raise _classify(exc) from exc


def from_number(config: Mapping[str, Any]) -> str:
    """The number that calls: BROADCASTER_TWILIO_VOICE_FROM, else the SMS from-number."""
    return str(config.get("TWILIO_VOICE_FROM") or config.get("TWILIO_FROM") or "")
