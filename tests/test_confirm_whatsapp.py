"""Escalation by WhatsApp: the template carries the request to confirm, the reply answers.

The plan escalates to WhatsApp, then SMS. Someone who agreed to WhatsApp gets the approved
template (its ``confirm`` variable asks for the reply) and answers "1" on WhatsApp; someone
who never agreed skips that rung and gets the SMS, and answers "2". Real RQ workers, the
real Twilio SDK against the fake Twilio (which checks the WhatsApp shapes), signed inbound.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask import Flask

from tests.helpers import announce
from tests.test_confirm import (
    MINUTE,
    OUTAGE,
    PLAN,
    confirmations,
    medical,
    run,
    run_when_due,
    sms_reply,
)
from tests.test_webhook import SECRET, Receiver
from tests.test_whatsapp import OPTED_IN, whatsapp_in

EN_SID = "HX" + "c" * 32
TEMPLATES = f"""
[whatsapp.templates.en]
content_sid = "{EN_SID}"
variables = {{ "1" = "title", "2" = "body", "3" = "status_url", "4" = "confirm" }}
"""


@pytest.fixture
def app(make_app, tmp_path: Path, twilio) -> Flask:
    receiver = Receiver()
    twilio.content_templates.update({EN_SID: {"1", "2", "3", "4"}})
    text = PLAN.replace("{url}", receiver.url).replace("{secret}", SECRET)
    text = text.replace(
        'confirm = { within_minutes = 1, escalate = ["sms"] }',
        'confirm = { within_minutes = 1, escalate = ["whatsapp", "sms"] }',
    )
    assert '"whatsapp", "sms"' in text
    plan = tmp_path / "plan.toml"
    plan.write_text(text + TEMPLATES, "utf-8")
    yield make_app(PLAN=str(plan), CONFIRM_MINUTE_SECONDS=MINUTE)
    receiver.release.set()
    receiver.stop()


def test_whatsapp_then_sms_for_who_never_agreed_to_whatsapp(app, client, tokens, twilio):
    [agreed] = medical(client, tokens, 1, 97, **OPTED_IN)
    [never] = medical(client, tokens, 1, 98)
    created = announce(client, tokens["admin"], OUTAGE)
    run(app)
    assert twilio.accepted() == []  # the first message: email only

    run_when_due(app, f"confirm-{created['id']}-1")
    [template] = [f for f in twilio.accepted() if f["To"].startswith("whatsapp:")]
    assert template["To"] == f"whatsapp:{agreed['phone']}"
    assert template["ContentSid"] == EN_SID
    variables = json.loads(template["ContentVariables"])
    assert variables["4"] == "Reply 1 or OK to confirm, 2 or HELP if you need us."
    [text] = [f for f in twilio.accepted() if not f["To"].startswith("whatsapp:")]
    assert text["To"] == never["phone"]  # no WhatsApp rung without the opt-in: SMS at once

    assert whatsapp_in(client, agreed["phone"], "1").status_code == 200
    sms_reply(client, never["phone"], "2")
    found = confirmations(client, tokens, created["incident_id"])
    assert found["counts"]["confirmed"] == 1 and found["counts"]["help"] == 1
    assert found["counts"]["escalated"] == 2 and found["counts"]["waiting"] == 0
    assert [p["answered_by"] for p in found["help"]] == ["sms"]
