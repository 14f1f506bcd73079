"""Subscribers' phones must be numbers an SMS reaches: mobile, not ours, in the plan's countries."""

from __future__ import annotations

import io
import re
from typing import Any

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError
from phonenumbers import PhoneNumberType

from broadcaster.domain.phone_numbers import SMS_TYPES, PhonePolicy, sender_numbers
from broadcaster.domain.plan import PlanError, parse_plan
from tests.conftest import TWILIO_FROM

PLAN_WITH_COUNTRIES = """
[organisation]
name = "Acme"
default_region = "NL"

[policy]
sms_countries = ["NL", "DK", "SE"]

[channels_by_severity]
info = []
minor = []
major = ["sms"]
critical = ["sms"]

[audiences.consumers]
channels = ["sms"]
"""


def post(client: Any, headers: dict[str, str], rows: list[dict[str, Any]]) -> dict[str, Any]:
    return client.post("/api/v1/subscribers", json=rows, headers=headers).get_json()


def phone_errors(report: dict[str, Any]) -> dict[str, str]:
    """external_id → the phone's error message."""
    return {row["external_id"]: row["errors"]["phone"][0] for row in report["rejected"]}


def test_attack_premium_satellite_and_our_own_number_are_refused_with_a_reason(client, tokens):
    """The attack: these four were accepted as subscribers' mobile numbers."""
    rows = [
        {"external_id": "us-900", "phone": "+19005550123"},
        {"external_id": "uk-premium", "phone": "+449098790000"},
        {"external_id": "satellite", "phone": "+8821650000000"},
        {"external_id": "ours", "phone": TWILIO_FROM},
        {"external_id": "mobile", "phone": "+31612345678"},
    ]
    report = post(client, tokens["admin"], [{**r, "audiences": ["consumers"]} for r in rows])
    assert report["created"] == 1, "only the mobile number is a subscriber's"
    errors = phone_errors(report)
    assert errors["us-900"] == "+19005550123 is a premium-rate number: give a mobile number"
    assert errors["uk-premium"] == "+449098790000 is a premium-rate number: give a mobile number"
    assert "satellite or international-network number (+882)" in errors["satellite"]
    assert errors["ours"] == f"{TWILIO_FROM} is our own sender number, not a subscriber's"


def test_csv_import_refuses_them_too_line_by_line(client, tokens):
    csv_text = (
        "external_id,phone,audiences\nc1,+31612345001,consumers\nc2,+3197010000000,consumers\n"
    )
    answer = client.post(
        "/api/v1/subscribers/import",
        data=csv_text.encode(),
        headers={**tokens["admin"], "Content-Type": "text/csv"},
    ).get_json()
    assert answer["created"] == 1
    [rejected] = answer["rejected"]
    assert rejected["index"] == 3 and "our own sender number" in rejected["errors"]["phone"][0]


def test_admin_import_refuses_a_premium_number(client, people, signed_in):
    token = signed_in(client, people["helpdesk"].email)
    csv_text = (
        "external_id,phone,audiences\np1,+449098790000,consumers\np2,+31612345002,consumers\n"
    )
    answer = client.post(
        "/admin/subscribers",
        data={"csrf_token": token, "file": (io.BytesIO(csv_text.encode()), "people.csv")},
    )
    html = answer.get_data(as_text=True)
    assert "<strong data-created>1</strong> created" in html
    assert re.search(r"p1</td><td>phone: [^<]*premium-rate", html)


def test_other_configured_sender_numbers_are_refused(make_app, tokens):
    app = make_app(SENDER_NUMBERS="+31612345699, whatsapp:+31 6 12345698")
    report = post(
        app.test_client(),
        tokens["admin"],
        [
            {"external_id": "pool", "phone": "0612345699", "audiences": ["consumers"]},
            {"external_id": "wa", "phone": "+31612345698", "audiences": ["consumers"]},
        ],
    )
    assert report["created"] == 0 and set(phone_errors(report)) == {"pool", "wa"}


def test_sender_numbers_are_read_from_every_sender_setting():
    config = {
        "TWILIO_FROM": "+3197010000000",
        "TWILIO_WHATSAPP_FROM": "whatsapp:+31612345690",
        "SENDER_NUMBERS": "+46701234567;  0031612345691,ACME",
    }
    found = sender_numbers(config)
    assert {"+3197010000000", "+31612345690", "+46701234567", "ACME"} <= found


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("+31201234567", "a landline, which cannot receive SMS"),
        ("+18005550123", "a toll-free number"),
        ("+31851234567", "a VoIP number"),
        ("+447012345678", "a personal (forwarding) number"),
        ("+443001234567", "a universal access (UAN) number"),
        ("+881631234567", "a satellite or international-network number (+881)"),
        ("+870772123456", "a satellite or international-network number (+870)"),
    ],
)
def test_numbers_that_are_not_mobile_are_refused(number, reason):
    with pytest.raises(ValidationError) as caught:
        PhonePolicy().check(number)
    assert reason in str(caught.value)


@pytest.mark.parametrize(
    "number", ["+31612345678", "+46701234567", "+4520123456", "+12015550123", "+4916012345678"]
)
def test_mobile_and_fixed_line_or_mobile_numbers_pass(number):
    assert PhonePolicy().check(number) == number


def test_plan_countries_restrict_who_may_subscribe_to_sms(make_app, tmp_path, tokens):
    path = tmp_path / "plan.toml"
    path.write_text(PLAN_WITH_COUNTRIES)
    app = make_app(PLAN=str(path))
    report = post(
        app.test_client(),
        tokens["admin"],
        [
            {"external_id": "nl", "phone": "06 12345678", "audiences": ["consumers"]},
            {"external_id": "dk", "phone": "+45 20 12 34 56", "audiences": ["consumers"]},
            {"external_id": "de", "phone": "+49 160 12345678", "audiences": ["consumers"]},
        ],
    )
    assert report["created"] == 2
    assert phone_errors(report) == {
        "de": "+4916012345678 is a number from DE; SMS goes only to numbers from NL, DK, SE "
        "(policy.sms_countries)"
    }


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (["NL", "XX"], "unknown country code 'XX'"),
        (["nl"], "unknown country code 'nl'"),
        (["001"], "unknown country code '001'"),
        ("NL", "must be a list of ISO country codes"),
    ],
)
def test_plan_sms_countries_are_checked_at_load(value, problem):
    data = {
        "organisation": {"name": "Acme"},
        "policy": {"sms_countries": value},
        "channels_by_severity": {s: [] for s in ("info", "minor", "major", "critical")},
        "audiences": {"consumers": {}},
    }
    with pytest.raises(PlanError, match=f"p: policy.sms_countries: {re.escape(problem)}"):
        parse_plan(data, "p")


REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
TYPES = [t for t in vars(PhoneNumberType).values() if isinstance(t, int)]


@settings(max_examples=300, deadline=None)
@given(region=st.sampled_from(REGIONS), kind=st.sampled_from(TYPES))
def test_every_region_and_type_is_accepted_only_when_an_sms_reaches_it(region, kind):
    example = phonenumbers.example_number_for_type(region, kind)
    if example is None:
        return
    text = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
    actual = phonenumbers.number_type(example)  # an example may be of a broader type
    try:
        PhonePolicy().check(text)
    except ValidationError:
        assert actual not in SMS_TYPES or not phonenumbers.is_valid_number(example)
    else:
        assert actual in SMS_TYPES


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=40),
        st.text(alphabet="+0123456789 ()-.#*x", max_size=30),
        st.from_regex(r"\+[0-9]{1,3}[0-9]{4,14}", fullmatch=True),
    )
)
def test_hostile_input_is_either_a_mobile_e164_number_or_a_reasoned_refusal(value):
    policy = PhonePolicy("NL", ("NL", "SE"), frozenset({"+3197010000000"}))
    try:
        number = policy.check(value)
    except ValidationError as exc:
        assert exc.messages and all(isinstance(m, str) and m for m in exc.messages)
        return
    parsed = phonenumbers.parse(number)
    assert number == phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    assert phonenumbers.number_type(parsed) in SMS_TYPES
    assert phonenumbers.region_code_for_number(parsed) in ("NL", "SE")
    assert number != "+3197010000000"
