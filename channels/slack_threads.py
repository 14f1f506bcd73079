"""Staff in Slack, one thread per incident: the Slack SDK's ``chat.postMessage`` with a bot
token, each post after the first a reply in the incident's thread (``thread_ts``).

An incoming webhook (a ``[[webhooks]]`` target with ``format = "slack"``) cannot thread;
with ``BROADCASTER_SLACK_BOT_TOKEN`` and ``BROADCASTER_SLACK_CHANNEL`` set, the brief, each
update and each approval waiting land in one thread per incident, so a busy staff channel
shows one line per incident. Not configured: this channel does nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler

from channels.base import (
    ChannelConfigError,
    PermanentDeliveryError,
    TransientDeliveryError,
    parse_retry_after,
)
from channels.webhook import escape  # Slack mrkdwn, as for incoming webhooks

PLACE = "slack:thread"  # its name among the staff places (ledger, jobs)


class SlackThreads:
    """Posts to one Slack channel through a bot, threaded per incident."""

    provider: ClassVar[str] = "slack"
    # Slack's errors a person must fix (the token, the channel, the bot's membership).
    permanent_errors: ClassVar[frozenset[str]] = frozenset(
        {
            "invalid_auth",
            "not_authed",
            "account_inactive",
            "token_revoked",
            "channel_not_found",
            "not_in_channel",
            "is_archived",
            "missing_scope",
            "msg_too_long",
            "no_text",
            "invalid_arguments",
        }
    )

    def __init__(self, config: Mapping[str, Any]) -> None:
        token = config.get("SLACK_BOT_TOKEN")
        self.channel = str(config.get("SLACK_CHANNEL") or "")
        if token and not self.channel:
            raise ChannelConfigError("slack: BROADCASTER_SLACK_CHANNEL is not set (a channel id)")
        if self.channel and not token:
            raise ChannelConfigError("slack: BROADCASTER_SLACK_BOT_TOKEN is not set")
        self.client: WebClient | None = None
        if token:
            self.client = WebClient(
                token=str(token),
                base_url=str(config.get("SLACK_BASE_URL") or WebClient.BASE_URL),
                timeout=int(float(config.get("PROVIDER_TIMEOUT", 15))),
                # A dropped connection is retried once by the SDK; a 429 is ours to schedule.
                retry_handlers=[ConnectionErrorRetryHandler(max_retry_count=1)],
            )

    @property
    def configured(self) -> bool:
        return self.client is not None

    def post(self, text: str, thread_ts: str | None = None) -> str:
        """Post ``text`` (a reply in ``thread_ts`` if given); returns the message's ``ts``."""
        if self.client is None:
            raise PermanentDeliveryError("slack: no bot token configured")
        try:
            answer = self.client.chat_postMessage(
                channel=self.channel,
                text=escape(text),
                thread_ts=thread_ts,
                unfurl_links=False,
                unfurl_media=False,
            )
        except SlackApiError as exc:
            error = str(exc.response.get("error") or "")
            status = exc.response.status_code
            reason = f"slack: {error or 'error'} (HTTP {status})"
            if status == 429 or status >= 500:
                retry = parse_retry_after(exc.response.headers.get("Retry-After"))
                raise TransientDeliveryError(reason, retry) from exc
            if error in self.permanent_errors:
                raise PermanentDeliveryError(reason) from exc
            raise TransientDeliveryError(reason) from exc
        except (SlackClientError, OSError) as exc:
            raise TransientDeliveryError(f"slack unreachable: {type(exc).__name__}") from exc
        return str(answer["ts"])
