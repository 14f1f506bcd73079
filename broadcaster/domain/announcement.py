"""The announcement: one message in an incident's timeline, as a typed value.

Published announcements never change; every state change makes a new value
(``dataclasses.replace``) that the service stores. Stored as JSON with the same keys as
the attributes, so records written by earlier versions load unchanged.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

STATES = ("pending_approval", "published", "rejected")


@dataclass(frozen=True)
class Announcement:
    """One announcement. ``state`` is ``pending_approval``, ``published`` or ``rejected``."""

    id: str
    incident_id: str
    title: str
    body: str
    severity: str
    status: str
    audiences: list[str]
    channels: list[str]
    author: str
    state: str
    created_at: float
    translations: dict[str, dict[str, str]] = field(default_factory=dict)
    corrects: str | None = None
    next_update_at: float | None = None
    # The need this is about (a route's need label in the plan's default locale): short
    # texts show that route. None (and records from before it existed): the plan decides.
    need: str | None = None
    published_at: float | None = None
    approved_by: str | None = None
    rejected_by: str | None = None
    rejected_at: float | None = None
    reason: str | None = None
    bypass_reason: str | None = None
    # The people behind ``author`` and the approver or rejecter (a token's name is not a
    # person: one person may hold several tokens). Records from before this default to the
    # token name, which is what four eyes compared then.
    author_person: str = ""
    decided_by_person: str | None = None
    # Approved with the plan (a holding statement from monitoring): staff are still told
    # first, but customers do not wait for the plan's staff lead.
    preapproved: bool = False
    # When the corrected announcement was published: every correction names that time, and
    # a published announcement never changes, so it is kept here rather than looked up.
    corrects_published_at: float | None = None
    # Withdrawn by an admin, in the open: it leaves the banner and the current view and
    # stays in the public history with the reason. Nothing published is ever deleted.
    withdrawn_at: float | None = None
    withdrawn_by: str | None = None
    withdrawn_reason: str | None = None
    # Component states this announcement sets ({"payments": "major_outage"}): the status
    # page's components (domain/components.py, domain/component_history.py).
    components: dict[str, str] = field(default_factory=dict)
    # Part of a drill (its incident's ``drill_id``): reaches only the plan's drill
    # audiences, marked as an exercise, and never a public surface (``visibility``).
    exercise: bool = False

    def __post_init__(self) -> None:
        if not self.author_person:
            object.__setattr__(self, "author_person", self.author)

    @property
    def published(self) -> bool:
        return self.state == "published"

    @property
    def standing(self) -> bool:
        """Published and not withdrawn: what the current view, the banner and the
        incident's facts are made of."""
        return self.published and self.withdrawn_at is None

    def reaches(self, channel: str) -> bool:
        """Whether this announcement goes out on ``channel``."""
        return channel in self.channels

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (API bodies, webhooks, storage)."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Announcement:
        """Load a stored record; keys this version does not know are ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_json(cls, raw: str | bytes) -> Announcement:
        return cls.from_dict(json.loads(raw))
