"""Banners come and go: one per site, in the site's language, and all-clears that leave.

Issue 16, point 5: a Dutch site showed three banners (an open incident, a resolved one and
an English test message) and resolved banners never left.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask.testing import FlaskClient

from tests.helpers import publish

NL = {"title": "Stroomstoring", "body": "Delen van Amsterdam zonder stroom."}
BASE: dict[str, Any] = {
    "title": "Power outage",
    "body": "Parts of Amsterdam have no power.",
    "severity": "minor",
    "status": "investigating",
    "audiences": ["consumers"],
    "channels": ["banner"],
    "translations": {"nl": NL},
}


def banners(client: FlaskClient, query: str = "", **headers: str) -> list[dict[str, Any]]:
    response = client.get(f"/banner.json{query}", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["banners"]


def poll(check: Callable[[], bool], timeout: float = 15.0) -> None:
    """Wait until ``check()`` holds; fail after ``timeout`` (a bound, not a duration)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "still not true after the deadline"
        time.sleep(0.1)


def resolve(client: FlaskClient, tokens: dict[str, dict[str, str]], created: dict) -> None:
    publish(
        client,
        tokens,
        BASE,
        incident_id=created["incident_id"],
        status="resolved",
        title="Power is back",
        body="Power is back everywhere.",
        translations={"nl": {"title": "Stroom is terug", "body": "Overal weer stroom."}},
    )


# ------------------------------------------------------------------------ all clear, then gone


def test_the_all_clear_stays_thirty_minutes_by_default(client, tokens):
    created = publish(client, tokens, BASE)
    resolve(client, tokens, created)
    [banner] = banners(client, "?lang=nl")
    assert banner["all_clear"] is True and banner["status"] == "resolved"
    assert "Stroom is terug" in banner["text"]
    assert client.application.config["BANNER_ALL_CLEAR_SECONDS"] == 1800
    stored = client.get(f"/api/v1/incidents/{created['incident_id']}", headers=tokens["admin"])
    resolved_at = stored.get_json()["resolved_at"]
    expires = datetime.fromisoformat(banner["expires_at"].replace("Z", "+00:00")).timestamp()
    assert abs(expires - resolved_at - 1800) < 1


def test_a_resolved_banner_shows_resolved_then_leaves_without_any_publish(make_app, tokens, r):
    client = make_app(BANNER_ALL_CLEAR_SECONDS=1).test_client()
    created = publish(client, tokens, BASE)
    resolve(client, tokens, created)
    [banner] = banners(client, "?lang=nl")
    assert banner["all_clear"] is True and banner["status"] == "resolved"
    stored = r.get("bc:banner::nl")
    poll(lambda: banners(client, "?lang=nl") == [])
    # Read-time expiry: nothing recomputed the stored value, the read dropped it.
    assert r.get("bc:banner::nl") == stored
    assert json.loads(stored)[0]["all_clear"] is True


def test_an_open_incident_is_not_hidden_by_an_all_clear_and_outlives_it(make_app, tokens):
    client = make_app(BANNER_ALL_CLEAR_SECONDS=1).test_client()
    gas = publish(client, tokens, BASE, title="Gas leak", severity="critical")
    resolve(client, tokens, gas)  # a critical all-clear…
    minor = publish(client, tokens, BASE, title="Slow portal", severity="minor")
    [banner] = banners(client)
    assert banner["incident_id"] == minor["incident_id"], "…does not beat an open incident"
    assert banner["more"] is None, "an all-clear is not one more open incident"


# ---------------------------------------------------------------------------- one per site


def test_one_banner_per_locale_with_more_linking_to_the_status_page(client, tokens):
    first = publish(client, tokens, BASE, title="Slow portal", severity="info")
    worst = publish(client, tokens, BASE, title="Gas leak", severity="critical")
    publish(client, tokens, BASE, title="Invoices late", severity="major")
    for lang, label in (("nl", "+2 meer"), ("en", "+2 more")):
        [banner] = banners(client, f"?audience=consumers&lang={lang}")
        assert banner["incident_id"] == worst["incident_id"], "the most severe wins"
        assert banner["more"] == {
            "count": 2,
            "label": label,
            "link": f"http://127.0.0.1:8000/status?lang={lang}#current",
        }
    # The status page lists every one of them.
    page = client.get("/status?lang=nl").get_data(as_text=True)
    assert first["incident_id"] in page and worst["incident_id"] in page
    assert 'id="current"' in page


def test_the_most_severe_wins_then_the_latest(client, tokens):
    publish(client, tokens, BASE, title="Minor one", severity="minor")
    major = publish(client, tokens, BASE, title="Major one", severity="major")
    later = publish(client, tokens, BASE, title="Later major", severity="major")
    [banner] = banners(client)
    assert banner["incident_id"] == later["incident_id"] != major["incident_id"]
    assert banner["more"]["count"] == 2


def test_the_dutch_site_of_the_issue_shows_one_banner(make_app, tokens):
    """An open incident, a resolved one and an English test message: one banner, Dutch."""
    client = make_app().test_client()
    resolved = publish(client, tokens, BASE, title="Earlier outage")
    resolve(client, tokens, resolved)
    open_ = publish(client, tokens, BASE, title="Power outage")
    test = {**BASE, "title": "TEST please ignore", "body": "Test message.", "translations": {}}
    publish(client, tokens, test, severity="critical")
    for query, headers in (
        ("?audience=consumers&lang=nl", {}),
        ("?audience=consumers&lang=nl-NL", {}),  # how a site may spell its language
        ("?audience=consumers", {"Accept-Language": "nl-NL,nl;q=0.9"}),
    ):
        [banner] = banners(client, query, **headers)
        assert banner["incident_id"] == open_["incident_id"]
        assert banner["locale"] == "nl" and banner["text"].startswith("Wordt onderzocht")
        assert banner["more"] is None, "the English-only one is not counted for Dutch sites"
    # English sites do see the English message (the most severe).
    [english] = banners(client, "?audience=consumers&lang=en")
    assert english["title"] == "TEST please ignore" and english["more"]["count"] == 1


def test_banners_for_other_locales_never_show(client, tokens):
    english_only = {**BASE, "translations": {}}
    publish(client, tokens, english_only, severity="critical")
    for lang in ("nl", "da", "sv"):
        assert banners(client, f"?lang={lang}") == [], lang
        assert banners(client, "", **{"Accept-Language": lang}) == [], lang
    # A site in a language the plan does not speak gets no banner rather than English.
    for lang in ("de", "fr-FR", "xx"):
        body = client.get(f"/banner.json?lang={lang}").get_json()
        assert body["banners"] == [] and body["locale"] is None, lang
    assert [b["locale"] for b in banners(client, "?lang=en")] == ["en"]


def test_a_follow_up_without_the_sites_language_takes_the_banner_off_that_site(client, tokens):
    created = publish(client, tokens, BASE)
    assert banners(client, "?lang=nl")[0]["text"].startswith("Wordt onderzocht")
    publish(
        client,
        tokens,
        BASE,
        incident_id=created["incident_id"],
        status="identified",
        body="A cable broke.",
        translations={},
    )
    # An older Dutch text would contradict the English news; none is better.
    assert banners(client, "?lang=nl") == []
    assert "A cable broke." in banners(client, "?lang=en")[0]["text"]


def test_reading_the_banner_costs_one_redis_read(client, tokens, r):
    for n in range(8):
        publish(client, tokens, BASE, title=f"Outage {n}", severity="minor")
    banners(client)  # the stored value exists
    stored = json.loads(r.get("bc:banner::en"))
    assert len(stored) == 1, "only the leading open incident is stored, not all eight"
    before = int(r.info("stats")["total_commands_processed"])
    client.get("/banner.json?lang=en&fresh=1")
    used = int(r.info("stats")["total_commands_processed"]) - before
    assert used <= 3, used  # the GET (and the INFO itself)


def test_banners_stored_by_the_previous_version_are_built_again_at_start(make_app, tokens, r):
    import hashlib

    app = make_app()
    client = app.test_client()
    publish(client, tokens, BASE, title="Gas leak", severity="critical")
    publish(client, tokens, BASE, title="Slow portal", severity="info")
    banners(client)
    # What the previous version stored: every banner in a list, under the plan's digest.
    old = [{**b, "more": None} for b in json.loads(r.get("bc:banner::en"))] * 3
    r.set("bc:banner::en", json.dumps(old))
    with app.app_context():
        from broadcaster.services import services

        plan = services().plan
    r.set("bc:public:plan", hashlib.sha256(repr(plan).encode()).hexdigest()[:16])
    # Even unread, an old value shows one banner only…
    assert len(banners(client)) == 1
    # …and the next start builds it again, with "+1 more".
    [banner] = banners(make_app().test_client())
    assert banner["title"] == "Gas leak" and banner["more"]["count"] == 1
