"""Where subscribers live in Redis: their hashes, the contact index and the sorted sets of
everyone and of each audience (``domain/subscribers.py``, ``domain/subscriber_upsert.py``)."""

from __future__ import annotations

ALL_KEY = "bc:subs"  # everyone, scored by creation order (seq)
INDEX_KEY = "bc:subx"  # "ext:…", "email:…", "phone:…" → subscriber id
SEQ_KEY = "bc:subs:seq"
# How a person is found again, in order of preference: (index prefix, field).
LOOKUPS = (("ext", "external_id"), ("email", "email"), ("phone", "phone"))


def sub_key(subscriber_id: str) -> str:
    return f"bc:sub:{subscriber_id}"


def audience_key(audience: str) -> str:
    return f"bc:aud:{audience}"
