"""``policy.fallback``: an SMS that fails for good goes by email, recorded in both."""

from __future__ import annotations

import tomllib
from collections import Counter

import pytest

from broadcaster.domain.ledger import Ledger
from broadcaster.domain.plan import BUNDLED_PLAN, PlanError, parse_plan
from channels import PERSONAL
from tests.helpers import PAYMENTS_DOWN, announce, drain, subscribe

PERSONAL_LIST = ", ".join(PERSONAL)


def by_channel(app, announcement_id):
    ledger = Ledger(app.extensions["broadcaster"].redis, announcement_id)
    return {(d["channel"], d["to"]): d for d in ledger.page(0, 100)}


def test_a_failed_sms_goes_by_email_to_those_who_can_get_it(
    app, client, tokens, run_jobs, providers
):
    sendgrid, twilio = providers
    twilio.invalid_numbers.update({"+31612345001", "+31612345002", "+31612345003", "+31612345005"})
    subscribe(
        client,
        tokens["admin"],
        [
            # An invalid number and an email address: the email carries the message.
            {"phone": "+31612345001", "email": "landline@example.com", "audiences": ["consumers"]},
            # No email address: nothing to fall back to.
            {"phone": "+31612345002", "audiences": ["consumers"]},
            # Opted out of email: the fallback respects it.
            {"phone": "+31612345003", "email": "no-mail@example.com", "audiences": ["consumers"]},
            # A good number: no fallback.
            {"phone": "+31612345004", "email": "fine@example.com", "audiences": ["consumers"]},
            # Chose SMS only: their choice stands, no email.
            {
                "phone": "+31612345005",
                "email": "sms-only@example.com",
                "channels": ["sms"],
                "audiences": ["consumers"],
            },
        ],
    )
    people = client.get("/api/v1/subscribers", headers=tokens["admin"]).get_json()["items"]
    opted = next(p for p in people if p.get("email") == "no-mail@example.com")
    r = app.extensions["broadcaster"].redis
    from broadcaster.domain.subscribers import SubscriberStore

    SubscriberStore(r).set_opt_outs(opted["id"], ["email"], opted_out=True)
    ann = announce(client, tokens["admin"], PAYMENTS_DOWN, channels=["sms"])["id"]  # SMS only
    run_jobs()

    assert [address for address, _ in sendgrid.accepted()] == ["landline@example.com"]
    records = by_channel(app, ann)
    sms = records[("sms", "+316…001")]
    assert sms["state"] == "failed" and "21211" in sms["error"]
    assert sms["fallback"] == "email"
    email = records[("email", "l…@example.com")]
    assert email["state"] == "sent" and email["fallback_from"] == "sms"
    assert records[("sms", "+316…002")]["fallback"] is None
    assert records[("sms", "+316…003")]["fallback"] is None
    assert records[("sms", "+316…004")]["state"] == "sent"
    assert records[("sms", "+316…005")]["fallback"] is None
    assert Counter(channel for channel, _ in records) == {"sms": 5, "email": 1}
    # The API shows both sides of the fallback too.
    shown = client.get(f"/api/v1/announcements/{ann}/deliveries", headers=tokens["admin"])
    pairs = {(d["channel"], d["fallback"], d["fallback_from"]) for d in shown.get_json()["items"]}
    assert ("sms", "email", None) in pairs and ("email", None, "sms") in pairs


def test_who_already_gets_the_email_gets_it_once(client, tokens, run_jobs, providers):
    sendgrid, twilio = providers
    twilio.invalid_numbers.add("+31612345001")
    subscribe(
        client,
        tokens["admin"],
        [{"phone": "+31612345001", "email": "both@example.com", "audiences": ["consumers"]}],
    )
    announce(client, tokens["admin"], PAYMENTS_DOWN, channels=["sms", "email"])
    run_jobs()
    assert [address for address, _ in sendgrid.accepted()] == ["both@example.com"]


def test_without_the_setting_a_failed_sms_stays_failed(make_app, tokens, providers, tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text(
        "\n".join(
            line
            for line in BUNDLED_PLAN.read_text().splitlines()
            if not line.startswith("fallback")
        )
    )
    app = make_app(PLAN=str(plan))
    client = app.test_client()
    sendgrid, twilio = providers
    twilio.invalid_numbers.add("+31612345001")
    subscribe(
        client,
        tokens["admin"],
        [{"phone": "+31612345001", "email": "x@example.com", "audiences": ["consumers"]}],
    )
    announce(client, tokens["admin"], PAYMENTS_DOWN, channels=["sms"])
    drain(app)
    assert sendgrid.requests == [] and [q["status"] for q in twilio.requests] == [400]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ('"email"', 'policy.fallback: must be a table like {sms = "email"}'),
        (
            '{sms = "fax"}',
            f"policy.fallback.sms: must name a personal channel (one of: {PERSONAL_LIST}), "
            "not 'fax'",
        ),
        (
            '{banner = "email"}',
            "policy.fallback.banner: only a personal channel can fall back "
            f"(one of: {PERSONAL_LIST})",
        ),
        ('{sms = "sms"}', "policy.fallback.sms: cannot fall back to itself"),
    ],
)
def test_a_bad_fallback_names_file_key_and_reason(value, problem):
    text = BUNDLED_PLAN.read_text().replace('fallback = { sms = "email" }', f"fallback = {value}")
    with pytest.raises(PlanError) as caught:
        parse_plan(tomllib.loads(text), "plan.toml")
    assert str(caught.value).splitlines()[1:] == [f"  plan.toml: {problem}"]


def test_the_example_plan_falls_back_from_sms_to_email():
    plan = parse_plan(tomllib.loads(BUNDLED_PLAN.read_text()), "plan.toml")
    assert plan.fallback == {"sms": "email"}
