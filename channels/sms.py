"""SMS through Twilio's Messages API: one request per message, sent concurrently.

Without an account SID and auth token the channel uses the outbox transport.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar
from urllib.parse import urlencode, urlsplit

import certifi
import requests
import urllib3
from twilio.base.exceptions import TwilioRestException
from twilio.http import HttpClient
from twilio.http.response import Response
from twilio.rest import Client

from channels import outbox
from channels.base import (
    ChannelConfigError,
    ChannelFacts,
    DeliveryError,
    Meter,
    NullMeter,
    Outgoing,
    PermanentDeliveryError,
    Result,
    TransientDeliveryError,
    parse_retry_after,
    result_for,
)


class _HttpClient(HttpClient):
    """The Twilio SDK's HTTP layer on one urllib3 pool, sized for our concurrency.

    The SDK builds, signs and parses every request; only the transport is ours (the SDK's
    ``http_client`` extension point). Its default client goes through ``requests``, which
    re-encodes the form, merges settings and re-reads the environment per call: half of an
    SMS's CPU in the benchmark. A 429/5xx becomes our transient error here, where the
    ``Retry-After`` header is still at hand (the SDK's exception drops the headers).
    """

    def __init__(
        self,
        timeout: float,
        pool_size: int,
        meter: Meter,
        base_url: str,
        provider: str = "twilio",
    ) -> None:
        super().__init__(logging.getLogger("twilio.http_client"), is_async=False, timeout=timeout)
        self.meter = meter
        self.provider = provider  # the name metrics count its calls under
        # Proxy and CA bundle as requests would take them from the environment, read once.
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        options: dict[str, Any] = {"maxsize": pool_size, "ca_certs": bundle or certifi.where()}
        proxy = requests.utils.get_environ_proxies(base_url).get(urlsplit(base_url).scheme)
        self.pool: urllib3.PoolManager = (
            urllib3.ProxyManager(proxy, **options) if proxy else urllib3.PoolManager(**options)
        )

    def request(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        sent = dict(headers or {})
        if auth:
            sent["Authorization"] = urllib3.make_headers(basic_auth=":".join(auth))["authorization"]
        body = None
        if data:
            body = urlencode(data, doseq=True)  # the SDK's lists (MediaUrl…) as repeated keys
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        if params:
            url = f"{url}?{urlencode(params, doseq=True)}"
        started = time.perf_counter()
        try:
            answer = self.pool.request(
                method.upper(),
                url,
                body=body,
                headers=sent,
                timeout=timeout or self.timeout,
                retries=False,  # a POST that may have gone is never resent blindly
                redirect=allow_redirects,
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            self.meter.call(self.provider, time.perf_counter() - started)
            self.meter.error(self.provider, "transient")
            raise TransientDeliveryError(f"twilio unreachable: {exc}") from exc
        status = answer.status
        self.meter.call(self.provider, time.perf_counter() - started, status)
        text = answer.data.decode("utf-8", "replace")
        if status == 429 or status >= 500:
            self.meter.error(self.provider, "transient")
            raise TransientDeliveryError(
                f"twilio HTTP {status}: {text[:300]}",
                parse_retry_after(answer.headers.get("Retry-After")),
            )
        return Response(status, text, answer.headers)


class TwilioPacing:
    """One Twilio request per item on its rate slot, held back after a 429: what the SMS,
    WhatsApp and voice channels share (``_hold_until``, ``meter``, ``provider`` are theirs).
    """

    _hold_until: float
    _pool: ThreadPoolExecutor
    client: Client | None
    meter: Meter
    provider: str

    def send(self, batch: list[Outgoing]) -> list[Result]:
        """Send every item concurrently, each on its slot; one Result per item, in order."""
        if self.client is None:
            return outbox.record(batch)
        try:
            return list(self._pool.map(self._send_one, batch))
        finally:
            self.meter.flush()

    def _send_one(self, item: Outgoing) -> Result:
        raise NotImplementedError

    def turn(self, item: Outgoing) -> Result | None:
        """Wait for the item's slot in the rate; a Result if it must not go now."""
        slot = max(0.0, item.not_before - time.monotonic())  # its slot in the rate
        if item.stop is None:
            time.sleep(slot)
        elif item.stop.wait(slot):
            return Result(
                item.subscriber_id,
                "retry",
                error="held: the worker is stopping",
                extra={"held": True, "stopped": True},  # never sent: the next worker sends it
            )
        held = self._hold_until - time.monotonic()
        if held > 0:  # throttled while it waited for its slot: do not send into the 429
            return Result(
                item.subscriber_id,
                "retry",
                error="held: twilio is throttling (429)",
                retry_after=held,
                extra={"held": True},  # never sent: comes back without spending an attempt
            )
        return None

    def request(self, item: Outgoing, create: Callable[[], Any]) -> Result:
        """Make the SDK call ``create``; its resource's sid, or the error classified."""
        try:
            try:
                made = create()
            except TwilioRestException as exc:
                raise _classify(exc) from exc
        except DeliveryError as exc:
            if isinstance(exc, PermanentDeliveryError):
                self.meter.error(self.provider, "permanent")
            elif exc.retry_after:
                self._hold_until = max(self._hold_until, time.monotonic() + exc.retry_after)
            return result_for(item, exc)
        return Result(item.subscriber_id, "sent", provider_id=made.sid)


class SmsChannel(ChannelFacts, TwilioPacing):
    """The ``sms`` channel: Twilio when configured, else the outbox."""

    name: ClassVar[str] = "sms"
    provider: ClassVar[str] = "twilio"
    contact_field: ClassVar[str] = "phone"  # E.164
    max_batch: ClassVar[int] = 500  # recipients per batch job (at most SMS_BATCH_SIZE)
    batch_setting: ClassVar[str] = "SMS_BATCH_SIZE"
    per_request: ClassVar[int] = 1  # Twilio takes one message per request: sent concurrently
    unsubscribe_link: ClassVar[bool] = False  # people reply STOP (/hooks/twilio/inbound)
    # Characters per segment by encoding: (a single SMS, each part of a multipart one, whose
    # concatenation header takes 7 septets / 3 UTF-16 units).
    segment_sizes: ClassVar[dict[str, tuple[int, int]]] = {
        "GSM-7": (160, 153),
        "UCS-2": (70, 67),
    }
    rate_setting: ClassVar[str] = "TWILIO_RATE"
    rate: ClassVar[float] = 0  # 0: by the sender, as below
    long_code_rate: ClassVar[float] = 1.0
    messaging_service_rate: ClassVar[float] = 10.0  # it spreads messages over its senders
    # Buffered: one Redis round trip of metrics per batch instead of one per message.
    buffered_meter: ClassVar[bool] = True
    # Where Twilio reports a message's status (web/hooks/receipts.py).
    callback_path: ClassVar[str] = "/hooks/twilio/status"

    @classmethod
    def rate_for(cls, config: Mapping[str, Any]) -> float | None:
        """Messages/s: the setting, else by the sender (a long code, a messaging service).

        Set BROADCASTER_TWILIO_RATE to your account's real throughput (short code: 100).
        """
        rate = float(config.get(cls.rate_setting) or 0)
        if rate > 0:
            return rate
        if config.get("TWILIO_MESSAGING_SERVICE_SID"):
            return cls.messaging_service_rate
        return cls.long_code_rate

    @classmethod
    def sender_id(cls, config: Mapping[str, Any]) -> str:
        """Twilio limits each from-number or messaging service on its own."""
        sender = config.get("TWILIO_MESSAGING_SERVICE_SID") or config.get("TWILIO_FROM")
        return f"{cls.provider}:{sender}"

    def __init__(self, config: Mapping[str, Any], meter: Meter | None = None) -> None:
        sid, token = config.get("TWILIO_ACCOUNT_SID"), config.get("TWILIO_AUTH_TOKEN")
        self.transport = self.provider if sid and token else "outbox"
        self.concurrency = int(config.get("SMS_CONCURRENCY", 16))
        self.client: Client | None = None
        self.sender: dict[str, str] = {}
        # Twilio reports delivery here; the query string names the delivery (receipts.py).
        self.status_callback = str(config.get("PUBLIC_URL") or "").rstrip("/") + self.callback_path
        self.meter = meter if meter is not None else NullMeter()
        # After a 429 nobody in this process sends until its Retry-After has passed (the
        # shared pause in Redis stops the other workers at their next reservation).
        self._hold_until = 0.0
        if sid and not token:
            raise ChannelConfigError(f"{self.name}: BROADCASTER_TWILIO_AUTH_TOKEN is not set")
        if token and not sid:
            raise ChannelConfigError(f"{self.name}: BROADCASTER_TWILIO_ACCOUNT_SID is not set")
        if self.transport == self.provider:
            self.sender = self._sender(config)
            base_url = str(config["TWILIO_BASE_URL"]).rstrip("/")
            http = _HttpClient(
                float(config.get("PROVIDER_TIMEOUT", 15)),
                self.concurrency,
                self.meter,
                base_url,
                self.provider,
            )
            self.client = Client(str(sid), str(token), http_client=http)
            # The base URL is a real feature (regional endpoints, egress proxies).
            self.client.api.base_url = base_url
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix=self.name)

    def _sender(self, config: Mapping[str, Any]) -> dict[str, str]:
        """Who sends: the messaging service, else the from-number (SDK argument names)."""
        if config.get("TWILIO_MESSAGING_SERVICE_SID"):
            return {"messaging_service_sid": str(config["TWILIO_MESSAGING_SERVICE_SID"])}
        if config.get("TWILIO_FROM"):
            return {"from_": str(config["TWILIO_FROM"])}
        raise ChannelConfigError(
            "sms: set BROADCASTER_TWILIO_FROM or BROADCASTER_TWILIO_MESSAGING_SERVICE_SID"
        )

    def _message(self, item: Outgoing) -> dict[str, str]:
        """The message's own arguments to ``messages.create`` (SDK names)."""
        return {"to": item.to, "body": item.content["text"]}

    def _send_one(self, item: Outgoing) -> Result:
        assert self.client is not None
        waited = self.turn(item)
        if waited is not None:
            return waited
        options = dict(self.sender)
        announcement_id = item.content.get("announcement_id")
        if announcement_id and self.status_callback.startswith("http"):
            query = urlencode({"a": announcement_id, "s": item.subscriber_id})
            options["status_callback"] = f"{self.status_callback}?{query}"
        client = self.client
        return self.request(item, lambda: client.messages.create(**self._message(item), **options))


def _classify(exc: TwilioRestException) -> DeliveryError:
    reason = f"twilio {exc.code or exc.status}: {exc.msg}"
    if exc.status in (401, 403):
        # Bad credentials are fixed by a person; retrying later may then succeed.
        return TransientDeliveryError(reason)
    return PermanentDeliveryError(reason)
