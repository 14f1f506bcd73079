"""Incidents: the words every layer uses for how bad a crisis is and where it stands.

An incident is one crisis with a timeline of announcements (stored with them, in
``announcements.py``); its severity and status are those of its latest published one.
"""

from __future__ import annotations

SEVERITIES = ("info", "minor", "major", "critical")
STATUSES = ("investigating", "identified", "monitoring", "resolved")
