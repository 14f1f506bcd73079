"""Signed confirm links: one per announcement and person, checked without Redis.

An email that asks to confirm (domain/confirm_plan.py) carries the person's own link; the
public page it opens (web/confirm.py) confirms on POST only, so a mail scanner that follows
links confirms nobody. Shaped like the unsubscribe links (domain/unsubscribe_links.py),
with a key of its own: one kind of link is never taken for the other.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import time

MAX_AGE = 7 * 24 * 3600  # an escalation is over in hours; a week covers a late reader
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@functools.lru_cache(maxsize=8)
def _key(secret: str) -> bytes:
    return hmac.new(secret.encode(), b"confirm-link-v1", hashlib.sha256).digest()


def _mac(secret: str, body: str) -> str:
    digest = hmac.new(_key(secret), body.encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def link(secret: str, public_url: str, announcement_id: str, subscriber_id: str) -> str:
    """The confirm URL for one person and announcement: ``ann.sub.issued.mac`` (HMAC)."""
    body = f"{announcement_id}.{subscriber_id}.{int(time.time()):x}"
    return f"{public_url.rstrip('/')}/confirm/{body}.{_mac(secret, body)}"


def read(secret: str, token: str, max_age: int = MAX_AGE) -> tuple[str, str] | None:
    """(announcement id, subscriber id) a token names, or None if forged, malformed or old."""
    if not isinstance(token, str) or len(token) > 300:
        return None
    parts = token.split(".")
    if len(parts) != 4:
        return None
    announcement_id, subscriber_id, issued, mac = parts
    if not (_ID.match(announcement_id) and _ID.match(subscriber_id)):
        return None
    body = f"{announcement_id}.{subscriber_id}.{issued}"
    if not hmac.compare_digest(mac.encode(), _mac(secret, body).encode()):
        return None
    try:
        age = time.time() - int(issued, 16)
    except ValueError:
        return None
    return (announcement_id, subscriber_id) if 0 <= age + 60 and age <= max_age else None
