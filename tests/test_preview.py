"""Audiences and preview: what each audience will get, before anything is sent."""

from __future__ import annotations

from broadcaster.rendering.segments import BANNER_MAX, sms_cost

ANNOUNCEMENT = {
    "title": "Storing betalingen",
    "body": "Card payments fail since 09:10. Next update by 10:30.",
    "severity": "critical",
    "audiences": ["consumers", "business"],
    "channels": ["email", "sms"],
    "translations": {
        "nl": {
            "title": "Storing bij geïntegreerde betalingen",
            "body": "Betalen met pas lukt niet sinds 09:10. We geïnformeerd u om 10:30.",
        }
    },
}


def test_audiences_list_routes_and_counts(client, tokens):
    client.post(
        "/api/v1/subscribers",
        headers=tokens["admin"],
        json=[
            {"email": "a@example.com", "audiences": ["consumers"]},
            {"email": "b@example.com", "audiences": ["consumers", "business"]},
        ],
    )
    body = client.get("/api/v1/audiences", headers=tokens["helpdesk"]).get_json()
    by_name = {a["name"]: a for a in body["items"]}
    assert set(by_name) == {"consumers", "business", "staff"}
    assert by_name["consumers"]["subscribers"] == 2 and by_name["business"]["subscribers"] == 1
    assert by_name["staff"]["subscribers"] == 0
    first = by_name["consumers"]["routes"][0]
    assert {key: first[key] for key in ("need", "channel", "contact", "hours")} == {
        "need": {
            "en": "Technical problem",
            "nl": "Technisch probleem",
            "da": "Teknisk problem",
            "sv": "Tekniskt problem",
        },
        "channel": "Live chat",  # the default locale's, as before
        "contact": "https://acme.example/chat",
        "hours": "24/7",
    }
    # Each locale's readers see their own texts.
    assert first["locales"]["sv"] == {
        "need": "Tekniskt problem",
        "channel": "Livechatt",
        "contact": "https://acme.example/chat",
        "hours": "24/7",
    }
    assert by_name["business"]["description"] == "Business customers"
    assert by_name["business"]["descriptions"]["nl"] == "Zakelijke klanten"
    assert client.get("/api/v1/audiences", headers=tokens["monitor"]).status_code == 403


def test_unsaved_preview_renders_everything_and_records_nothing(client, tokens, r):
    client.post(
        "/api/v1/subscribers",
        headers=tokens["admin"],
        json=[
            {"email": "a@example.com", "phone": "+31612345001", "audiences": ["consumers"]},
            {"email": "b@example.com", "audiences": ["consumers", "business"], "locale": "nl"},
            {"phone": "+31612345003", "audiences": ["business"]},
        ],
    )
    keys_before = set(r.keys("*"))
    response = client.post("/api/v1/preview", json=ANNOUNCEMENT, headers=tokens["helpdesk"])
    assert response.status_code == 200
    preview = response.get_json()
    assert set(r.keys("*")) == keys_before, "preview stores nothing and enqueues nothing"

    # channel × audience × locale: 2 × 2 × 4
    combos = {(x["channel"], x["audience"], x["locale"]) for x in preview["renderings"]}
    assert len(combos) == len(preview["renderings"]) == 16
    by_key = {(x["channel"], x["audience"], x["locale"]): x for x in preview["renderings"]}
    nl_sms = by_key[("sms", "consumers", "nl")]
    assert nl_sms["language"] == "nl"
    assert nl_sms["measures"]["encoding"] == "UCS-2"  # the ï in "geïntegreerde"
    assert nl_sms["measures"]["segments"] == sms_cost(nl_sms["content"]["text"]).segments
    assert nl_sms["content"]["text"].startswith(
        "Acme Energy: Wordt onderzocht: Storing bij geïntegreerde betalingen."
    )
    # In UCS-2 two segments hold 134 units: the route no longer fits, the status link does.
    assert nl_sms["content"]["text"].endswith(" http://127.0.0.1:8000/status")
    en_sms = by_key[("sms", "consumers", "en")]["content"]["text"]
    assert "Technical problem: https://acme.example/chat" in en_sms
    da_email = by_key[("email", "business", "da")]
    assert da_email["language"] == "en", "no Danish translation: Danish readers get English"
    assert "Account manager" in da_email["content"]["text"]
    assert by_key[("sms", "consumers", "en")]["measures"]["encoding"] == "GSM-7"

    assert preview["recipients"] == {
        "email": {"recipients": 2, "skipped": 0},
        "sms": {"recipients": 2, "skipped": 0},
    }
    warnings = "\n".join(preview["warnings"])
    assert "no da translation" in warnings and "no sv translation" in warnings
    assert "no nl translation" not in warnings
    assert "sms to consumers (nl): a character outside GSM-7 switches the SMS to UCS-2" in warnings
    # The preview says what a short text gave up, not just that it was cut.
    assert "sms to consumers (nl): left out route; shortened body to fit 2 SMS segments" in warnings
    public = {(x["channel"], x["locale"]): x for x in preview["public"]}
    assert len(public[("banner", "en")]["content"]["text"]) <= BANNER_MAX
    assert public[("mastodon", "nl")]["content"]["text"].endswith("http://127.0.0.1:8000/status")


def test_preview_warns_when_body_is_cut_and_counts_opted_out(client, tokens):
    people = client.post(
        "/api/v1/subscribers",
        headers=tokens["admin"],
        json=[{"external_id": "x", "phone": "+31612345001", "audiences": ["consumers"]}],
    ).get_json()
    assert people["created"] == 1
    sid = client.get("/api/v1/subscribers", headers=tokens["admin"]).get_json()["items"][0]["id"]
    client.post(
        f"/api/v1/subscribers/{sid}/opt-out", json={"channels": ["sms"]}, headers=tokens["admin"]
    )
    long = {**ANNOUNCEMENT, "body": "The payment service is down. " * 40, "translations": {}}
    preview = client.post("/api/v1/preview", json=long, headers=tokens["admin"]).get_json()
    assert "sms to consumers (en): shortened body to fit 2 SMS segments" in preview["warnings"]
    en_sms = [x for x in preview["renderings"] if (x["channel"], x["locale"]) == ("sms", "en")][0]
    assert en_sms["measures"]["segments"] <= 2 and en_sms["measures"]["cut"] is True
    assert preview["recipients"]["sms"] == {"recipients": 0, "skipped": 1}


def test_preview_of_a_saved_announcement_and_errors(client, tokens, r):
    created = client.post(
        "/api/v1/announcements", json=ANNOUNCEMENT, headers=tokens["helpdesk"]
    ).get_json()
    jobs_before = r.llen("rq:queue:plan")
    got = client.get(created["links"]["preview"], headers=tokens["helpdesk"])
    assert got.status_code == 200 and len(got.get_json()["renderings"]) == 16
    assert r.llen("rq:queue:plan") == jobs_before
    assert (
        client.get("/api/v1/announcements/ann_nope/preview", headers=tokens["admin"]).status_code
        == 404
    )
    bad = client.post(
        "/api/v1/preview", json={**ANNOUNCEMENT, "severity": "huge"}, headers=tokens["admin"]
    )
    assert bad.status_code == 422 and "severity" in bad.get_json()["errors"]
    assert (
        client.post("/api/v1/preview", json=ANNOUNCEMENT, headers=tokens["monitor"]).status_code
        == 403
    )


def test_preview_warns_about_an_audience_without_routes(make_app, tokens, tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text(
        '[organisation]\nname = "Tiny"\n[channels_by_severity]\ninfo = ["email"]\n'
        'minor = ["email"]\nmajor = ["email"]\ncritical = ["email"]\n'
        '[audiences.everyone]\nchannels = ["email"]\n'
    )
    client = make_app(PLAN=str(plan)).test_client()
    body = {"title": "T", "body": "B", "severity": "info", "audiences": ["everyone"]}
    preview = client.post("/api/v1/preview", json=body, headers=tokens["admin"]).get_json()
    assert (
        "audience everyone has no routes: messages say nothing about whom to contact"
        in preview["warnings"]
    )
    assert [x["channel"] for x in preview["renderings"]] == ["email"]


def test_preview_with_public_channels(client, tokens):
    body = {**ANNOUNCEMENT, "channels": ["banner", "social", "webhook", "email"]}
    response = client.post("/api/v1/preview", json=body, headers=tokens["admin"])
    assert response.status_code == 200
    preview = response.get_json()
    assert {x["channel"] for x in preview["renderings"]} == {"email"}
    assert set(preview["recipients"]) == {"email"}
    assert {x["channel"] for x in preview["public"]} == {"banner", "mastodon", "bluesky"}


HALF_TRANSLATED_PLAN = """
[organisation]
name = "Tiny"
default_locale = "en"
locales = ["en", "nl", "de"]
[channels_by_severity]
info = ["email"]
minor = ["email"]
major = ["email"]
critical = ["email"]
[audiences.consumers]
description = { en = "Private customers", nl = "Particuliere klanten" }
channels = ["email"]
[[audiences.consumers.routes]]
need = { en = "Billing", nl = "Facturen", de = "Rechnung" }
channel = { en = "Customer portal", de = "Kundenportal" }
contact = "https://acme.example/portal"
hours = "24/7"
"""


def test_preview_names_every_missing_plan_translation(make_app, tokens, tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text(HALF_TRANSLATED_PLAN)
    client = make_app(PLAN=str(plan)).test_client()
    body = {
        "title": "Outage",
        "body": "We are on it.",
        "severity": "info",
        "audiences": ["consumers"],
        "translations": {
            "nl": {"title": "Storing", "body": "We zijn ermee bezig."},
            "de": {"title": "Störung", "body": "Wir arbeiten daran."},
        },
    }
    preview = client.post("/api/v1/preview", json=body, headers=tokens["admin"]).get_json()
    warnings = preview["warnings"]
    assert (
        "audiences.consumers.routes[0].channel has no nl text: nl readers see the en one "
        "('Customer portal')" in warnings
    )
    assert (
        "audiences.consumers.description has no de text: de readers see the en one "
        "('Private customers')" in warnings
    )
    # Written in every language, or the same in all ("24/7"): nothing to say.
    assert not any(".need " in w or ".hours " in w for w in warnings)
    # No catalogue of our own for German: the fixed words fall back, and the preview says so.
    assert any(w.startswith("no de catalogue for the fixed words") for w in warnings)
    assert not any(w.startswith("no nl catalogue") for w in warnings)
    # What the Dutch reader gets is what the warning says.
    nl = next(x for x in preview["renderings"] if x["locale"] == "nl")
    assert "Facturen: Customer portal" in nl["content"]["text"]
    de = next(x for x in preview["renderings"] if x["locale"] == "de")
    assert "Rechnung: Kundenportal" in de["content"]["text"]


def test_the_bundled_plan_gives_no_plan_translation_warnings(client, tokens):
    preview = client.post("/api/v1/preview", json=ANNOUNCEMENT, headers=tokens["admin"]).get_json()
    assert not [w for w in preview["warnings"] if w.startswith("audiences.")]
    assert not [w for w in preview["warnings"] if "catalogue" in w]
