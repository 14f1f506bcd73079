"""Self-subscription with double opt-in: ``/subscribe``, ``POST /api/v1/subscriptions``.

Real Redis, real RQ workers, the real SendGrid and Twilio SDKs against the fake providers;
inbound SMS signed with Twilio's own RequestValidator (tests/test_inbound.py's ``sms``).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broadcaster.delivery import queues
from broadcaster.domain.plan import BUNDLED_PLAN
from tests.helpers import publish, subscribe
from tests.test_inbound import sms

API = "/api/v1/subscriptions"
LINK = re.compile(r"http://127\.0\.0\.1:8000(/subscribe/confirm/[A-Za-z0-9._-]+)")
CODE = re.compile(r"\b(\d{6})\b")


def people(client, tokens) -> list[dict]:
    return client.get("/api/v1/subscribers?per_page=100", headers=tokens["admin"]).get_json()[
        "items"
    ]


def emails_to(sendgrid, address: str) -> list[dict]:
    return [payload for to, payload in sendgrid.accepted() if to == address]


def confirm_path(sendgrid, address: str) -> str:
    """The confirmation link SendGrid puts into the email to ``address`` (a substitution)."""
    for to, payload in sendgrid.accepted():
        if to == address:
            [mine] = [p for p in payload["personalizations"] if p["to"][0]["email"] == address]
            assert "-confirm_url-" in payload["content"][0]["value"]  # text and html
            assert "-confirm_url-" in payload["content"][1]["value"]
            return LINK.fullmatch(mine["substitutions"]["-confirm_url-"]).group(1)
    raise AssertionError(f"no email to {address}")


def texts_to(twilio, phone: str) -> list[str]:
    return [form["Body"] for form in twilio.accepted() if form["To"] == phone]


def plan_without_subscriptions(tmp_path: Path) -> str:
    text = BUNDLED_PLAN.read_text(encoding="utf-8")
    text = re.sub(r"\[subscriptions\]\naudience = \"consumers\"\nchannels = .*\n", "", text)
    assert "[subscriptions]" not in text
    path = tmp_path / "plan.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


# --- email: the signed link -------------------------------------------------------------


def test_email_is_subscribed_only_after_the_link_is_confirmed(
    app, client, tokens, run_jobs, sendgrid
):
    answer = client.post(API, json={"email": "Mia@Example.com", "locale": "nl"})
    assert answer.status_code == 202
    assert answer.get_json()["status"] == "pending"
    assert people(client, tokens) == []  # nobody is subscribed by asking
    run_jobs()
    [mail] = emails_to(sendgrid, "Mia@example.com")
    assert "Bevestig" in mail["subject"]  # Dutch, as chosen
    path = confirm_path(sendgrid, "Mia@example.com")

    page = client.get(path)  # a mail scanner opening the link changes nothing
    assert page.status_code == 200 and "<form" in page.get_data(as_text=True)
    assert people(client, tokens) == []

    done = client.post(path)
    assert done.status_code == 200
    [person] = people(client, tokens)
    assert person["email"] == "Mia@example.com"
    assert person["audiences"] == ["consumers"]
    assert person["locale"] == "nl"
    assert person["channels"] == ["email"]
    assert person["components"] is None  # chose none: everything for the audience
    assert client.post(path).status_code == 400  # once only
    assert len(people(client, tokens)) == 1


def test_a_forged_or_foreign_link_confirms_nothing(app, client, tokens, run_jobs, sendgrid):
    client.post(API, json={"email": "mia@example.com"})
    run_jobs()
    path = confirm_path(sendgrid, "mia@example.com")
    assert client.post(path[:-2] + "xx").status_code == 400
    assert client.get("/subscribe/confirm/nonsense").status_code == 400
    assert people(client, tokens) == []


def test_confirmed_subscribers_get_announcements_with_a_working_unsubscribe_link(
    app, client, tokens, run_jobs, sendgrid
):
    client.post(API, json={"email": "ola@example.com", "locale": "sv"})
    run_jobs()
    path = confirm_path(sendgrid, "ola@example.com")
    assert client.post(path).status_code == 200
    sendgrid.reset()
    publish(
        client,
        tokens,
        {"title": "Payments down", "body": "Card payments fail.", "severity": "minor"},
        audiences=["consumers"],
        channels=["email"],
    )
    run_jobs()
    [(to, payload)] = sendgrid.accepted()
    personalization = payload["personalizations"][0]
    unsubscribe = personalization["headers"]["List-Unsubscribe"].strip("<>")
    assert to == "ola@example.com" and "/unsubscribe/" in unsubscribe
    answer = client.post(
        unsubscribe.removeprefix("http://127.0.0.1:8000"),
        data={"List-Unsubscribe": "One-Click"},
    )
    assert answer.status_code == 204
    assert people(client, tokens)[0]["opt_outs"] == ["email"]


# --- SMS: YES in every language, or the code ----------------------------------------------


@pytest.mark.parametrize(
    ("locale", "phone", "reply", "word"),
    [
        ("nl", "+31612345001", "Ja", "JA"),
        ("nl", "+31612345002", "ja graag!", "JA"),
        ("sv", "+46701234003", "JA TACK", "JA"),
        ("sv", "+46701234004", "ja", "JA"),
        ("da", "+4520123405", "Ja tak", "JA"),
        ("en", "+31612345006", "yes", "YES"),
    ],
)
def test_sms_sign_up_is_confirmed_by_yes_in_the_persons_language(
    app, client, tokens, run_jobs, twilio, locale, phone, reply, word
):
    assert client.post(API, json={"phone": phone, "locale": locale}).status_code == 202
    run_jobs()
    [text] = texts_to(twilio, phone)
    assert word in text and CODE.search(text)  # "reply JA" in Dutch, Danish and Swedish
    assert "STOP" in text  # how to opt out, from the first message on (STOPP in Swedish)
    assert people(client, tokens) == []
    sms(client, phone, reply)
    [person] = people(client, tokens)
    assert person["phone"] == phone and person["locale"] == locale
    assert person["channels"] == ["sms"] and person["opt_outs"] == []
    # The YES was no reply to an announcement, and a second YES subscribes nobody again.
    sms(client, phone, reply)
    assert len(people(client, tokens)) == 1


def test_sms_sign_up_is_confirmed_by_the_code_and_a_wrong_code_does_not(
    app, client, tokens, run_jobs, twilio
):
    phone = "+31612345678"
    client.post(API, json={"phone": "06 12345678"})  # national format, normalised
    run_jobs()
    code = CODE.search(texts_to(twilio, phone)[0]).group(1)
    wrong = "000000" if code != "000000" else "111111"
    refused = client.post(f"{API}/confirm", json={"phone": phone, "code": wrong})
    assert refused.status_code == 404 and "expired" in refused.get_json()["message"]
    assert people(client, tokens) == []
    ok = client.post(f"{API}/confirm", json={"phone": "06 12345678", "code": code})
    assert ok.status_code == 200 and ok.get_json()["status"] == "subscribed"
    assert [p["phone"] for p in people(client, tokens)] == [phone]
    again = client.post(f"{API}/confirm", json={"phone": phone, "code": code})
    assert again.status_code == 404


def test_guessing_the_code_drops_the_sign_up(app, client, tokens, run_jobs, twilio):
    phone = "+31612345679"
    client.post(API, json={"phone": phone})
    run_jobs()
    code = CODE.search(texts_to(twilio, phone)[0]).group(1)
    wrong = [c for c in ("０００", "111111", "222222", "333333", "444444", "555555") if c != code]
    for guess in wrong[:5]:
        assert (
            client.post(f"{API}/confirm", json={"phone": phone, "code": guess}).status_code == 404
        )
    # Five wrong guesses: even the right code no longer works.
    assert client.post(f"{API}/confirm", json={"phone": phone, "code": code}).status_code == 404
    assert people(client, tokens) == []


def test_yes_from_a_number_without_a_sign_up_changes_nothing(app, client, tokens):
    assert sms(client, "+31612340000", "YES").status_code == 200
    assert people(client, tokens) == []


# --- expiry, limits, the same answer ------------------------------------------------------


def test_unconfirmed_sign_ups_expire(make_app, tokens, twilio, sendgrid):
    app = make_app(SUBSCRIBE_CONFIRM_TTL=1)
    client = app.test_client()
    from tests.helpers import drain

    client.post(API, json={"phone": "+31612345680"})
    client.post(API, json={"email": "late@example.com"})
    drain(app)
    code = CODE.search(texts_to(twilio, "+31612345680")[0]).group(1)
    path = confirm_path(sendgrid, "late@example.com")
    time.sleep(2.1)  # the link's signature counts whole seconds
    assert (
        client.post(f"{API}/confirm", json={"phone": "+31612345680", "code": code}).status_code
        == 404
    )
    sms(client, "+31612345680", "YES")
    assert client.post(path).status_code == 400
    assert people(client, tokens) == []


def test_sign_ups_are_limited_per_address_and_per_caller(make_app, tokens):
    app = make_app(SUBSCRIBE_LIMIT_PER_ADDRESS=2, SUBSCRIBE_LIMIT_PER_IP=4)
    client = app.test_client()
    for _ in range(2):
        assert client.post(API, json={"email": "x@example.com"}).status_code == 202
    refused = client.post(API, json={"email": "X@example.com"})  # the same address
    assert refused.status_code == 429
    assert "contact" in refused.get_json()["message"]
    assert 0 < int(refused.headers["Retry-After"]) <= 3600
    assert client.post(API, json={"email": "y@example.com"}).status_code == 202
    refused = client.post(API, json={"email": "z@example.com"})  # fifth from this caller
    assert refused.status_code == 429 and "IP" in refused.get_json()["message"]
    other = app.test_client()
    answer = other.post(
        API, json={"email": "w@example.com"}, environ_base={"REMOTE_ADDR": "10.1.2.3"}
    )
    assert answer.status_code == 202


def test_the_answer_is_the_same_whether_subscribed_or_not(app, client, tokens, run_jobs, sendgrid):
    subscribe(client, tokens["admin"], [{"email": "old@example.com", "audiences": ["consumers"]}])
    known = client.post(API, json={"email": "old@example.com"})
    unknown = client.post(API, json={"email": "new@example.com"})
    assert known.status_code == unknown.status_code == 202
    assert known.get_data() == unknown.get_data()
    run_jobs()
    [note] = emails_to(sendgrid, "old@example.com")
    assert "already subscribed" in note["subject"]
    unsubscribe = note["personalizations"][0]["headers"]["List-Unsubscribe"]
    assert "/unsubscribe/" in unsubscribe  # only they hear it, with a way out
    assert "Confirm" in emails_to(sendgrid, "new@example.com")[0]["subject"]
    assert LINK.search(note["content"][0]["value"]) is None  # nothing to confirm
    assert len(people(client, tokens)) == 1  # no duplicate subscription


def test_someone_who_unsubscribed_may_subscribe_again(app, client, tokens, run_jobs, twilio):
    phone = "+31612345681"
    subscribe(client, tokens["admin"], [{"phone": phone, "audiences": ["business"]}])
    sms(client, phone, "STOP")
    client.post(API, json={"phone": phone, "locale": "da"})
    run_jobs()
    assert "JA" in texts_to(twilio, phone)[0]  # asked to confirm, not "already subscribed"
    sms(client, phone, "ja")
    [person] = people(client, tokens)
    assert person["audiences"] == ["business", "consumers"]
    assert person["opt_outs"] == []


# --- exactly one message per sign-up -------------------------------------------------------


def test_each_sign_up_sends_its_message_exactly_once(app, client, run_jobs, sendgrid, twilio):
    sendgrid.fail_next(503)  # the first try fails for a moment: retried, sent once
    client.post(API, json={"email": "once@example.com"})
    client.post(API, json={"phone": "+31612345682"})
    r = app.extensions["broadcaster"].redis
    ids = [k.decode().rsplit(":", 1)[1] for k in r.keys("bc:signup:*") if k.count(b":") == 2]
    for signup_id in ids:  # a second job for the same sign-up (a re-run, a double enqueue)
        queues.enqueue_signup_message(r, signup_id, attempt=3)
    run_jobs()
    assert len(emails_to(sendgrid, "once@example.com")) == 1
    assert len(texts_to(twilio, "+31612345682")) == 1


# --- errors and hostile input --------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"email": "a@example.com", "phone": "+31612345678"}, "_schema", "exactly one"),
        ({}, "_schema", "exactly one"),
        ({"email": "not-an-address"}, "email", ""),
        ({"phone": "12"}, "phone", ""),
        ({"email": "a@example.com", "locale": "fr"}, "locale", "en, nl, da, sv"),
        ({"email": "a@example.com", "components": ["mail"]}, "components", "unknown component"),
        ({"email": "a@example.com", "components": "payments"}, "components", "list"),
        ({"email": "a@example.com", "audiences": ["staff"]}, "audiences", "unknown field"),
        ({"email": ["a@example.com"]}, "email", "text"),
    ],
)
def test_bad_sign_ups_are_422_naming_the_field(app, client, tokens, body, field, words):
    answer = client.post(API, json=body)
    assert answer.status_code == 422, answer.get_json()
    errors = answer.get_json()["errors"]
    assert field in errors and words in " ".join(errors[field])
    assert people(client, tokens) == []


def test_without_a_subscriptions_table_nobody_can_subscribe(make_app, tmp_path):
    app = make_app(PLAN=plan_without_subscriptions(tmp_path))
    client = app.test_client()
    answer = client.post(API, json={"email": "a@example.com"})
    assert answer.status_code == 404
    assert "[subscriptions]" in answer.get_json()["message"]
    page = client.get("/subscribe")
    assert page.status_code == 404 and "not offered" in page.get_data(as_text=True)
    assert "<form" not in page.get_data(as_text=True)
    assert (
        client.post(f"{API}/confirm", json={"phone": "+31612345678", "code": "1"}).status_code
        == 404
    )


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
BODIES = JSON | st.fixed_dictionaries(
    {},
    optional={
        "email": JSON | st.emails(),
        "phone": JSON | st.from_regex(r"\+?[0-9 ]{0,16}", fullmatch=True),
        "locale": JSON | st.sampled_from(["en", "nl", "da", "sv"]),
        "components": JSON,
    },
)


@given(body=BODIES, confirm=st.booleans())
@settings(
    database=None,
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_hostile_bodies_are_answered_in_json_never_500(make_app, body, confirm):
    app = _hostile_app(make_app)
    path = f"{API}/confirm" if confirm else API
    answer = app.test_client().post(path, json=body)
    assert 200 <= answer.status_code < 500, (body, answer.get_data())
    assert answer.is_json and isinstance(answer.get_json(), dict)
    if answer.status_code >= 400:
        assert answer.get_json()["message"]


_apps: dict[int, object] = {}


def _hostile_app(make_app):
    # One app per test run (building one per example would dominate the test).
    key = id(make_app)
    if key not in _apps:
        _apps.clear()
        _apps[key] = make_app(SUBSCRIBE_LIMIT_PER_IP=0, SUBSCRIBE_LIMIT_PER_ADDRESS=0)
    return _apps[key]


# --- the page -------------------------------------------------------------------------------


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'id="csrf_token" name="csrf_token" type="hidden" value="([^"]+)"', html
    )
    assert found, html
    return found.group(1)


def test_the_page_is_csp_conformant_and_its_form_needs_the_csrf_token(
    app, client, tokens, run_jobs, sendgrid
):
    page = client.get("/subscribe?lang=sv")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'lang="sv"' in html
    # The plan's components, named in the page's language, to choose from.
    assert 'type="checkbox" name="components" value="payments"' in html and "Betalningar" in html
    policy = page.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in policy and "form-action 'self'" in policy
    assert "<script" not in html and "style=" not in html and "<style" not in html
    assert page.headers["Cache-Control"] == "no-store"

    forged = client.post("/subscribe", data={"email": "a@example.com", "locale": "sv"})
    assert forged.status_code == 400
    sent = client.post(
        "/subscribe",
        data={
            "email": "a@example.com",
            "locale": "sv",
            "components": ["payments", "website"],
            "csrf_token": _csrf(html),
        },
    )
    assert sent.status_code == 202
    assert "<form" not in sent.get_data(as_text=True)
    run_jobs()
    [mail] = emails_to(sendgrid, "a@example.com")
    assert "Bekräfta" in mail["subject"]  # Swedish
    assert client.post(confirm_path(sendgrid, "a@example.com")).status_code == 200
    assert people(client, tokens)[0]["components"] == ["payments", "website"]
    bad = client.post(
        "/subscribe", data={"email": "nope", "locale": "sv", "csrf_token": _csrf(html)}
    )
    assert bad.status_code == 422 and 'role="alert"' in bad.get_data(as_text=True)


def test_the_code_page_confirms_a_phone(app, client, tokens, run_jobs, twilio):
    phone = "+31612345683"
    client.post(API, json={"phone": phone, "locale": "nl"})
    run_jobs()
    code = CODE.search(texts_to(twilio, phone)[0]).group(1)
    html = client.get("/subscribe/code?lang=nl").get_data(as_text=True)
    token = _csrf(html)
    wrong = client.post("/subscribe/code", data={"phone": phone, "code": "x", "csrf_token": token})
    assert wrong.status_code == 404 and people(client, tokens) == []
    ok = client.post("/subscribe/code", data={"phone": phone, "code": code, "csrf_token": token})
    assert ok.status_code == 200 and people(client, tokens)[0]["phone"] == phone


# --- the plan's [subscriptions] -----------------------------------------------------------


def _plan_with(subscriptions, business_channels=None):
    import tomllib

    from broadcaster.domain.plan import parse_plan

    data = tomllib.loads(BUNDLED_PLAN.read_text(encoding="utf-8"))
    data.pop("subscriptions")
    if business_channels is not None:
        data["audiences"]["business"]["channels"] = business_channels
    if subscriptions is not None:
        data["subscriptions"] = subscriptions
    return parse_plan(data, "plan.toml")


def test_the_plan_names_the_audience_and_channels_of_self_subscribers():
    plan = _plan_with({"audience": "business", "channels": ["email"]})
    assert (plan.subscriptions.audience, plan.subscriptions.channels) == ("business", ("email",))
    assert _plan_with({"audience": "consumers"}).subscriptions.channels == ("email", "sms")
    assert _plan_with(None).subscriptions is None


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ({}, "subscriptions.audience: missing"),
        ({"audience": "nobody"}, "subscriptions.audience: unknown audience 'nobody'"),
        ({"audience": "staff"}, "subscriptions.audience: audience 'staff' is internal"),
        ({"audience": "consumers", "channels": ["fax"]}, "subscriptions.channels: must be"),
        ({"audience": "consumers", "channels": []}, "subscriptions.channels: must be"),
        ({"audience": "consumers", "chanels": ["sms"]}, "subscriptions.chanels: unknown key"),
    ],
)
def test_a_bad_subscriptions_table_is_named(table, problem):
    from broadcaster.domain.plan import PlanError

    with pytest.raises(PlanError) as caught:
        _plan_with(table)
    assert problem in str(caught.value)


def test_self_subscribers_only_use_channels_their_audience_uses():
    from broadcaster.domain.plan import PlanError

    with pytest.raises(PlanError) as caught:
        _plan_with({"audience": "business", "channels": ["sms"]}, ["email", "banner"])
    assert "subscriptions.channels: audience 'business' does not use 'sms'" in str(caught.value)


def test_a_burst_of_sign_ups_shares_requests_and_each_gets_its_own_link(
    app, client, tokens, run_jobs, sendgrid
):
    addresses = [f"p{n}@example.com" for n in range(10)]
    for n, address in enumerate(addresses):
        client.post(API, json={"email": address, "locale": "nl" if n % 2 else "en"})
    run_jobs()
    # One sender job, one SendGrid request per language: the link is a substitution.
    assert len([req for req in sendgrid.requests if req["status"] == 202]) == 2
    paths = {confirm_path(sendgrid, address) for address in addresses}
    assert len(paths) == len(addresses)
    for path in paths:
        assert client.post(path).status_code == 200
    assert sorted(p["email"] for p in people(client, tokens)) == sorted(addresses)


def test_code_attempts_are_limited_per_caller(make_app):
    client = make_app(SUBSCRIBE_LIMIT_PER_IP=2).test_client()
    attempt = {"phone": "+31612345684", "code": "123456"}
    for _ in range(2):
        assert client.post(f"{API}/confirm", json=attempt).status_code == 404
    refused = client.post(f"{API}/confirm", json=attempt)
    assert refused.status_code == 429 and refused.headers["Retry-After"]


def test_someone_subscribed_by_phone_hears_so_by_sms_only(app, client, tokens, run_jobs, twilio):
    phone = "+31612345685"
    subscribe(client, tokens["admin"], [{"phone": phone, "audiences": ["consumers"]}])
    assert client.post(API, json={"phone": phone, "locale": "sv"}).status_code == 202
    run_jobs()
    [text] = texts_to(twilio, phone)
    assert "prenumererar redan" in text and "STOPP" in text and not CODE.search(text)
    assert sms(client, phone, "JA").status_code == 200  # nothing pending: no change
    assert len(people(client, tokens)) == 1


def test_sign_ups_are_counted_in_the_metrics(app, client, run_jobs):
    client.post(API, json={"phone": "+31612345686"})
    run_jobs()
    sms(client, "+31612345686", "ja")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'broadcaster_signups_total{event="request",outcome="accepted"} 1' in text
    assert 'broadcaster_signups_total{event="confirm_sms",outcome="sent"} 1' in text
    assert 'broadcaster_signups_total{event="confirmed",outcome="reply"} 1' in text
    assert 'broadcaster_inbound_sms_total{kind="confirm"} 1' in text
