"""Configuration from the environment (DESIGN.md §4), flowing into ``app.config``."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from dotenv import load_dotenv

from broadcaster.infra import redis_connect
from channels import PERSONAL, PROVIDERS

# (config key, environment variables in order of preference, default)
_SETTINGS: list[tuple[str, tuple[str, ...], str | None]] = [
    ("REDIS_URL", ("BROADCASTER_REDIS_URL", "REDIS_URL"), None),
    ("DATA_DIR", ("BROADCASTER_DATA_DIR",), "./var"),
    ("PLAN", ("BROADCASTER_PLAN",), None),
    ("SECRET_KEY", ("BROADCASTER_SECRET_KEY",), None),
    ("PUBLIC_URL", ("BROADCASTER_PUBLIC_URL",), "http://127.0.0.1:8000"),
    ("SENDGRID_API_KEY", ("BROADCASTER_SENDGRID_API_KEY", "SENDGRID_API_KEY"), None),
    ("SENDGRID_BASE_URL", ("BROADCASTER_SENDGRID_BASE_URL",), "https://api.sendgrid.com"),
    ("EMAIL_FROM", ("BROADCASTER_EMAIL_FROM",), "noreply@localhost"),
    ("TWILIO_ACCOUNT_SID", ("BROADCASTER_TWILIO_ACCOUNT_SID", "TWILIO_ACCOUNT_SID"), None),
    ("TWILIO_AUTH_TOKEN", ("BROADCASTER_TWILIO_AUTH_TOKEN", "TWILIO_AUTH_TOKEN"), None),
    ("TWILIO_FROM", ("BROADCASTER_TWILIO_FROM",), None),
    # The WhatsApp sender's number (channels/whatsapp.py); unset: TWILIO_FROM.
    ("TWILIO_WHATSAPP_FROM", ("BROADCASTER_TWILIO_WHATSAPP_FROM",), None),
    # The number voice calls come from (channels/voice.py); default: TWILIO_FROM.
    ("TWILIO_VOICE_FROM", ("BROADCASTER_TWILIO_VOICE_FROM",), None),
    # Our other numbers (a messaging service's pool, a voice caller ID), comma-separated:
    # refused as subscribers' phones, like TWILIO_FROM.
    ("SENDER_NUMBERS", ("BROADCASTER_SENDER_NUMBERS",), None),
    ("TWILIO_MESSAGING_SERVICE_SID", ("BROADCASTER_TWILIO_MESSAGING_SERVICE_SID",), None),
    ("TWILIO_BASE_URL", ("BROADCASTER_TWILIO_BASE_URL",), "https://api.twilio.com"),
    ("HOOKS_SECRET", ("BROADCASTER_HOOKS_SECRET",), None),
    # SendGrid Inbound Parse posts customers' email replies with it (web/hooks/email_inbound.py).
    ("INBOUND_EMAIL_SECRET", ("BROADCASTER_INBOUND_EMAIL_SECRET",), None),
    ("MASTODON_BASE_URL", ("BROADCASTER_MASTODON_BASE_URL",), None),
    ("MASTODON_ACCESS_TOKEN", ("BROADCASTER_MASTODON_ACCESS_TOKEN",), None),
    ("BLUESKY_BASE_URL", ("BROADCASTER_BLUESKY_BASE_URL",), None),
    ("BLUESKY_HANDLE", ("BROADCASTER_BLUESKY_HANDLE",), None),
    ("BLUESKY_APP_PASSWORD", ("BROADCASTER_BLUESKY_APP_PASSWORD",), None),
    ("SENDGRID_WEBHOOK_PUBLIC_KEY", ("BROADCASTER_SENDGRID_WEBHOOK_PUBLIC_KEY",), None),
    ("METRICS_TOKEN", ("BROADCASTER_METRICS_TOKEN",), None),
    # Staff in Slack, a thread per incident (channels/slack_threads.py): a bot token and a
    # channel id; the base URL is for tests.
    ("SLACK_BOT_TOKEN", ("BROADCASTER_SLACK_BOT_TOKEN",), None),
    # Helpdesks (channels/helpdesks.py): each optional, all its settings or none.
    ("ZENDESK_URL", ("BROADCASTER_ZENDESK_URL",), None),
    ("ZENDESK_EMAIL", ("BROADCASTER_ZENDESK_EMAIL",), None),
    ("ZENDESK_API_TOKEN", ("BROADCASTER_ZENDESK_API_TOKEN",), None),
    ("FRESHDESK_URL", ("BROADCASTER_FRESHDESK_URL",), None),
    ("FRESHDESK_API_KEY", ("BROADCASTER_FRESHDESK_API_KEY",), None),
    ("SLACK_CHANNEL", ("BROADCASTER_SLACK_CHANNEL",), None),
    ("SLACK_BASE_URL", ("BROADCASTER_SLACK_BASE_URL",), None),
    ("LOG_FORMAT", ("BROADCASTER_LOG_FORMAT",), "text"),
    ("LOG_LEVEL", ("BROADCASTER_LOG_LEVEL",), "INFO"),
]

# Tunables with sensible production defaults; tests shorten the delays.
_NUMERIC: list[tuple[str, str, float]] = [
    ("SMS_CONCURRENCY", "BROADCASTER_SMS_CONCURRENCY", 16),
    # Calls placed at once by one batch job (paced by TWILIO_VOICE_RATE, calls/s per number).
    ("VOICE_CONCURRENCY", "BROADCASTER_VOICE_CONCURRENCY", 4),
    ("MAX_ATTEMPTS", "BROADCASTER_MAX_ATTEMPTS", 5),
    # Approvers hear of the first pending announcement at once; what follows within this
    # many seconds comes as one digest at its end (0: every one on its own).
    ("APPROVAL_NOTICE_WINDOW", "BROADCASTER_APPROVAL_NOTICE_WINDOW", 60),
    # Seconds a resolved incident's saved replies stay in the helpdesks (one day).
    ("HELPDESK_DEACTIVATE_AFTER", "BROADCASTER_HELPDESK_DEACTIVATE_AFTER", 86400),
    ("RETRY_BACKOFF", "BROADCASTER_RETRY_BACKOFF", 10),
    ("RETRY_BACKOFF_MAX", "BROADCASTER_RETRY_BACKOFF_MAX", 600),
    ("PROVIDER_TIMEOUT", "BROADCASTER_PROVIDER_TIMEOUT", 15),
    ("MAX_BODY_BYTES", "BROADCASTER_MAX_BODY_BYTES", 10_000),
    ("BANNER_MAX_AGE", "BROADCASTER_BANNER_MAX_AGE", 15),
    ("BANNER_POLL", "BROADCASTER_BANNER_POLL", 30),
    # Each web process keeps /banner.json and the status pages this long (s; 0: never).
    ("BANNER_PROCESS_CACHE", "BROADCASTER_BANNER_PROCESS_CACHE", 1),
    ("BANNER_ALL_CLEAR_SECONDS", "BROADCASTER_BANNER_ALL_CLEAR_SECONDS", 1800),
    ("MAX_IMPORT_BYTES", "BROADCASTER_MAX_IMPORT_BYTES", 256 * 1024 * 1024),
    # Breaker: transient failures in a row → down for COOLOFF s.
    ("BREAKER_THRESHOLD", "BROADCASTER_BREAKER_THRESHOLD", 5),
    ("BREAKER_COOLOFF", "BROADCASTER_BREAKER_COOLOFF", 60),
    # Sign-in throttle (web/signin_limit.py): failures count for WINDOW s; hard limits per
    # (account, address) and per address; per account only a delay, doubling, at most 30 s.
    ("SIGNIN_WINDOW", "BROADCASTER_SIGNIN_WINDOW", 300),
    ("SIGNIN_ACCOUNT_ADDRESS_LIMIT", "BROADCASTER_SIGNIN_ACCOUNT_ADDRESS_LIMIT", 5),
    ("SIGNIN_ADDRESS_LIMIT", "BROADCASTER_SIGNIN_ADDRESS_LIMIT", 20),
    ("SIGNIN_FREE_FAILURES", "BROADCASTER_SIGNIN_FREE_FAILURES", 3),
    ("SIGNIN_DELAY", "BROADCASTER_SIGNIN_DELAY", 1),
    ("SIGNIN_MAX_DELAY", "BROADCASTER_SIGNIN_MAX_DELAY", 30),
    # Monitoring hooks: requests per token per window (s), a token bucket; 0: no limit.
    # Generous, so a real Alertmanager's grouped notifications (an HA pair: twice) pass.
    ("HOOKS_RATE_LIMIT", "BROADCASTER_HOOKS_RATE_LIMIT", 120),
    ("HOOKS_RATE_WINDOW", "BROADCASTER_HOOKS_RATE_WINDOW", 60),
    # Replays: a SendGrid event batch signed longer ago than this (s) is refused; an inbound
    # SMS without a MessageSid is dropped if the same sender sent the same text this recently.
    ("SENDGRID_EVENT_MAX_AGE", "BROADCASTER_SENDGRID_EVENT_MAX_AGE", 600),
    ("INBOUND_DEDUPE_WINDOW", "BROADCASTER_INBOUND_DEDUPE_WINDOW", 600),
    # Staff first: at most this many seconds between the brief and the customers, whatever
    # the plan's [staff] lead_seconds (0: customers right after the brief; drills, tests).
    ("STAFF_LEAD_MAX", "BROADCASTER_STAFF_LEAD_MAX", 60),
    # Seconds in one of a plan's confirm.within_minutes (60; rehearsals and tests shorten it).
    ("CONFIRM_MINUTE_SECONDS", "BROADCASTER_CONFIRM_MINUTE_SECONDS", 60),
    # Self-subscription (/subscribe): seconds a sign-up waits for its confirmation, and
    # sign-ups per contact and per caller IP within the window (0: no limit).
    ("SUBSCRIBE_CONFIRM_TTL", "BROADCASTER_SUBSCRIBE_CONFIRM_TTL", 24 * 3600),
    ("SUBSCRIBE_LIMIT_PER_ADDRESS", "BROADCASTER_SUBSCRIBE_LIMIT_PER_ADDRESS", 3),
    ("SUBSCRIBE_LIMIT_PER_IP", "BROADCASTER_SUBSCRIBE_LIMIT_PER_IP", 30),
    ("SUBSCRIBE_LIMIT_WINDOW", "BROADCASTER_SUBSCRIBE_LIMIT_WINDOW", 3600),
    # The channels declare their own defaults: batch sizes (EMAIL_BATCH_SIZE, SMS_BATCH_SIZE)
    # and provider rates shared by all workers, in requests/s (TWILIO_RATE, SENDGRID_RATE,
    # MASTODON_RATE, BLUESKY_RATE; Twilio's 0 = by its sender, see channels/sms.py).
    *((c.batch_setting, f"BROADCASTER_{c.batch_setting}", c.max_batch) for c in PERSONAL.values()),
    *((c.rate_setting, f"BROADCASTER_{c.rate_setting}", c.rate) for c in PROVIDERS.values()),
]


class ConfigError(Exception):
    """A setting is missing or malformed; raised at start-up, never mid-crisis."""


def from_environment(environ: Mapping[str, str] | None = None) -> dict[str, object]:
    """Read every setting from ``environ`` (default: the process environment + ``.env``)."""
    if environ is None:
        load_dotenv(os.environ.get("BROADCASTER_DOTENV", ".env"), override=False)
        environ = os.environ
    config: dict[str, object] = {}
    for key, names, default in _SETTINGS:
        config[key] = next((environ[n] for n in names if environ.get(n)), default)
    for key, name, default in _NUMERIC:
        raw = environ.get(name)
        try:
            value = float(raw) if raw else default
        except ValueError as exc:
            raise ConfigError(f"{name}: expected a number, got {raw!r}") from exc
        config[key] = int(value) if float(value).is_integer() else value
    check_redis_url(config["REDIS_URL"])
    return config


def check_redis_url(url: object, contact: bool = False) -> None:
    """Refuse a malformed BROADCASTER_REDIS_URL at start-up, saying what is wrong
    (``contact``: also one that leads to a sentinel instead of a Redis)."""
    if not url:
        return
    try:
        redis_connect.check(str(url))
        if contact:
            redis_connect.refuse_a_sentinel(str(url))
    except redis_connect.RedisUrlError as exc:
        raise ConfigError(f"BROADCASTER_REDIS_URL: {exc}") from exc


def ensure_secret_key(data_dir: Path) -> str:
    """Return the secret key kept in the data dir, creating it on first start."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()
