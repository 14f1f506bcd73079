"""The ``whatsapp`` channel: a template per language, free text in the 24-hour window,
opt-in, receipts, replies, STOP, errors and the plan's fallback.

Messages go out through real RQ workers and the real Twilio SDK to the fake Twilio, which
checks the documented WhatsApp shapes (``whatsapp:+…`` on both ends, ContentSid with
ContentVariables JSON and no Body, or Body alone). Twilio's callbacks are signed with its
own RequestValidator, as Twilio signs them.
"""

from __future__ import annotations

import itertools
import json
import urllib.parse
from pathlib import Path

import pytest
from twilio.request_validator import RequestValidator

from broadcaster.domain.plan import BUNDLED_PLAN
from broadcaster.domain.whatsapp_consent import NO_OPT_IN, open_window
from tests.conftest import TWILIO_FROM
from tests.fakes import FakeTwilio
from tests.helpers import announce, deliveries, drain

PUBLIC = "http://127.0.0.1:8000"  # the default BROADCASTER_PUBLIC_URL Twilio signs
EN_SID = "HX" + "e" * 32
NL_SID = "HX" + "d" * 32
TEMPLATES = f"""
[whatsapp.templates.en]
content_sid = "{EN_SID}"
variables = {{ "1" = "title", "2" = "body", "3" = "status_url" }}

[whatsapp.templates.nl]
content_sid = "{NL_SID}"
variables = {{ "1" = "title", "2" = "body", "3" = "status_url" }}
"""
ANNOUNCEMENT = {
    "title": "Power outage in Noord",
    "body": "Parts of Noord have no power since 14:05.\n\nEngineers are on site.",
    "severity": "minor",
    "audiences": ["consumers"],
    "channels": ["whatsapp"],
    "translations": {
        "nl": {
            "title": "Stroomstoring in Noord",
            "body": "Delen van Noord hebben sinds 14:05 geen stroom.\n\nMonteurs zijn ter plaatse.",
        }
    },
}
OPTED_IN = {"whatsapp_opt_in_at": "2026-03-01T09:30:00+01:00", "whatsapp_opt_in_source": "form"}
_sids = itertools.count(1)


def whatsapp_plan(tmp_path: Path, templates: str = TEMPLATES, fallback: str = "") -> str:
    """The bundled plan with WhatsApp for consumers and the given templates."""
    text = BUNDLED_PLAN.read_text(encoding="utf-8")
    text = text.replace(
        'channels = ["email", "sms", "banner", "social"]',
        'channels = ["email", "sms", "whatsapp", "banner", "social"]',
        1,
    )
    if fallback:
        text = text.replace('fallback = { sms = "email" }', fallback, 1)
    path = tmp_path / "plan.toml"
    path.write_text(text + templates, encoding="utf-8")
    return str(path)


@pytest.fixture
def app(make_app, tmp_path, twilio):
    twilio.content_templates.update({EN_SID: {"1", "2", "3"}, NL_SID: {"1", "2", "3"}})
    return make_app(PLAN=whatsapp_plan(tmp_path))


def subscribe(client, tokens, phone: str, locale: str, **extra) -> str:
    row = {"phone": phone, "locale": locale, "audiences": ["consumers"], **extra}
    report = client.post("/api/v1/subscribers", json=[row], headers=tokens["admin"]).get_json()
    assert not report["rejected"], report
    people = client.get("/api/v1/subscribers", headers=tokens["admin"]).get_json()["items"]
    return next(p["id"] for p in people if p["phone"] == phone)


def signed(client, path: str, form: dict[str, str]):
    """POST ``form`` to ``path`` signed as Twilio signs it (the public URL and the form)."""
    signature = RequestValidator(FakeTwilio.AUTH_TOKEN).compute_signature(PUBLIC + path, form)
    return client.post(path, data=form, headers={"X-Twilio-Signature": signature})


def whatsapp_in(client, phone: str, body: str):
    """A WhatsApp message from ``phone`` to our sender, as Twilio posts it."""
    form = {
        "MessageSid": f"SMwa{next(_sids):030d}",
        "AccountSid": FakeTwilio.ACCOUNT_SID,
        "From": f"whatsapp:{phone}",
        "To": f"whatsapp:{TWILIO_FROM}",
        "Body": body,
        "NumMedia": "0",
        "ProfileName": "Dag",
        "WaId": phone[1:],
    }
    return signed(client, "/hooks/twilio/whatsapp/inbound", form)


def by_person(client, tokens, ann: str) -> dict[str, dict]:
    return {d["subscriber_id"]: d for d in deliveries(client, tokens["admin"], ann)}


def sent_to(twilio: FakeTwilio, phone: str) -> list[dict[str, str]]:
    return [f for f in twilio.accepted() if f["To"] == f"whatsapp:{phone}"]


def test_templates_per_language_with_their_variables(app, client, tokens, twilio, run_jobs):
    en = subscribe(client, tokens, "+31612340001", "en", **OPTED_IN)
    nl = subscribe(client, tokens, "+31612340002", "nl", **OPTED_IN)
    da = subscribe(client, tokens, "+31612340003", "da", **OPTED_IN)  # no da template
    nobody = subscribe(client, tokens, "+31612340004", "en")  # never agreed to WhatsApp
    ann = announce(client, tokens["admin"], ANNOUNCEMENT)["id"]
    run_jobs()

    [to_en] = sent_to(twilio, "+31612340001")
    [to_nl] = sent_to(twilio, "+31612340002")
    [to_da] = sent_to(twilio, "+31612340003")
    assert sent_to(twilio, "+31612340004") == []
    for form in (to_en, to_nl, to_da):
        assert form["From"] == f"whatsapp:{TWILIO_FROM}"
        assert "Body" not in form  # a template goes alone
    assert to_en["ContentSid"] == EN_SID and to_nl["ContentSid"] == NL_SID
    assert json.loads(to_nl["ContentVariables"]) == {
        "1": "Stroomstoring in Noord",
        # One line: WhatsApp refuses line breaks in a parameter.
        "2": "Delen van Noord hebben sinds 14:05 geen stroom. Monteurs zijn ter plaatse.",
        "3": f"{PUBLIC}/status",
    }
    english = {
        "1": "Power outage in Noord",
        "2": "Parts of Noord have no power since 14:05. Engineers are on site.",
        "3": f"{PUBLIC}/status",
    }
    assert json.loads(to_en["ContentVariables"]) == english
    # Danish falls back to the default locale's template, filled in its language.
    assert to_da["ContentSid"] == EN_SID and json.loads(to_da["ContentVariables"]) == english
    callback = urllib.parse.urlsplit(to_nl["StatusCallback"])
    assert callback.path == "/hooks/twilio/whatsapp/status"
    assert urllib.parse.parse_qs(callback.query) == {"a": [ann], "s": [nl]}

    records = by_person(client, tokens, ann)
    assert {records[s]["state"] for s in (en, nl, da)} == {"sent"}
    assert records[nobody]["state"] == "skipped" and records[nobody]["error"] == NO_OPT_IN
    only = client.get(
        f"/api/v1/announcements/{ann}/deliveries?channel=whatsapp", headers=tokens["admin"]
    ).get_json()
    assert only["total"] == 4 and {d["channel"] for d in only["items"]} == {"whatsapp"}
    counts = client.get(f"/api/v1/announcements/{ann}", headers=tokens["admin"]).get_json()
    assert counts["deliveries"]["whatsapp"]["sent"] == 3
    assert counts["deliveries"]["whatsapp"]["skipped"] == 1


def test_free_text_within_24_hours_of_their_message(app, client, tokens, twilio, run_jobs):
    subscribe(client, tokens, "+31612340011", "nl", **OPTED_IN)
    subscribe(client, tokens, "+31612340012", "nl", **OPTED_IN)
    # One of them wrote to us on WhatsApp: their window is open.
    assert whatsapp_in(client, "+31612340011", "Hallo?").status_code == 200
    announce(client, tokens["admin"], ANNOUNCEMENT)
    run_jobs()

    [free] = sent_to(twilio, "+31612340011")
    assert "ContentSid" not in free and "ContentVariables" not in free
    assert free["Body"].startswith("Acme Energy:") and "Stroomstoring in Noord" in free["Body"]
    assert "Monteurs zijn ter plaatse." in free["Body"]
    assert free["Body"].endswith(f"\n{PUBLIC}/status") and len(free["Body"]) <= 1600
    [template] = sent_to(twilio, "+31612340012")
    assert template["ContentSid"] == NL_SID and "Body" not in template


def test_receipts_move_whatsapp_deliveries(app, client, tokens, twilio, run_jobs):
    ids = [subscribe(client, tokens, f"+3161234002{i}", "en", **OPTED_IN) for i in range(4)]
    ann = announce(client, tokens["admin"], ANNOUNCEMENT)["id"]
    run_jobs()
    assert len(twilio.accepted()) == 4
    statuses = ["delivered", "read", "failed", "undelivered"]
    for i, (sid, status) in enumerate(zip(ids, statuses, strict=True)):
        form = {
            "MessageSid": f"SM{i:032d}",
            "MessageStatus": status,
            "To": f"whatsapp:+3161234002{i}",
            "From": f"whatsapp:{TWILIO_FROM}",
            "ChannelPrefix": "whatsapp",
        }
        if status in ("failed", "undelivered"):
            form["ErrorCode"] = "63024" if status == "failed" else "63003"
        path = f"/hooks/twilio/whatsapp/status?a={ann}&s={sid}"
        assert signed(client, path, form).status_code == 204
    records = by_person(client, tokens, ann)
    assert [records[s]["state"] for s in ids] == ["delivered", "delivered", "failed", "undelivered"]
    assert records[ids[2]]["error"] == "twilio 63024: failed"
    # An unsigned (forged) receipt changes nothing.
    forged = client.post(
        f"/hooks/twilio/whatsapp/status?a={ann}&s={ids[0]}",
        data={"MessageStatus": "failed"},
        headers={"X-Twilio-Signature": "forged"},
    )
    assert forged.status_code == 401
    assert by_person(client, tokens, ann)[ids[0]]["state"] == "delivered"


def test_63016_in_a_receipt_closes_the_window(app, client, tokens, twilio, run_jobs):
    sid = subscribe(client, tokens, "+31612340031", "en", **OPTED_IN)
    whatsapp_in(client, "+31612340031", "Any news?")
    first = announce(client, tokens["admin"], ANNOUNCEMENT)["id"]
    run_jobs()
    assert "Body" in sent_to(twilio, "+31612340031")[0]  # we took the window for open
    form = {"MessageSid": "SM" + "1" * 32, "MessageStatus": "failed", "ErrorCode": "63016"}
    signed(client, f"/hooks/twilio/whatsapp/status?a={first}&s={sid}", form)
    announce(client, tokens["admin"], ANNOUNCEMENT, title="Update: power is back")
    run_jobs()
    assert sent_to(twilio, "+31612340031")[1]["ContentSid"] == EN_SID  # templates from now


def test_a_whatsapp_reply_is_kept_on_the_incident(app, client, tokens, twilio, run_jobs):
    sid = subscribe(client, tokens, "+31612340041", "nl", **OPTED_IN)
    sent = announce(client, tokens["admin"], ANNOUNCEMENT)
    run_jobs()
    assert whatsapp_in(client, "+31612340041", "Wanneer is het opgelost?").status_code == 200
    incident = client.get(
        f"/api/v1/incidents/{sent['incident_id']}", headers=tokens["helpdesk"]
    ).get_json()
    [reply] = incident["replies"]
    assert reply["body"] == "Wanneer is het opgelost?"
    assert reply["subscriber_id"] == sid and reply["announcement_id"] == sent["id"]
    assert reply["from"] == "+316…041" and "+31612340041" not in str(incident)
    # A message from a stranger is not kept.
    whatsapp_in(client, "+31612349999", "Hello?")
    incident = client.get(
        f"/api/v1/incidents/{sent['incident_id']}", headers=tokens["helpdesk"]
    ).get_json()
    assert len(incident["replies"]) == 1


def test_stop_on_whatsapp_opts_out_of_whatsapp_only(app, client, tokens, twilio, run_jobs):
    sid = subscribe(client, tokens, "+31612340051", "nl", **OPTED_IN)
    first = announce(client, tokens["admin"], ANNOUNCEMENT)
    run_jobs()
    assert whatsapp_in(client, "+31612340051", "STOP").status_code == 200
    person = client.get(f"/api/v1/subscribers/{sid}", headers=tokens["admin"]).get_json()
    assert person["opt_outs"] == ["whatsapp"]  # SMS and email stay as they were
    incident = client.get(
        f"/api/v1/incidents/{first['incident_id']}", headers=tokens["helpdesk"]
    ).get_json()
    assert incident["replies"] == []  # STOP is an opt-out, not a reply
    second = announce(client, tokens["admin"], ANNOUNCEMENT, title="Update")["id"]
    run_jobs()
    assert len(sent_to(twilio, "+31612340051")) == 1
    assert by_person(client, tokens, second)[sid]["state"] == "skipped"
    # START opts back in.
    whatsapp_in(client, "+31612340051", "START")
    person = client.get(f"/api/v1/subscribers/{sid}", headers=tokens["admin"]).get_json()
    assert person["opt_outs"] == []
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'broadcaster_inbound_whatsapp_total{kind="opt_out"} 1.0' in metrics
    assert 'broadcaster_inbound_whatsapp_total{kind="opt_in"} 1.0' in metrics


def test_start_on_whatsapp_records_an_opt_in(app, client, tokens, twilio, run_jobs):
    sid = subscribe(client, tokens, "+31612340061", "en")
    assert (
        client.get(f"/api/v1/subscribers/{sid}", headers=tokens["admin"]).get_json()[
            "whatsapp_opt_in_at"
        ]
        is None
    )
    whatsapp_in(client, "+31612340061", "START")
    person = client.get(f"/api/v1/subscribers/{sid}", headers=tokens["admin"]).get_json()
    assert person["whatsapp_opt_in_at"] > 0
    assert person["whatsapp_opt_in_source"] == "WhatsApp START"
    announce(client, tokens["admin"], ANNOUNCEMENT)
    run_jobs()
    [message] = sent_to(twilio, "+31612340061")
    assert "Body" in message  # START opened their window too: free text


def test_a_permanent_400_falls_back_by_the_plan(make_app, tmp_path, tokens, twilio):
    app = make_app(
        PLAN=whatsapp_plan(tmp_path, fallback='fallback = { sms = "email", whatsapp = "sms" }')
    )
    client = app.test_client()
    sid = subscribe(client, tokens, "+31612340071", "en", **OPTED_IN)
    twilio.fail_next(
        400,
        body={
            "code": 63016,
            "message": "Failed to send freeform message because you are outside the allowed "
            "window. If you are using WhatsApp, please use a Message Template.",
            "status": 400,
        },
    )
    ann = announce(client, tokens["admin"], ANNOUNCEMENT)["id"]
    drain(app)
    records = {
        (d["channel"], d["subscriber_id"]): d for d in deliveries(client, tokens["admin"], ann)
    }
    failed = records[("whatsapp", sid)]
    assert failed["state"] == "failed" and "63016" in failed["error"]
    assert failed["fallback"] == "sms"
    assert records[("sms", sid)]["state"] == "sent"
    [text] = [f for f in twilio.accepted() if f["To"] == "+31612340071"]
    assert text["From"] == TWILIO_FROM and "Power outage in Noord" in text["Body"]


@pytest.mark.parametrize("status", [429, 503])
def test_a_transient_error_is_retried(app, client, tokens, twilio, run_jobs, status):
    sid = subscribe(client, tokens, "+31612340081", "en", **OPTED_IN)
    twilio.fail_next(status, headers={"Retry-After": "1"}, body={"code": 20429, "status": status})
    ann = announce(client, tokens["admin"], ANNOUNCEMENT)["id"]
    run_jobs()
    tries = [r for r in twilio.requests if r["form"]["To"] == "whatsapp:+31612340081"]
    assert [r["status"] for r in tries] == [status, 201]
    record = by_person(client, tokens, ann)[sid]
    assert record["state"] == "sent" and record["attempts"] == 2


def test_opt_in_is_validated_and_shown(client, tokens):
    rows = [
        {"phone": "+31612340091", "audiences": ["consumers"], **OPTED_IN},
        {"phone": "+31612340092", "audiences": ["consumers"], "whatsapp_opt_in_at": "2026-03-01"},
        {
            "phone": "+31612340093",
            "audiences": ["consumers"],
            "whatsapp_opt_in_at": "2099-01-01T00:00:00Z",
            "whatsapp_opt_in_source": "form",
        },
        {
            "phone": "+31612340094",
            "audiences": ["consumers"],
            "whatsapp_opt_in_at": "2026-03-01T09:30:00Z",
        },
    ]
    report = client.post("/api/v1/subscribers", json=rows, headers=tokens["admin"]).get_json()
    assert report["created"] == 1
    errors = {row["index"]: row["errors"] for row in report["rejected"]}
    assert errors[1] == {"whatsapp_opt_in_at": ["give the time zone (e.g. +01:00 or Z)"]}
    assert errors[2] == {"whatsapp_opt_in_at": ["is in the future"]}
    assert list(errors[3]) == ["whatsapp_opt_in_source"]
    [person] = client.get("/api/v1/subscribers", headers=tokens["admin"]).get_json()["items"]
    assert person["whatsapp_opt_in_source"] == "form"
    assert person["whatsapp_opt_in_at"] == 1772353800.0  # 2026-03-01 08:30 UTC
    # A later update without an opt-in keeps it.
    again = [{"phone": "+31612340091", "audiences": ["consumers"], "locale": "nl"}]
    client.post("/api/v1/subscribers", json=again, headers=tokens["admin"])
    person = client.get(f"/api/v1/subscribers/{person['id']}", headers=tokens["admin"]).get_json()
    assert person["locale"] == "nl" and person["whatsapp_opt_in_source"] == "form"


def test_csv_import_takes_the_opt_in(client, tokens):
    csv = (
        "phone,audiences,whatsapp_opt_in_at,whatsapp_opt_in_source\n"
        "+31612340101,consumers,2026-03-01T09:30:00+01:00,call centre\n"
        "+31612340102,consumers,,\n"
    )
    answer = client.post(
        "/api/v1/subscribers/import",
        data=csv,
        headers={**tokens["admin"], "Content-Type": "text/csv"},
    )
    assert answer.get_json()["created"] == 2
    people = client.get("/api/v1/subscribers", headers=tokens["admin"]).get_json()["items"]
    sources = {p["phone"]: p["whatsapp_opt_in_source"] for p in people}
    assert sources == {"+31612340101": "call centre", "+31612340102": None}


def test_preview_shows_the_template_and_warns_of_the_fallback(client, tokens):
    danish = {"title": "Strømafbrydelse i Noord", "body": "Ingen strøm siden 14:05."}
    translations = {**ANNOUNCEMENT["translations"], "da": danish}
    preview = client.post(
        "/api/v1/preview",
        json={**ANNOUNCEMENT, "translations": translations},
        headers=tokens["helpdesk"],
    )
    body = preview.get_json()
    shown = {r["locale"]: r for r in body["renderings"] if r["channel"] == "whatsapp"}
    assert shown["nl"]["content"]["content_sid"] == NL_SID
    assert shown["nl"]["measures"]["template"] == "nl"
    assert json.loads(shown["nl"]["content"]["content_variables"])["1"] == (
        "Stroomstoring in Noord"
    )
    assert "Stroomstoring in Noord" in shown["nl"]["content"]["text"]  # the free text too
    # No da template: the en one, in English (the template's language), the text in Danish.
    assert shown["da"]["content"]["content_sid"] == EN_SID
    assert json.loads(shown["da"]["content"]["content_variables"])["1"] == "Power outage in Noord"
    assert "Strømafbrydelse i Noord" in shown["da"]["content"]["text"]
    assert any(
        "whatsapp to consumers (da): no WhatsApp template for da" in w for w in body["warnings"]
    )
    assert not any("template for nl" in w for w in body["warnings"])


def test_whatsapp_needs_templates_in_the_plan(make_app, tokens):
    # The bundled plan has no [whatsapp.templates]: an announcement by WhatsApp is refused.
    answer = (
        make_app()
        .test_client()
        .post(
            "/api/v1/announcements",
            json={**ANNOUNCEMENT, "channels": ["whatsapp"]},
            headers=tokens["admin"],
        )
    )
    assert answer.status_code == 422
    assert "whatsapp needs an approved template" in answer.get_json()["errors"]["channels"][0]


def test_metrics_count_whatsapp_deliveries(app, client, tokens, run_jobs):
    subscribe(client, tokens, "+31612340111", "en", **OPTED_IN)
    subscribe(client, tokens, "+31612340112", "en")
    announce(client, tokens["admin"], ANNOUNCEMENT)
    run_jobs()
    text = client.get("/metrics").get_data(as_text=True)
    assert 'broadcaster_deliveries{channel="whatsapp",state="sent"} 1.0' in text
    assert 'broadcaster_deliveries{channel="whatsapp",state="skipped"} 1.0' in text


def test_a_whatsapp_reply_becomes_a_helpdesk_ticket(make_app, tmp_path, tokens, zendesk):
    from tests.fakes_helpdesk import ZENDESK_EMAIL, ZENDESK_TOKEN

    app = make_app(
        PLAN=whatsapp_plan(tmp_path),
        ZENDESK_URL=zendesk.url,
        ZENDESK_EMAIL=ZENDESK_EMAIL,
        ZENDESK_API_TOKEN=ZENDESK_TOKEN,
    )
    client = app.test_client()
    subscribe(client, tokens, "+31612340121", "nl", **OPTED_IN)
    sent = announce(client, tokens["admin"], ANNOUNCEMENT)
    drain(app)
    whatsapp_in(client, "+31612340121", "Mijn vriezer ontdooit, wat nu?")
    drain(app)
    [ticket] = zendesk.tickets.values()
    assert (
        f"incident-{sent['incident_id']}" in ticket["tags"] and "reply-whatsapp" in ticket["tags"]
    )
    assert ticket["requester"] == {"name": "+31612340121"}
    assert ticket["comments"][0]["body"].startswith("Mijn vriezer ontdooit, wat nu?")


def test_without_twilio_whatsapp_goes_to_the_outbox(make_app, tmp_path, tokens, twilio):
    app = make_app(PLAN=whatsapp_plan(tmp_path), TWILIO_ACCOUNT_SID=None, TWILIO_AUTH_TOKEN=None)
    client = app.test_client()
    free = subscribe(client, tokens, "+31612340131", "nl", **OPTED_IN)
    template = subscribe(client, tokens, "+31612340132", "nl", **OPTED_IN)
    open_window(app.extensions["broadcaster"].redis, free)  # as a message from them would
    ann = announce(client, tokens["admin"], ANNOUNCEMENT)["id"]
    drain(app)
    assert twilio.requests == []
    records = by_person(client, tokens, ann)
    assert records[free]["provider_id"].startswith("outbox-")
    assert set(records[free]["message"]) == {"text", "announcement_id"}
    shown = records[template]["message"]
    assert shown["content_sid"] == NL_SID and "text" not in shown
    assert json.loads(shown["content_variables"])["1"] == "Stroomstoring in Noord"
