"""Self-subscribers who choose WhatsApp (and where it goes in their order).

The WhatsApp opt-in rides on a phone sign-up and is recorded only when the number is
confirmed (SMS YES or the texted code), with the source "self-subscription". Real Redis,
real RQ workers, the real Twilio SDK against the fake Twilio (which checks the WhatsApp
shapes: a template with ContentSid and ContentVariables, no Body); inbound SMS signed with
Twilio's own RequestValidator.
"""

from __future__ import annotations

import json
import math
import re
import time
import tomllib
from pathlib import Path

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broadcaster.domain.plan import BUNDLED_PLAN, PlanError, parse_plan
from broadcaster.domain.whatsapp_consent import NO_OPT_IN
from tests.helpers import announce, deliveries, drain, subscribe
from tests.test_confirm import MINUTE, PLAN, run, run_when_due
from tests.test_inbound import sms
from tests.test_signups import API, CODE, _csrf, people, texts_to
from tests.test_webhook import SECRET, Receiver
from tests.test_whatsapp import (
    EN_SID,
    NL_SID,
    OPTED_IN,
    TEMPLATES,
    sent_to,
    whatsapp_in,
    whatsapp_plan,
)

OFFERED = 'audience = "consumers"\nchannels = ["email", "sms"]\n'
OUTAGE = {
    "title": "Power outage in Noord",
    "body": "Parts of Noord have no power since 14:05.",
    "severity": "minor",
    "audiences": ["consumers"],
    "channels": ["whatsapp", "sms"],
}


def offering_plan(tmp_path: Path) -> str:
    """The bundled plan with WhatsApp for consumers, its templates, and offered on /subscribe."""
    path = Path(whatsapp_plan(tmp_path))
    text = path.read_text(encoding="utf-8")
    assert OFFERED in text
    text = text.replace(OFFERED, OFFERED.replace('"sms"]', '"sms", "whatsapp"]'), 1)
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.fixture
def app(make_app, tmp_path, twilio) -> Flask:
    twilio.content_templates.update({EN_SID: {"1", "2", "3"}, NL_SID: {"1", "2", "3"}})
    return make_app(PLAN=offering_plan(tmp_path))


def person(client, tokens, phone: str) -> dict:
    [found] = [p for p in people(client, tokens) if p["phone"] == phone]
    return found


# --- sign up, confirm, and the next announcement ------------------------------------------


def test_whatsapp_first_is_recorded_when_yes_confirms_and_the_next_alert_uses_it(
    app, client, tokens, run_jobs, twilio
):
    phone = "+31612347001"
    body = {"phone": phone, "locale": "nl", "whatsapp": True, "whatsapp_first": True}
    assert client.post(API, json=body).status_code == 202
    run_jobs()
    [text] = texts_to(twilio, phone)
    assert "WhatsApp" in text and "JA" in text and CODE.search(text)  # what YES agrees to
    assert sent_to(twilio, phone) == []  # nothing on WhatsApp before confirmation
    assert people(client, tokens) == []

    before = time.time()
    sms(client, phone, "ja")
    subscribed = person(client, tokens, phone)
    assert subscribed["channels"] == ["whatsapp", "sms"]
    assert subscribed["whatsapp_opt_in_source"] == "self-subscription"
    assert before - 1 <= subscribed["whatsapp_opt_in_at"] <= time.time() + 1
    assert subscribed["audiences"] == ["consumers"] and subscribed["opt_outs"] == []

    twilio.reset()
    created = announce(client, tokens["admin"], OUTAGE, translations={"nl": NL_TEXT})
    run_jobs()
    [template] = sent_to(twilio, phone)
    assert template["ContentSid"] == NL_SID and "Body" not in template  # the approved template
    assert json.loads(template["ContentVariables"])["1"] == NL_TEXT["title"]
    # An ordinary audience: every channel they chose goes at once (domain/channel_order.py).
    assert len(texts_to(twilio, phone)) == 1
    states = {d["channel"]: d["state"] for d in deliveries(client, tokens["admin"], created["id"])}
    assert states == {"whatsapp": "sent", "sms": "sent"}


NL_TEXT = {"title": "Stroomstoring in Noord", "body": "Delen van Noord hebben geen stroom."}


def test_the_code_confirms_whatsapp_after_sms(app, client, tokens, run_jobs, twilio):
    phone = "+31612347002"
    client.post(API, json={"phone": phone, "whatsapp": True})
    run_jobs()
    code = CODE.search(texts_to(twilio, phone)[0]).group(1)
    ok = client.post(f"{API}/confirm", json={"phone": phone, "code": code})
    assert ok.status_code == 200
    subscribed = person(client, tokens, phone)
    assert subscribed["channels"] == ["sms", "whatsapp"]  # not before SMS: right after it
    assert subscribed["whatsapp_opt_in_source"] == "self-subscription"


def test_a_sign_up_without_whatsapp_records_no_opt_in(app, client, tokens, run_jobs, twilio):
    phone = "+31612347003"
    client.post(API, json={"phone": phone, "whatsapp": False})
    run_jobs()
    assert "WhatsApp" not in texts_to(twilio, phone)[0]
    sms(client, phone, "yes")
    subscribed = person(client, tokens, phone)
    assert subscribed["channels"] == ["sms"] and subscribed["whatsapp_opt_in_at"] is None


def test_someone_subscribed_already_adds_whatsapp_only_by_confirming_again(
    app, client, tokens, run_jobs, twilio
):
    phone = "+31612347004"
    subscribe(client, tokens["admin"], [{"phone": phone, "audiences": ["consumers"]}])
    client.post(API, json={"phone": phone, "whatsapp": True, "whatsapp_first": True})
    run_jobs()
    [text] = texts_to(twilio, phone)
    assert "WhatsApp" in text and CODE.search(text)  # a confirmation, not "already"

    # Until they confirm, an alert on WhatsApp skips them: no opt-in is recorded.
    created = announce(client, tokens["admin"], OUTAGE, channels=["whatsapp"])
    run_jobs()
    assert sent_to(twilio, phone) == []
    [record] = deliveries(client, tokens["admin"], created["id"])
    assert record["state"] == "skipped" and record["error"] == NO_OPT_IN
    assert person(client, tokens, phone)["whatsapp_opt_in_at"] is None

    sms(client, phone, "YES")
    assert person(client, tokens, phone)["channels"] == ["whatsapp", "sms"]
    # The same request again changes nothing: the "already subscribed" note only.
    twilio.reset()
    client.post(API, json={"phone": phone, "whatsapp": True, "whatsapp_first": True})
    run_jobs()
    [note] = texts_to(twilio, phone)
    assert "already subscribed" in note and not CODE.search(note)


def test_confirming_whatsapp_again_undoes_an_earlier_stop(app, client, tokens, run_jobs, twilio):
    phone = "+31612347007"
    row = {"phone": phone, "audiences": ["consumers"], **OPTED_IN}
    subscribe(client, tokens["admin"], [row])
    assert whatsapp_in(client, phone, "STOP").status_code == 200
    assert person(client, tokens, phone)["opt_outs"] == ["whatsapp"]
    client.post(API, json={"phone": phone, "whatsapp": True})
    run_jobs()
    assert CODE.search(texts_to(twilio, phone)[0])  # a confirmation, not "already"
    sms(client, phone, "yes")
    again = person(client, tokens, phone)
    assert again["opt_outs"] == [] and again["channels"] == ["sms", "whatsapp"]
    assert again["whatsapp_opt_in_source"] == "self-subscription"  # the newest consent


def test_an_unconfirmed_sign_up_records_nothing_and_expires(make_app, tmp_path, tokens, twilio):
    twilio.content_templates.update({EN_SID: {"1", "2", "3"}, NL_SID: {"1", "2", "3"}})
    app = make_app(PLAN=offering_plan(tmp_path), SUBSCRIBE_CONFIRM_TTL=1)
    client = app.test_client()
    phone = "+31612347005"
    client.post(API, json={"phone": phone, "whatsapp": True, "whatsapp_first": True})
    drain(app)
    code = CODE.search(texts_to(twilio, phone)[0]).group(1)
    r = app.extensions["broadcaster"].redis
    assert not [k for k in r.keys("bc:sub:*")]  # nobody, no opt-in, while it is pending
    time.sleep(2.1)
    sms(client, phone, "YES")
    assert client.post(f"{API}/confirm", json={"phone": phone, "code": code}).status_code == 404
    assert people(client, tokens) == []
    assert sent_to(twilio, phone) == []


# --- WhatsApp before SMS where the audience asks to confirm ------------------------------

CONFIRM_TEMPLATE = f"""
[whatsapp.templates.en]
content_sid = "{EN_SID}"
variables = {{ "1" = "title", "2" = "body", "3" = "status_url", "4" = "confirm" }}

[subscriptions]
audience = "medical"
channels = ["sms", "whatsapp"]
"""


@pytest.fixture
def confirming(make_app, tmp_path: Path, twilio):
    receiver = Receiver()
    twilio.content_templates.update({EN_SID: {"1", "2", "3", "4"}})
    text = PLAN.replace("{url}", receiver.url).replace("{secret}", SECRET)
    old = 'channels = ["email", "sms"]\nconfirm = { within_minutes = 1, escalate = ["sms"] }'
    assert old in text
    text = text.replace(old, old.replace('"sms"]\n', '"sms", "whatsapp"]\n'))
    plan = tmp_path / "plan.toml"
    plan.write_text(text + CONFIRM_TEMPLATE, "utf-8")
    yield make_app(PLAN=str(plan), CONFIRM_MINUTE_SECONDS=MINUTE)
    receiver.release.set()
    receiver.stop()


def test_whatsapp_is_the_first_rung_and_sms_waits_for_the_escalation(confirming, tokens, twilio):
    client = confirming.test_client()
    phone = "+31612347006"
    body = {"phone": phone, "whatsapp": True, "whatsapp_first": True}
    assert client.post(API, json=body).status_code == 202
    run(confirming)
    sms(client, phone, "yes")
    assert person(client, tokens, phone)["channels"] == ["whatsapp", "sms"]
    twilio.reset()

    created = announce(
        client, tokens["admin"], OUTAGE, audiences=["medical"], channels=["sms", "whatsapp"]
    )
    run(confirming)
    [template] = sent_to(twilio, phone)
    assert template["ContentSid"] == EN_SID
    assert "Reply 1 or OK" in json.loads(template["ContentVariables"])["4"]
    assert texts_to(twilio, phone) == []  # SMS only if they do not confirm in time

    run_when_due(confirming, f"confirm-{created['id']}-1")
    [text] = texts_to(twilio, phone)
    assert "Power outage" in text
    assert len(sent_to(twilio, phone)) == 1  # never twice on the same channel


# --- refused requests ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"email": "a@example.com", "whatsapp": True}, "whatsapp", "needs a mobile number"),
        ({"whatsapp": True}, "whatsapp", "needs a mobile number"),
        ({"phone": "+31612347010", "whatsapp": "yes"}, "whatsapp", "true or false"),
        ({"phone": "+31612347010", "whatsapp": 1}, "whatsapp", "true or false"),
        ({"phone": "+31612347010", "whatsapp_first": True}, "whatsapp_first", '"whatsapp": true'),
        (
            {"phone": "+31612347010", "whatsapp": True, "whatsapp_first": None},
            "whatsapp_first",
            "true or false",
        ),
        ({"email": "a@example.com", "whatsapp_first": True}, "whatsapp_first", "together"),
    ],
)
def test_bad_whatsapp_choices_are_422_naming_the_field(app, client, tokens, body, field, words):
    answer = client.post(API, json=body)
    assert answer.status_code == 422, answer.get_json()
    errors = answer.get_json()["errors"]
    assert field in errors and words in " ".join(errors[field]), errors
    assert people(client, tokens) == []


def test_whatsapp_is_refused_where_the_plan_does_not_offer_it(make_app):
    client = make_app().test_client()  # the bundled plan: email and SMS only
    answer = client.post(API, json={"phone": "+31612347011", "whatsapp": True})
    assert answer.status_code == 422
    assert "not offered" in " ".join(answer.get_json()["errors"]["whatsapp"])
    page = client.get("/subscribe").get_data(as_text=True)
    assert 'name="whatsapp"' not in page


# --- the form ------------------------------------------------------------------------------


def test_the_form_asks_unticked_in_the_persons_language(app, client, tokens, run_jobs, twilio):
    for lang, words in [
        ("en", "Also send me alerts on WhatsApp"),
        ("nl", "Stuur mij de meldingen ook via WhatsApp"),
        ("da", "Send mig også varslerne på WhatsApp"),
        ("sv", "Skicka mig varningarna på WhatsApp också"),
    ]:
        html = client.get(f"/subscribe?lang={lang}").get_data(as_text=True)
        assert words in html, lang
    boxes = re.findall(r'<input type="checkbox" name="whatsapp(?:_first)?"[^>]*>', html)
    assert len(boxes) == 2 and not any("checked" in box for box in boxes)  # never pre-ticked

    phone = "+31612347012"
    form = {"phone": phone, "locale": "sv", "whatsapp": "y", "whatsapp_first": "y"}
    sent = client.post("/subscribe", data={**form, "csrf_token": _csrf(html)})
    assert sent.status_code == 202
    run_jobs()
    sms(client, phone, "ja tack")
    subscribed = person(client, tokens, phone)
    assert subscribed["channels"] == ["whatsapp", "sms"] and subscribed["locale"] == "sv"
    assert subscribed["whatsapp_opt_in_source"] == "self-subscription"

    # "Before SMS" alone is no consent: refused, nothing recorded.
    alone = {"phone": "+31612347013", "whatsapp_first": "y", "csrf_token": _csrf(html)}
    refused = client.post("/subscribe", data=alone)
    assert refused.status_code == 422 and 'role="alert"' in refused.get_data(as_text=True)


# --- the plan ------------------------------------------------------------------------------


def _plan(subscriptions: dict, consumers: list[str] | None = None, templates: bool = True):
    data = tomllib.loads(BUNDLED_PLAN.read_text(encoding="utf-8"))
    data["subscriptions"] = subscriptions
    if consumers is not None:
        data["audiences"]["consumers"]["channels"] = consumers
    if templates:
        data["whatsapp"] = tomllib.loads(TEMPLATES)["whatsapp"]
    return parse_plan(data, "plan.toml")


WITH_WHATSAPP = ["email", "sms", "whatsapp", "banner"]


def test_the_plan_may_offer_whatsapp_to_self_subscribers():
    plan = _plan({"audience": "consumers", "channels": ["sms", "whatsapp"]}, WITH_WHATSAPP)
    assert plan.subscriptions.channels == ("sms", "whatsapp") and plan.subscriptions.whatsapp
    assert not _plan({"audience": "consumers"}, WITH_WHATSAPP).subscriptions.whatsapp


@pytest.mark.parametrize(
    ("channels", "consumers", "templates", "problem"),
    [
        (
            ["email", "sms", "whatsapp"],
            None,
            True,
            "subscriptions.channels: audience 'consumers' does not use 'whatsapp'",
        ),
        (
            ["email", "sms", "whatsapp"],
            ["email", "sms", "banner"],
            False,
            "subscriptions.channels: 'whatsapp' needs the plan's approved WhatsApp templates",
        ),
        (
            ["email", "whatsapp"],
            WITH_WHATSAPP,
            True,
            "subscriptions.channels: 'whatsapp' needs 'sms' too",
        ),
        (["whatsapp"], WITH_WHATSAPP, True, "subscriptions.channels: must be a list of"),
    ],
)
def test_offering_whatsapp_without_what_it_needs_fails_at_start_up(
    channels, consumers, templates, problem
):
    with pytest.raises(PlanError) as caught:
        _plan({"audience": "consumers", "channels": channels}, consumers, templates)
    assert problem in str(caught.value)


def test_the_app_does_not_start_with_such_a_plan(make_app, tmp_path):
    text = BUNDLED_PLAN.read_text(encoding="utf-8")
    text = text.replace(OFFERED, OFFERED.replace('"sms"]', '"sms", "whatsapp"]'), 1)
    path = tmp_path / "plan.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PlanError, match="subscriptions.channels"):
        make_app(PLAN=str(path))


# --- hostile bodies -------------------------------------------------------------------------

HOSTILE = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text(max_size=20)
    | st.sampled_from(["true", "True", "1", "yes", "on", "", "\x00"])
    | st.lists(st.booleans(), max_size=3)
    | st.dictionaries(st.text(max_size=5), st.booleans(), max_size=2)
)
BODIES = st.fixed_dictionaries(
    {"whatsapp": HOSTILE},
    optional={
        "whatsapp_first": HOSTILE,
        "phone": st.sampled_from(["+31612347020", "06 12347021", "12", ""]) | HOSTILE,
        "email": st.sampled_from(["h@example.com", "nope"]),
        "first": HOSTILE,
    },
)
_apps: dict[int, Flask] = {}


def _json_numbers(value: object) -> bool:
    """Whether every float in ``value`` is one JSON can carry (finite)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_json_numbers(v) for v in value.values())
    if isinstance(value, list):
        return all(_json_numbers(v) for v in value)
    return True


@given(body=BODIES)
@settings(
    database=None,
    deadline=None,
    max_examples=120,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_hostile_whatsapp_values_are_refused_by_name_never_500(make_app, tmp_path, body):
    key = id(make_app)
    if key not in _apps:  # one app per test run: building one per example would dominate
        _apps.clear()
        _apps[key] = make_app(
            PLAN=offering_plan(tmp_path), SUBSCRIBE_LIMIT_PER_IP=0, SUBSCRIBE_LIMIT_PER_ADDRESS=0
        )
    answer = _apps[key].test_client().post(API, json=body)
    assert answer.is_json and isinstance(answer.get_json(), dict)
    if not _json_numbers(body):
        # NaN and Infinity are Python's, not JSON's: the whole body is refused as such.
        assert answer.status_code == 400 and "not JSON" in answer.get_json()["message"]
        return
    assert answer.status_code in (202, 422), (body, answer.get_data())
    errors = answer.get_json().get("errors") or {}
    if not isinstance(body["whatsapp"], bool):
        assert "whatsapp" in errors
    if "whatsapp_first" in body and not isinstance(body["whatsapp_first"], bool):
        assert "whatsapp_first" in errors
    if body["whatsapp"] is True and "email" in body:
        assert answer.status_code == 422 and "whatsapp" in errors
    if answer.status_code == 202:
        assert body["whatsapp"] is False or isinstance(body.get("phone"), str)
