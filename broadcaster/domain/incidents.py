"""Incidents: the words every layer uses for how bad a crisis is and where it stands.

An incident is one crisis with a timeline of announcements (stored with them, in
``announcements.py``); its severity and status are those of its latest published one.
A scheduled maintenance is an incident too (``domain/maintenances.py``), whose
announcements take the maintenance statuses; ``completed`` and ``cancelled`` close it
as ``resolved`` closes an incident (``closes``).
"""

from __future__ import annotations

SEVERITIES = ("info", "minor", "major", "critical")
# What a person may choose for an incident (the API, the compose form).
STATUSES = ("investigating", "identified", "monitoring", "resolved")
# Given only by a maintenance's transitions (delivery/maintenances.py).
MAINTENANCE_STATUSES = ("scheduled", "in_progress", "completed", "cancelled")
ALL_STATUSES = STATUSES + MAINTENANCE_STATUSES
# The statuses that are an incident's last word: its components return to operational,
# email and SMS go exactly to whom it reached, it promises nothing more.
CLOSING = frozenset({"resolved", "completed", "cancelled"})


def closes(status: str | None) -> bool:
    """Whether an announcement with ``status`` closes its incident (resolved, completed…)."""
    return status in CLOSING


def is_maintenance(statuses: list[str]) -> bool:
    """Whether a timeline with these statuses is a scheduled maintenance's."""
    return any(s in MAINTENANCE_STATUSES for s in statuses)
