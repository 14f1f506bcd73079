"""Logging: plain text or one JSON object per line, ids attached, contacts and secrets masked.

``BROADCASTER_LOG_FORMAT=json`` (for log shippers) or ``text`` (the default, for people at
a terminal). Every record gets ``announcement_id`` / ``incident_id`` when they are known —
passed as ``extra``, bound with :func:`bind`, taken from the RQ job being run, or from the
URL of the request being served. A filter on the handler masks phone numbers and email
addresses at INFO and above and removes secrets (configured keys and tokens, Authorization
values, unsubscribe tokens) at every level, including from tracebacks.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from typing import Any, TextIO

from pythonjsonlogger.json import JsonFormatter

from broadcaster.config import ConfigError

FORMATS = ("text", "json")
ID_FIELDS = ("announcement_id", "incident_id")
# Settings whose values must never appear in a log line.
SECRET_SETTINGS = (
    "SECRET_KEY",
    "SENDGRID_API_KEY",
    "TWILIO_AUTH_TOKEN",
    "MASTODON_ACCESS_TOKEN",
    "BLUESKY_APP_PASSWORD",
    "HOOKS_SECRET",
    "METRICS_TOKEN",
)
REDACTED = "[redacted]"

_PHONE = re.compile(r"(?<![\w+])\+\d[\d \-]{6,17}\d(?!\d)")
_EMAIL = re.compile(r"[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+")
_SECRET_PATTERNS = (
    (re.compile(r"\b(Bearer|Basic)\s+[\w\-.~+/=]+", re.IGNORECASE), rf"\1 {REDACTED}"),
    (re.compile(r"\bbct_[\w\-]{8,}"), REDACTED),  # our API tokens
    (re.compile(r"\bSG\.[\w\-.]{10,}"), REDACTED),  # SendGrid API keys
    (re.compile(r"/unsubscribe/[\w\-.]+"), f"/unsubscribe/{REDACTED}"),  # signed, usable links
)
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

_bound: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "broadcaster_log_ids", default=None
)
_incident_of: dict[str, str] = {}  # announcement id → incident id (they never change)


def mask_contact(value: str) -> str:
    """Enough of an address to recognise it, not enough to use it (for logs and the ledger)."""
    if "@" in value:
        local, _, domain = value.partition("@")
        return f"{local[:1]}…@{domain}"
    return value[:4] + "…" + value[-3:] if len(value) > 7 else "…" + value[-2:]


@contextlib.contextmanager
def bind(**ids: str) -> Iterator[None]:
    """Attach ``announcement_id=`` / ``incident_id=`` to every record logged inside."""
    token = _bound.set({**(_bound.get() or {}), **{k: v for k, v in ids.items() if v}})
    try:
        yield
    finally:
        _bound.reset(token)


def _context_ids() -> dict[str, str]:
    """Ids from bind(), the current RQ job's first argument, or the request's URL."""
    ids = dict(_bound.get() or {})
    if "announcement_id" not in ids:
        from rq import get_current_job

        job = get_current_job()
        if job is not None and job.args and str(job.args[0]).startswith("ann_"):
            ids["announcement_id"] = str(job.args[0])
    # Flask not imported (a command): no request nor app to look at, and no 0.1 s to import.
    flask = sys.modules.get("flask")
    if flask is not None and flask.has_request_context() and flask.request.view_args:
        for field in ID_FIELDS:
            value = flask.request.view_args.get(field)
            if isinstance(value, str):
                ids.setdefault(field, value)
    announcement_id = ids.get("announcement_id")
    if announcement_id and "incident_id" not in ids and flask and flask.has_app_context():
        ids.update(_incident(announcement_id))
    return ids


def _incident(announcement_id: str) -> dict[str, str]:
    if announcement_id not in _incident_of:
        from flask import current_app  # only called within an app context

        services = current_app.extensions.get("broadcaster")
        try:
            found = services.announcements.get(announcement_id).incident_id
        except Exception:  # noqa: BLE001 - logging must never fail because of a lookup
            return {}
        if len(_incident_of) > 10_000:
            _incident_of.clear()
        _incident_of[announcement_id] = found
    return {"incident_id": _incident_of[announcement_id]}


class Redactor(logging.Filter):
    """Masks contacts (INFO and above) and removes secrets (always) from records."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        # Longest first, so a secret that contains another is removed whole.
        self.secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def clean(self, text: str, mask_contacts: bool) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        for pattern, replacement in _SECRET_PATTERNS:
            text = pattern.sub(replacement, text)
        if mask_contacts:
            text = _PHONE.sub(lambda m: mask_contact(re.sub(r"[ \-]", "", m.group())), text)
            text = _EMAIL.sub(lambda m: mask_contact(m.group()), text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            self._redact(record)
        except Exception:  # noqa: BLE001 - a bad record must not lose the line or raise
            record.msg, record.args = f"[unformattable log record from {record.name}]", None
            record.exc_info = record.exc_text = None
        return True

    def _redact(self, record: logging.LogRecord) -> None:
        for field, value in _context_ids().items():
            if not getattr(record, field, None):
                setattr(record, field, value)
        mask = record.levelno >= logging.INFO
        record.msg, record.args = self.clean(record.getMessage(), mask), None
        if record.exc_info:
            # Exception messages carry provider answers ("The 'To' number +31… is…").
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = self.clean(record.exc_text, mask)
        for field, value in list(record.__dict__.items()):
            if field not in _STANDARD and isinstance(value, str):
                setattr(record, field, self.clean(value, mask))


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message [announcement_id=… incident_id=…]``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = " ".join(f"{f}={getattr(record, f)}" for f in ID_FIELDS if getattr(record, f, None))
        return f"{line} [{ids}]" if ids else line


def formatter(kind: str) -> logging.Formatter:
    """The formatter for ``text`` or ``json``."""
    if kind == "json":
        return JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    return TextFormatter()


def redactor(config: Mapping[str, Any]) -> Redactor:
    """The filter that masks contacts and removes this configuration's secrets."""
    return Redactor([str(config[k]) for k in SECRET_SETTINGS if config.get(k)])


def configure(config: Mapping[str, Any], stream: TextIO | None = None) -> logging.Handler:
    """Install (or update) the one root handler; safe to call once per app created."""
    kind = str(config.get("LOG_FORMAT") or "text").lower()
    if kind not in FORMATS:
        raise ConfigError(f"BROADCASTER_LOG_FORMAT: expected text or json, not {kind!r}")
    level = str(config.get("LOG_LEVEL") or "INFO").upper()
    if not isinstance(logging.getLevelName(level), int):
        raise ConfigError(f"BROADCASTER_LOG_LEVEL: not a log level: {level!r}")
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "_broadcaster", False)), None)
    if handler is None:
        handler = logging.StreamHandler(stream or sys.stderr)
        handler._broadcaster = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    elif isinstance(handler, logging.StreamHandler):
        handler.setStream(stream or sys.stderr)
    handler.setFormatter(formatter(kind))
    for old in list(handler.filters):
        handler.removeFilter(old)
    handler.addFilter(redactor(config))
    root.setLevel(level)
    # The Twilio SDK logs every request (phone numbers included) at INFO: keep that quiet.
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
    return handler
