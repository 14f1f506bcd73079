"""Who confirmed an announcement that asks to, who needs help, who cannot be reached.

An announcement to an audience with ``confirm`` (domain/confirm_plan.py) asks its people
to reply. Each person asked has one state per announcement, kept in Redis:

``waiting`` → ``confirmed`` (replied 1/OK, pressed 1, opened the link and confirmed),
``help`` (replied 2/HELP, pressed 2: call them back), or ``unreachable`` (every channel
tried, no answer: a person calls them). A late answer still counts: ``unreachable`` →
``confirmed`` or ``help``; ``help`` is never undone by a later "1" (a person must call).

Every move is one Lua call that keeps the counts, so they are exact and cheap to read live.
``answer`` is the one way in for replies (SMS and WhatsApp hooks, voice digits, the
email link); the escalation job (delivery/escalation.py) asks, escalates and gives up.
"""

from __future__ import annotations

import json
import time
import unicodedata
from collections.abc import Iterable, Iterator
from typing import Any

import redis

from broadcaster.domain.announcement import Announcement
from broadcaster.infra import metrics

STATES = ("waiting", "confirmed", "help", "unreachable")

# Whole answers that confirm or ask for help, per language, upper case; every language's
# words apply to everyone (as for STOP). Only the whole reply counts: "OK, but the power is
# still off" is a message for a person to read, not a confirmation.
CONFIRM_WORDS: dict[str, tuple[str, ...]] = {
    "en": ("1", "OK", "OKAY", "YES"),
    "nl": ("1", "OK", "OKE", "OKÉ", "JA"),
    "da": ("1", "OK", "JA"),
    "sv": ("1", "OK", "JA"),
}
HELP_WORDS: dict[str, tuple[str, ...]] = {
    "en": ("2", "HELP"),
    "nl": ("2", "HULP", "HELP"),
    "da": ("2", "HJÆLP", "HJAELP", "HELP"),
    "sv": ("2", "HJÄLP", "HJALP", "HELP"),
}
_CONFIRM = frozenset(w for words in CONFIRM_WORDS.values() for w in words)
_HELP = frozenset(w for words in HELP_WORDS.values() for w in words)
ANSWER_MAX = 20  # characters: longer is never one of the words, with punctuation around it
# What may surround the word ("Ok!", "1.", "'ja'"): stripped before the comparison.
_AROUND = " \t\r\n.!?,;:'\"()[]*-_~«»“”‘’\u00a0\u200b\ufeff"
_BY_ANSWER = {
    "confirmed": ("waiting", "unreachable"),
    "help": ("waiting", "unreachable", "confirmed"),
}

_MOVE = """
local allowed = {}
for s in string.gmatch(ARGV[2], '[^,]+') do allowed[s] = true end
local moved = {}
for i = 3, #ARGV do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  if allowed[cur or 'new'] then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[1])
    if cur then
      redis.call('HINCRBY', KEYS[2], cur, -1)
    else
      redis.call('HINCRBY', KEYS[2], 'asked', 1)
    end
    redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
    moved[#moved + 1] = ARGV[i]
  end
end
return moved
"""


def reading(body: Any) -> str | None:
    """``"confirmed"``, ``"help"`` or None for a reply's text (or a voice call's digits)."""
    if not isinstance(body, str) or len(body) > ANSWER_MAX:
        return None
    try:
        word = unicodedata.normalize("NFC", body).strip(_AROUND).upper()
    except ValueError:  # lone surrogates and the like: no answer of ours
        return None
    if word in _CONFIRM:
        return "confirmed"
    if word in _HELP:
        return "help"
    return None


def incident_key(incident_id: str) -> str:
    """The announcements of an incident that asked to confirm, by when they asked."""
    return f"bc:inc:{incident_id}:confirming"


class Confirmations:
    """The confirmation states of one announcement's people."""

    def __init__(self, r: redis.Redis, announcement_id: str) -> None:
        self.r = r
        self.announcement_id = announcement_id
        self._move = r.register_script(_MOVE)

    def _key(self, part: str) -> str:
        return f"bc:cf:{self.announcement_id}:{part}"

    def move(self, ids: Iterable[str], to: str, from_states: Iterable[str]) -> list[str]:
        """Move people whose state is in ``from_states`` (``new``: not asked yet) to ``to``."""
        ids = list(ids)
        if not ids:
            return []
        keys = [self._key("state"), self._key("counts")]
        moved = self._move(keys, [to, ",".join(from_states), *ids])
        return [m.decode() if isinstance(m, bytes) else m for m in moved]

    def ask(self, incident_id: str, ids: list[str], unreachable: list[str]) -> None:
        """Record whom the announcement asks (and who has no channel at all: unreachable)."""
        self.r.zadd(incident_key(incident_id), {self.announcement_id: time.time()}, nx=True)
        self.move(ids, "waiting", ["new"])
        gone = self.move(unreachable, "unreachable", ["new"])
        self.note(gone, {"reason": "no channel to reach them by"})

    def state(self, subscriber_id: str) -> str | None:
        value = self.r.hget(self._key("state"), subscriber_id)
        return value.decode() if value else None

    def note(self, ids: Iterable[str], details: dict[str, Any]) -> None:
        """Keep what happened to these people (their answer, by which channel, when…)."""
        ids = list(ids)
        if not ids:
            return
        key = self._key("notes")
        old = self.r.hmget(key, ids)
        now = time.time()
        merged = {
            sid: json.dumps({**(json.loads(raw) if raw else {}), **details, "at": now})
            for sid, raw in zip(ids, old, strict=True)
        }
        self.r.hset(key, mapping=merged)

    def notes(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        if not ids:
            return {}
        raw = self.r.hmget(self._key("notes"), ids)
        return {sid: json.loads(v) if v else {} for sid, v in zip(ids, raw, strict=True)}

    def escalated(self, ids: list[str], step: int) -> None:
        """These people got an escalation's channel (the ``escalated`` count)."""
        if ids:
            self.r.sadd(self._key("escalated"), *ids)
            self.note(ids, {"escalation": step})

    def counts(self) -> dict[str, int]:
        """asked, waiting, confirmed, help, unreachable and escalated (people, not messages)."""
        pipe = self.r.pipeline(transaction=False)
        pipe.hgetall(self._key("counts"))
        pipe.scard(self._key("escalated"))
        raw, escalated = pipe.execute()
        found = {k.decode(): int(v) for k, v in raw.items()}
        counts = {"asked": found.get("asked", 0)} | {s: found.get(s, 0) for s in STATES}
        return counts | {"escalated": int(escalated)}

    def ids_in(self, state: str, chunk: int = 1000) -> Iterator[list[str]]:
        """The ids in ``state``, streamed (HSCAN) in chunks."""
        cursor = 0
        while True:
            cursor, page = self.r.hscan(self._key("state"), cursor, count=chunk)
            ids = [sid.decode() for sid, value in page.items() if value.decode() == state]
            if ids:
                yield ids
            if cursor == 0:
                return

    def choose(self, step: int, picks: dict[str, str]) -> dict[str, str]:
        """Record the channel each person gets at escalation ``step``; a re-run of the step
        (after a crash) gets the first run's choice back, so it never climbs twice."""
        if not picks:
            return {}
        key = self._key(f"step:{step}")
        pipe = self.r.pipeline(transaction=False)
        for sid, channel in picks.items():
            pipe.hsetnx(key, sid, channel)
        pipe.execute()
        chosen = self.r.hmget(key, list(picks))
        return {sid: v.decode() for sid, v in zip(picks, chosen, strict=True) if v}

    def chosen(self, step: int, ids: list[str]) -> dict[str, str]:
        """The channels already chosen for these people at ``step`` (a re-run's)."""
        if not ids:
            return {}
        values = self.r.hmget(self._key(f"step:{step}"), ids)
        return {sid: v.decode() for sid, v in zip(ids, values, strict=True) if v}

    def finish(self, reason: str) -> bool:
        """Stop escalating (resolved, superseded, done); False if it was stopped before."""
        return bool(self.r.hsetnx(self._key("meta"), "finished", reason))

    def finished(self) -> str | None:
        value = self.r.hget(self._key("meta"), "finished")
        return value.decode() if value else None


def answer(
    svc: Any, announcement: Announcement, subscriber_id: str, channel: str, body: str
) -> str | None:
    """Take a person's reply to an announcement: ``"confirmed"``, ``"help"`` or None.

    None when the text is neither (or the announcement asked this person nothing): the
    caller keeps it as an ordinary reply. A HELP tells staff at once (``svc.on_help``).
    Never raises for anything a person can send.
    """
    kind = reading(body)
    if kind is None or not subscriber_id:
        return None
    book = Confirmations(svc.redis, announcement.id)
    if book.state(subscriber_id) is None:
        # The latest message they got may be a later update that asks nothing: the answer
        # is then to the incident's latest announcement that asked them.
        latest = svc.redis.zrevrange(incident_key(announcement.incident_id), 0, 0)
        book = Confirmations(svc.redis, latest[0].decode()) if latest else book
        if book.state(subscriber_id) is None:
            return None  # not asked: an ordinary reply
    moved = book.move([subscriber_id], kind, _BY_ANSWER[kind])
    if moved:
        book.note(moved, {"answer": kind, "channel": channel})
        metrics.count(svc.redis, "confirmations", kind, channel)
        if kind == "help":
            svc.on_help(book.announcement_id, subscriber_id)
    return kind
