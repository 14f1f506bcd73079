"""SMS through Twilio's Messages API: one request per message, sent concurrently.

Without an account SID and auth token the channel uses the outbox transport.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar
from urllib.parse import urlencode

import requests
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from broadcaster.metrics import Meter
from channels import outbox
from channels.base import (
    ChannelConfigError,
    DeliveryError,
    Outgoing,
    PermanentDeliveryError,
    Result,
    TransientDeliveryError,
    parse_retry_after,
    result_for,
)


class _HttpClient(TwilioHttpClient):
    """Twilio's HTTP client, with a pool sized for our concurrency and 429/5xx surfaced.

    The SDK's exception drops the response headers, so a ``Retry-After`` would be lost;
    we raise our own transient error here, where the headers are still at hand.
    """

    def __init__(self, timeout: float, pool_size: int, meter: Meter, base_url: str) -> None:
        super().__init__(timeout=timeout)
        self.meter = meter
        adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        # requests reads proxy and CA-bundle variables from the environment on every call,
        # a tenth of an SMS's CPU in the benchmark: read them once here instead.
        self.session.proxies.update(requests.utils.get_environ_proxies(base_url))
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if bundle:
            self.session.verify = bundle
        self.session.trust_env = False

    def request(self, *args: Any, **kwargs: Any) -> Response:
        started = time.perf_counter()
        try:
            response = super().request(*args, **kwargs)
        except requests.RequestException as exc:
            self.meter.call("twilio", time.perf_counter() - started)
            self.meter.error("twilio", "transient")
            raise TransientDeliveryError(f"twilio unreachable: {exc}") from exc
        status = response.status_code
        self.meter.call("twilio", time.perf_counter() - started, status)
        if status == 429 or status >= 500:
            self.meter.error("twilio", "transient")
            headers = response.headers or {}
            raise TransientDeliveryError(
                f"twilio HTTP {status}: {str(response.text)[:300]}",
                parse_retry_after(headers.get("Retry-After")),
            )
        return response


class SmsChannel:
    """The ``sms`` channel: Twilio when configured, else the outbox."""

    name: ClassVar[str] = "sms"
    max_batch: ClassVar[int] = 500

    def __init__(self, config: Mapping[str, Any]) -> None:
        sid, token = config.get("TWILIO_ACCOUNT_SID"), config.get("TWILIO_AUTH_TOKEN")
        self.transport = "twilio" if sid and token else "outbox"
        self.concurrency = int(config.get("SMS_CONCURRENCY", 16))
        self.client: Client | None = None
        self.sender: dict[str, str] = {}
        # Twilio reports delivery here; the query string names the delivery (receipts.py).
        self.status_callback = str(config.get("PUBLIC_URL") or "").rstrip("/") + (
            "/hooks/twilio/status"
        )
        self.meter = Meter.from_config(config)
        if sid and not token:
            raise ChannelConfigError("sms: BROADCASTER_TWILIO_AUTH_TOKEN is not set")
        if token and not sid:
            raise ChannelConfigError("sms: BROADCASTER_TWILIO_ACCOUNT_SID is not set")
        if self.transport == "twilio":
            if config.get("TWILIO_MESSAGING_SERVICE_SID"):
                self.sender = {"messaging_service_sid": str(config["TWILIO_MESSAGING_SERVICE_SID"])}
            elif config.get("TWILIO_FROM"):
                self.sender = {"from_": str(config["TWILIO_FROM"])}
            else:
                raise ChannelConfigError(
                    "sms: set BROADCASTER_TWILIO_FROM or BROADCASTER_TWILIO_MESSAGING_SERVICE_SID"
                )
            base_url = str(config["TWILIO_BASE_URL"]).rstrip("/")
            http = _HttpClient(
                float(config.get("PROVIDER_TIMEOUT", 15)), self.concurrency, self.meter, base_url
            )
            self.client = Client(str(sid), str(token), http_client=http)
            # The base URL is a real feature (regional endpoints, egress proxies).
            self.client.api.base_url = base_url
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="sms")

    def send(self, batch: list[Outgoing]) -> list[Result]:
        """Send every message concurrently; one Result per message, in order."""
        if self.client is None:
            return outbox.record(batch)
        return list(self._pool.map(self._send_one, batch))

    def _send_one(self, item: Outgoing) -> Result:
        assert self.client is not None
        options = dict(self.sender)
        announcement_id = item.content.get("announcement_id")
        if announcement_id and self.status_callback.startswith("http"):
            query = urlencode({"a": announcement_id, "s": item.subscriber_id})
            options["status_callback"] = f"{self.status_callback}?{query}"
        try:
            try:
                message = self.client.messages.create(
                    to=item.to, body=item.content["text"], **options
                )
            except TwilioRestException as exc:
                raise _classify(exc) from exc
        except DeliveryError as exc:
            if isinstance(exc, PermanentDeliveryError):
                self.meter.error("twilio", "permanent")
            return result_for(item, exc)
        return Result(item.subscriber_id, "sent", provider_id=message.sid)


def _classify(exc: TwilioRestException) -> DeliveryError:
    reason = f"twilio {exc.code or exc.status}: {exc.msg}"
    if exc.status in (401, 403):
        # Bad credentials are fixed by a person; retrying later may then succeed.
        return TransientDeliveryError(reason)
    return PermanentDeliveryError(reason)
