"""The crisis plan and helpers the voice tests share (test_voice.py, test_voice_text.py)."""

from __future__ import annotations

import time
from pathlib import Path

from flask import Flask

from broadcaster.domain.announcement import Announcement
from broadcaster.domain.plan import Plan
from broadcaster.rendering.messages import Renderer

EMERGENCY = "+31201234567"  # the route named by emergency_route, not the first phone route
SPELLED = "0 2 0, 1 2 3, 4 5 6 7"  # the emergency number as the national format says it

PLAN = """
[organisation]
name = "Acme Energy"
default_locale = "en"
locales = ["en", "nl", "da", "sv"]
default_region = "NL"
timezone = "Europe/Amsterdam"

[policy]
fallback = { voice = "sms" }

[channels_by_severity]
info = ["banner"]
minor = ["banner", "voice"]
major = ["banner", "voice"]
critical = ["banner", "voice", "sms"]

[audiences.medical]
description = "Customers on medical equipment"
channels = ["voice", "sms", "email", "banner"]
emergency_route = "Emergency"

[[audiences.medical.routes]]
need = { en = "Billing", nl = "Facturen", da = "Fakturering", sv = "Fakturering" }
channel = { en = "Customer portal", nl = "Klantportaal", da = "Kundeportal", sv = "Kundportal" }
contact = "https://acme.example/portal"

[[audiences.medical.routes]]
need = { en = "Fault", nl = "Storing", da = "Fejl", sv = "Fel" }
channel = { en = "Phone", nl = "Telefoon", da = "Telefon", sv = "Telefon" }
contact = "+31 20 765 4321"

[[audiences.medical.routes]]
need = { en = "Emergency", nl = "Noodgeval", da = "Nødsituation", sv = "Nödsituation" }
channel = { en = "Phone", nl = "Telefoon", da = "Telefon", sv = "Telefon" }
contact = "+31 20 123 4567"
hours = "24/7"
"""


def render(
    plan: Plan, title: str, body: str, locale: str, exercise: bool = False
) -> dict[str, str]:
    """The voice content of a major announcement to the medical audience, in ``locale``."""
    app = Flask(__name__, template_folder=str(Path(__file__).parents[1] / "templates"))
    app.config["PUBLIC_URL"] = "http://127.0.0.1:8000"
    announcement = Announcement(
        id="a1",
        incident_id="i1",
        title=title,
        body=body,
        severity="major",
        status="investigating",
        audiences=["medical"],
        channels=["voice"],
        author="test",
        state="published",
        created_at=time.time(),
        next_update_at=time.time() + 2 * 86400,
        exercise=exercise,
    )
    return Renderer(app, plan).render("voice", announcement, ["medical"], locale).content
