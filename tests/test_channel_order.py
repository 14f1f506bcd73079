"""A subscriber's channel order, the plan's confirm table, and the answers that count.

- ``channels`` is an order: the API, the CSV import keep it and refuse a channel named
  twice; a delivery that fails for good moves on to the person's next channel before the
  plan's ``policy.fallback``.
- ``confirm = {within_minutes, escalate}`` is checked at plan load, with the key named.
- ``confirmations.answer`` never raises, whatever a person sends, and only an exact short
  answer counts (Hypothesis).
- A drill never escalates outside the drill audiences.
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broadcaster.domain import confirmations
from broadcaster.domain.confirmations import Confirmations, answer, reading
from broadcaster.domain.ledger import Ledger
from broadcaster.domain.plan import PlanError, parse_plan
from tests.helpers import PAYMENTS_DOWN, announce, drain, subscribe
from tests.test_confirm import OUTAGE, medical, run
from tests.test_confirm import app as app  # noqa: F401 - the plan with a confirming audience
from tests.test_confirm import receiver as receiver  # noqa: F401

BASE = """
[organisation]
name = "Acme Energy"
default_locale = "en"
locales = ["en", "nl"]

[channels_by_severity]
info = []
minor = ["email", "sms"]
major = ["email", "sms"]
critical = ["email", "sms"]

[audiences.medical]
channels = ["email", "sms"]
confirm = { within_minutes = 15, escalate = ["sms"] }
"""


def plan_with(**confirm: object) -> dict:
    data = tomllib.loads(BASE)
    data = copy.deepcopy(data)
    data["audiences"]["medical"]["confirm"] = confirm
    return data


def test_the_confirm_table_parses() -> None:
    plan = parse_plan(tomllib.loads(BASE), "plan.toml")
    confirm = plan.audiences["medical"].confirm
    assert confirm is not None
    assert (confirm.within_minutes, confirm.escalate) == (15, ("sms",))


@pytest.mark.parametrize(
    ("confirm", "problem"),
    [
        ({"escalate": ["sms"]}, "audiences.medical.confirm.within_minutes: missing"),
        ({"within_minutes": 0}, "within_minutes: must be a whole number from 1 to 1440"),
        ({"within_minutes": "15"}, "within_minutes: must be a whole number from 1 to 1440"),
        ({"within_minutes": True}, "within_minutes: must be a whole number from 1 to 1440"),
        ({"within_minutes": 15, "escalate": ["pigeon"]}, "'pigeon' is not a personal channel"),
        ({"within_minutes": 15, "escalate": ["banner"]}, "'banner' is not a personal channel"),
        ({"within_minutes": 15, "escalate": "sms"}, "escalate: must be a list of personal"),
        ({"within_minutes": 15, "escalate": ["sms", "sms"]}, "escalate: names 'sms' twice"),
        ({"within_minutes": 15, "after": 3}, "confirm.after: unknown key"),
    ],
)
def test_a_bad_confirm_table_is_a_plan_error_naming_the_key(confirm, problem) -> None:
    with pytest.raises(PlanError) as caught:
        parse_plan(plan_with(**confirm), "plan.toml")
    assert problem in str(caught.value)
    assert "plan.toml: audiences.medical.confirm" in str(caught.value)


def test_confirm_must_be_a_table() -> None:
    data = tomllib.loads(BASE)
    data["audiences"]["medical"]["confirm"] = True
    with pytest.raises(PlanError, match="audiences.medical.confirm: must be a table"):
        parse_plan(data, "plan.toml")


def test_the_api_and_the_csv_import_keep_the_order_and_refuse_a_repeat(client, tokens):
    rows = [
        {"email": "a@example.com", "phone": "+31612345201", "audiences": ["consumers"]},
        {"email": "b@example.com", "audiences": ["consumers"]},
    ]
    rows[0]["channels"] = ["sms", "email"]
    rows[1]["channels"] = ["email", "sms", "email"]
    report = client.post("/api/v1/subscribers", json=rows, headers=tokens["admin"]).get_json()
    assert report["created"] == 1
    [rejected] = report["rejected"]
    assert "'email' is named twice" in str(rejected)
    listed = client.get("/api/v1/subscribers", headers=tokens["admin"]).get_json()["items"]
    assert [p["channels"] for p in listed] == [["sms", "email"]]

    csv = "email,phone,audiences,channels\nc@example.com,+31612345202,consumers,sms;email\n"
    csv += "d@example.com,,consumers,email;email\n"
    answer_ = client.post(
        "/api/v1/subscribers/import",
        data=csv.encode(),
        headers={**tokens["admin"], "Content-Type": "text/csv"},
    )
    report = answer_.get_json()
    assert report["created"] == 1 and len(report["rejected"]) == 1, report
    listed = client.get("/api/v1/subscribers", headers=tokens["admin"]).get_json()["items"]
    assert [p["channels"] for p in listed] == [["sms", "email"], ["sms", "email"]]


def test_a_failure_for_good_moves_on_in_the_persons_own_order(
    client, tokens, run_jobs, providers, app
):
    """This plan has no policy.fallback: only the person's order moves on."""
    sendgrid, twilio = providers
    twilio.invalid_numbers.update({"+31612345301", "+31612345302", "+31612345303"})
    subscribe(
        client,
        tokens["admin"],
        [
            # SMS first, then email: the email carries it when the number fails.
            {
                "phone": "+31612345301",
                "email": "ordered@example.com",
                "channels": ["sms", "email"],
                "audiences": ["consumers"],
            },
            # No order: nothing moves on (the plan has no fallback).
            {"phone": "+31612345302", "email": "plain@example.com", "audiences": ["consumers"]},
            # SMS only: their choice stands.
            {
                "phone": "+31612345303",
                "email": "sms-only@example.com",
                "channels": ["sms"],
                "audiences": ["consumers"],
            },
        ],
    )
    assert app.extensions["broadcaster"].plan.fallback == {}
    ann = announce(client, tokens["admin"], PAYMENTS_DOWN, channels=["sms"])["id"]
    run_jobs()
    assert [address for address, _ in sendgrid.accepted()] == ["ordered@example.com"]
    ledger = Ledger(app.extensions["broadcaster"].redis, ann)
    records = {(d["channel"], d["to"]): d for d in ledger.page(0, 100)}
    assert records[("sms", "+316…301")]["fallback"] == "email"
    assert records[("email", "o…@example.com")]["fallback_from"] == "sms"


def test_the_order_does_not_hold_back_ordinary_audiences(client, tokens, run_jobs, providers):
    """Without confirm, everyone gets every chosen channel at once, whatever the order."""
    sendgrid, twilio = providers
    subscribe(
        client,
        tokens["admin"],
        [
            {
                "phone": "+31612345401",
                "email": "both@example.com",
                "channels": ["sms", "email"],
                "audiences": ["consumers"],
            }
        ],
    )
    announce(client, tokens["admin"], PAYMENTS_DOWN)
    run_jobs()
    assert [a for a, _ in sendgrid.accepted()] == ["both@example.com"]
    assert [m["To"] for m in twilio.accepted()] == ["+31612345401"]


WORDS = sorted(
    {w for words in confirmations.CONFIRM_WORDS.values() for w in words}
    | {w for words in confirmations.HELP_WORDS.values() for w in words}
)


@given(
    st.one_of(
        st.text(max_size=60),
        st.text(alphabet=st.characters(codec="utf-8"), max_size=3000),
        st.sampled_from(WORDS).flatmap(
            lambda w: st.tuples(st.text(max_size=3), st.just(w), st.text(max_size=3)).map("".join)
        ),
        st.binary(max_size=20).map(lambda b: b.decode("utf-8", "surrogateescape")),
    )
)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_reading_never_raises_and_only_an_exact_short_answer_counts(body: str) -> None:
    kind = reading(body)
    assert kind in (None, "confirmed", "help")
    if kind is not None:
        word = body.strip(confirmations._AROUND).upper()
        assert len(body) <= confirmations.ANSWER_MAX
        assert word in WORDS or word.upper() in {w.upper() for w in WORDS}


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ("1", "confirmed"),
        (" ok ", "confirmed"),
        ("Ja!", "confirmed"),
        ("oké", "confirmed"),
        ("2", "help"),
        ("help", "help"),
        ("Hulp", "help"),
        ("hjælp", "help"),
        ("HJÄLP.", "help"),
        ("12", None),
        ("1 2", None),
        ("ok but the power is still off", None),
        ("", None),
        ("STOP", None),
        ("1" + " " * 30, None),
    ],
)
def test_the_answers_that_count(body: str, kind: str | None) -> None:
    assert reading(body) == kind


def test_answer_never_raises_and_counts_only_for_people_asked(app, client, tokens, sendgrid):
    [asked] = medical(client, tokens, 1, 60)
    created = announce(client, tokens["admin"], OUTAGE)
    run(app)
    svc = app.extensions["broadcaster"]
    with app.app_context():
        announcement = svc.announcements.get(created["id"])
        book = Confirmations(svc.redis, created["id"])

        @given(st.text(max_size=80))
        @settings(
            max_examples=200,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture],
        )
        def hostile(body: str) -> None:
            kind = answer(svc, announcement, asked["id"], "sms", body)
            assert kind == reading(body)
            # Someone the announcement never asked: never an answer, whatever they say.
            assert answer(svc, announcement, "nobody", "sms", body) is None
            assert answer(svc, announcement, "", "sms", body) is None

        hostile()
        assert book.state(asked["id"]) in ("waiting", "confirmed", "help")
        counts = book.counts()
        assert counts["asked"] == 1
        assert sum(counts[s] for s in confirmations.STATES) == 1


DRILL_PLAN = """
[drills]
audiences = ["staff"]
[drills.scenarios.outage]
description = "Power fails in Utrecht"
alert = { key = "drill-outage", title = "Power outage", severity = "major", labels = { \
service = "power" } }

[[monitoring.rules]]
match = { service = "power" }
audiences = ["medical"]
holding_statement = "power-outage"

[holding_statements.power-outage]
en = { title = "Power outage", body = "Power is out. We are on it." }
"""


def test_a_drill_never_escalates_outside_the_drill_audiences(
    make_app,
    tmp_path: Path,
    receiver,
    tokens,
    sendgrid,
    twilio,  # noqa: F811
):
    from tests.test_confirm import PLAN as CONFIRM_PLAN
    from tests.test_webhook import SECRET

    plan = tmp_path / "plan.toml"
    text = CONFIRM_PLAN.replace("{url}", receiver.url).replace("{secret}", SECRET) + DRILL_PLAN
    plan.write_text(text, "utf-8")
    drill_app = make_app(PLAN=str(plan), CONFIRM_MINUTE_SECONDS=0.5)
    client = drill_app.test_client()
    medical(client, tokens, 2, 70)
    subscribe(
        client,
        tokens["admin"],
        [{"email": "team@acme.example", "phone": "+31612345777", "audiences": ["staff"]}],
    )
    started = client.post("/api/v1/drills", json={"scenario": "outage"}, headers=tokens["admin"])
    assert started.status_code == 201, started.get_json()
    drain(drill_app, timeout=20)
    # Only the drill team heard of it; nobody of the medical audience, not even later.
    assert {a for a, _ in sendgrid.accepted()} == {"team@acme.example"}
    assert {m["To"] for m in twilio.accepted()} <= {"+31612345777"}
    incident = client.get(
        f"/api/v1/incidents/{started.get_json()['incident_id']}", headers=tokens["admin"]
    ).get_json()
    assert incident["confirmations"] == []


def test_a_self_subscriber_may_put_a_channel_first(make_app, tokens, twilio, sendgrid):
    """``first``: the confirmed channel heads their order; without it, it goes last."""
    from tests.test_inbound import sms

    bundled = make_app()  # the bundled plan offers self-subscription by email and SMS
    client = bundled.test_client()
    subscribe(
        client,
        tokens["admin"],
        [
            {
                "email": "mia@example.com",
                "phone": "+31612345501",
                "channels": ["email"],
                "audiences": ["consumers"],
            }
        ],
    )
    bad = client.post("/api/v1/subscriptions", json={"phone": "+31612345501", "first": "yes"})
    assert bad.status_code == 422 and "first" in bad.get_json()["errors"]
    asked = client.post("/api/v1/subscriptions", json={"phone": "+31612345501", "first": True})
    assert asked.status_code == 202
    drain(bundled)
    assert [m["To"] for m in twilio.accepted()] == ["+31612345501"]
    sms(client, "+31612345501", "YES")
    [person] = client.get("/api/v1/subscribers", headers=tokens["admin"]).get_json()["items"]
    assert person["channels"] == ["sms", "email"]


def test_escalating_to_whatsapp_needs_its_template() -> None:
    data = plan_with(within_minutes=15, escalate=["whatsapp"])
    with pytest.raises(PlanError) as caught:
        parse_plan(data, "plan.toml")
    assert "audiences.medical.confirm.escalate names whatsapp" in str(caught.value)


def test_escalating_to_voice_needs_a_number_that_calls(make_app, tmp_path: Path) -> None:
    from channels import ChannelConfigError

    plan = tmp_path / "plan.toml"
    plan.write_text(BASE.replace('escalate = ["sms"]', 'escalate = ["sms", "voice"]'), "utf-8")
    sms_only = {"TWILIO_FROM": None, "TWILIO_VOICE_FROM": None}
    sms_only["TWILIO_MESSAGING_SERVICE_SID"] = "MG" + "1" * 32
    with pytest.raises(ChannelConfigError, match="BROADCASTER_TWILIO_VOICE_FROM"):
        make_app(PLAN=str(plan), **sms_only)
    plan.write_text(BASE, "utf-8")  # no voice anywhere: no number needed
    assert make_app(PLAN=str(plan), **sms_only).extensions["broadcaster"].plan


@pytest.mark.parametrize(
    ("preference", "first", "whatsapp_first", "expected"),
    [
        (None, False, False, ["sms", "whatsapp"]),
        (None, True, True, ["whatsapp", "sms"]),
        (["email"], False, True, ["email", "whatsapp", "sms"]),
        (["email"], True, True, ["whatsapp", "sms", "email"]),
        (["email"], True, False, ["sms", "whatsapp", "email"]),
        (["whatsapp", "email", "sms"], False, False, ["email", "sms", "whatsapp"]),
        (["sms", "email", "whatsapp"], False, True, ["whatsapp", "sms", "email"]),
    ],
)
def test_a_self_subscriber_who_chose_whatsapp_gets_it_beside_sms(
    preference, first, whatsapp_first, expected
) -> None:
    """WhatsApp goes right before SMS or right after it, each channel once (signups)."""
    from broadcaster.domain.signup_channels import ordered

    assert ordered(preference, "sms", first, True, whatsapp_first) == expected
    if not preference or "whatsapp" not in preference:  # without WhatsApp: as before
        assert ordered(preference, "sms", first) == [c for c in expected if c != "whatsapp"]
