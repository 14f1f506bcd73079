"""One clock: every time people read is in the plan's zone, their language's format, to the
minute, with the zone named once; machines still get ISO 8601 UTC."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from typing import Any
from zoneinfo import ZoneInfo

import feedparser
import pytest
from flask import Flask
from flask.testing import FlaskClient

from broadcaster.rendering import clock
from tests.helpers import drain, publish, subscribe

TZ = "Europe/Amsterdam"  # the example plan's organisation.timezone
AMS = ZoneInfo(TZ)
LOCALES = ("en", "nl", "da", "sv")
# CLDR's generic name of the zone, written out so a change of source shows here.
ZONE = {
    "en": "Central European Time",
    "nl": "Midden-Europese tijd",
    "da": "Centraleuropæisk tid",
    "sv": "centraleuropeisk tid",
}
# A time with seconds, as "09:14:40", "9:14:40 AM" or Danish "09.14.40".
SECONDS = re.compile(r"\d[:.]\d\d[:.]\d\d")
TS = datetime(2026, 12, 2, 8, 14, 40, tzinfo=UTC).timestamp()  # 09:14:40 in Amsterdam
SUMMER = datetime(2026, 7, 2, 8, 14, 40, tzinfo=UTC).timestamp()  # 10:14:40 in Amsterdam


def hhmm(ts: float, locale: str) -> str:
    """The time of day the reader should see, worked out without our code."""
    t = datetime.fromtimestamp(ts, AMS)
    if locale == "en":
        return f"{t.hour % 12 or 12}:{t.minute:02d} {'AM' if t.hour < 12 else 'PM'}"
    return f"{t.hour:02d}{'.' if locale == 'da' else ':'}{t.minute:02d}"


def assert_read_by_people(text: str, locale: str, zone_times: int = 1) -> None:
    """No seconds, no UTC wording, no tz id; the zone named ``zone_times`` times."""
    assert not SECONDS.search(text), SECONDS.search(text)
    assert "Europe/Amsterdam" not in text and "UTC" not in text
    assert text.count(ZONE[locale]) == zone_times, (locale, text)


# --- the formatting API (rendering/clock.py) -----------------------------------------------


@pytest.mark.parametrize(
    ("locale", "expected"), [("en", "9:14 AM"), ("nl", "09:14"), ("da", "09.14"), ("sv", "09:14")]
)
def test_a_time_today_is_only_the_time_to_the_minute(locale: str, expected: str) -> None:
    assert clock.format_time(TS, locale, TZ, now=TS + 3600) == expected


@pytest.mark.parametrize(
    ("locale", "other_day", "other_year"),
    [
        ("en", "Nov 30, 9:14 AM", "Dec 2, 2026, 9:14 AM"),
        ("nl", "30 nov, 09:14", "2 dec 2026, 09:14"),
        ("da", "30. nov. 09.14", "2. dec. 2026 09.14"),
        ("sv", "30 nov. 09:14", "2 dec. 2026 09:14"),
    ],
)
def test_the_date_only_when_another_day_and_the_year_only_when_another_year(
    locale: str, other_day: str, other_year: str
) -> None:
    assert clock.format_time(TS - 2 * 86400, locale, TZ, now=TS) == other_day
    assert clock.format_time(TS, locale, TZ, now=TS + 40 * 86400) == other_year


def test_today_is_the_day_in_the_plans_zone_not_in_utc() -> None:
    late = datetime(2026, 12, 2, 23, 30, tzinfo=UTC).timestamp()  # already 3 Dec in Amsterdam
    assert clock.format_time(late, "nl", TZ, now=TS) == "3 dec, 00:30"
    assert clock.format_time(late, "nl", "UTC", now=TS) == "23:30"


def test_summer_time_is_followed() -> None:
    assert clock.format_time(SUMMER, "nl", TZ, now=SUMMER) == "10:14"
    assert clock.format_time(SUMMER, "en", TZ, now=SUMMER) == "10:14 AM"


def test_the_zone_is_named_in_the_readers_language() -> None:
    assert {locale: clock.zone_name(locale, TZ) for locale in LOCALES} == ZONE
    assert clock.zone_name("en", "UTC") == "Coordinated Universal Time"  # not "GMT+00:00"
    assert clock.zone_note("nl", TZ) == "Alle tijden in Midden-Europese tijd."
    assert clock.zone_note("xx", TZ) == "All times in Central European Time."


def test_html_times_keep_iso_utc_for_machines() -> None:
    element = clock.time_element("2026-12-02T08:14:40Z", "en", TZ)
    assert element.startswith('<time datetime="2026-12-02T08:14:40Z">')
    assert element.endswith(">" + clock.format_time(TS, "en", TZ) + "</time>")
    assert clock.time_element(TS, "nl", TZ) == clock.time_element("2026-12-02T08:14:40Z", "nl", TZ)
    assert clock.time_element(None, "en", TZ) == clock.time_element(0, "en", TZ) == "—"
    assert clock.time_element("nan", "en", TZ) == clock.time_element("soon", "en", TZ) == "—"


# --- what people receive -------------------------------------------------------------------

TRANSLATIONS = {
    "nl": {"title": "Stroomstoring", "body": "Geen stroom in Noord."},
    "da": {"title": "Strømsvigt", "body": "Ingen strøm i Nord."},
    "sv": {"title": "Strömavbrott", "body": "Ingen ström i Norr."},
}
OUTAGE = {
    "title": "Power outage",
    "body": "No power in Noord.",
    "severity": "minor",
    "status": "investigating",
    "audiences": ["consumers"],
    "translations": TRANSLATIONS,
}


def promise() -> datetime:
    """15:00 in the plan's zone two days ahead (a promise must lie in the next 30 days)."""
    day = datetime.now(AMS).date() + timedelta(days=2)
    return datetime.combine(day, dt_time(15, 0), AMS)


def test_emails_show_plan_zone_minutes_and_name_the_zone_once(
    app: Flask, client: FlaskClient, tokens: dict[str, dict[str, str]], providers: Any
) -> None:
    sendgrid, _ = providers
    subscribe(
        client,
        tokens["admin"],
        [
            {
                "external_id": loc,
                "email": f"{loc}@example.com",
                "locale": loc,
                "audiences": ["consumers"],
            }
            for loc in LOCALES
        ],
    )
    when = promise()
    created = publish(client, tokens, OUTAGE, channels=["email"], next_update_at=when.isoformat())
    drain(app)
    published = client.get(
        f"/api/v1/announcements/{created['id']}", headers=tokens["admin"]
    ).get_json()["published_at"]
    mails = {to.split("@")[0]: payload for to, payload in sendgrid.accepted()}
    assert set(mails) == set(LOCALES)
    for locale, payload in mails.items():
        parts = {c["type"]: c["value"] for c in payload["content"]}
        for text in (parts["text/plain"], parts["text/html"]):
            assert_read_by_people(text, locale)
            assert hhmm(published, locale) in text, (locale, "updated, in the plan's zone")
            # The promise: its day and 15:00 (3:00 PM) in the plan's zone.
            assert re.search(rf"\b{when.day}\b[^\n<]*\b{hhmm(when.timestamp(), locale)}", text)


def alert(started: datetime) -> dict[str, Any]:
    labels = {"alertname": "PaymentsDown", "severity": "critical", "service": "payments"}
    return {
        "version": "4",
        "groupKey": '{}:{alertname="PaymentsDown"}',
        "status": "firing",
        "receiver": "broadcaster",
        "groupLabels": {"alertname": "PaymentsDown"},
        "commonLabels": labels,
        "commonAnnotations": {"summary": "Payment API errors"},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {"summary": "Payment API errors"},
                "startsAt": started.isoformat().replace("+00:00", "Z"),
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": "c0ffee01",
            }
        ],
    }


def test_holding_statement_sms_and_banner_in_plan_zone(
    app: Flask, client: FlaskClient, tokens: dict[str, dict[str, str]], providers: Any
) -> None:
    _, twilio = providers
    phones = {loc: f"+3161234500{n}" for n, loc in enumerate(LOCALES)}
    subscribe(
        client,
        tokens["admin"],
        [
            {"external_id": loc, "phone": phone, "locale": loc, "audiences": ["consumers"]}
            for loc, phone in phones.items()
        ],
    )
    started = datetime.now(UTC).replace(second=40, microsecond=0) - timedelta(minutes=20)
    answer = client.post("/hooks/alertmanager", json=alert(started), headers=tokens["monitor"])
    assert answer.get_json()["state"] == "published", answer.get_json()
    drain(app)
    texts = {form["To"]: form["Body"] for form in twilio.accepted()}
    for locale, phone in phones.items():
        # "since 09:14": the start in the plan's zone; SMS has no room to name the zone.
        assert hhmm(started.timestamp(), locale) in texts[phone], (locale, texts[phone])
        assert_read_by_people(texts[phone], locale, zone_times=0)
        banner = client.get(f"/banner.json?lang={locale}").get_json()["banners"][0]
        assert hhmm(started.timestamp(), locale) in banner["text"], banner
        assert_read_by_people(banner["text"], locale, zone_times=0)
        assert banner["updated_at"].endswith("Z")  # machines: ISO 8601 UTC


def test_brief_replies_name_their_zone_once_and_its_json_stays_iso(
    client: FlaskClient, tokens: dict[str, dict[str, str]]
) -> None:
    when = promise()
    created = publish(client, tokens, OUTAGE, channels=["banner"], next_update_at=when.isoformat())
    brief = client.get(
        f"/api/v1/incidents/{created['incident_id']}/brief", headers=tokens["helpdesk"]
    ).get_json()
    assert brief["next_update_at"] == when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", brief["updated_at"])
    for reply in brief["replies"]:
        locale, text = reply["language"], reply["text"]
        assert locale == reply["locale"]
        assert_read_by_people(text, locale)
        assert hhmm(when.timestamp(), locale) in text


# --- pages ---------------------------------------------------------------------------------


def test_status_page_shows_local_times_and_machines_keep_iso_utc(
    client: FlaskClient, tokens: dict[str, dict[str, str]]
) -> None:
    when = promise()
    created = publish(client, tokens, OUTAGE, channels=["banner"], next_update_at=when.isoformat())
    published = client.get(
        f"/api/v1/announcements/{created['id']}", headers=tokens["admin"]
    ).get_json()["published_at"]
    for locale in LOCALES:
        html = client.get(f"/status?lang={locale}").get_data(as_text=True)
        shown = dict(re.findall(r'<time datetime="([^"]+)">([^<]*)</time>', html))
        assert shown[clock.iso(published)] == hhmm(published, locale)
        assert shown[when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")].endswith(
            hhmm(when.timestamp(), locale)
        )
        # What people read: attributes (datetime="…Z") and any style block are for machines.
        words = re.sub(r"<[^>]*>", " ", re.sub(r"<style.*?</style>", "", html, flags=re.S))
        assert_read_by_people(words, locale)
        data = client.get(f"/status.json?lang={locale}").get_json()
        assert data["open"][0]["updated_at"] == clock.iso(published)
    feed = feedparser.parse(client.get("/status.atom").data)
    assert feed.entries[0].updated.endswith(("Z", "+00:00")), feed.entries[0].updated


def test_admin_pages_show_plan_zone_times_in_the_browsers_language(
    app: Flask,
    client: FlaskClient,
    tokens: dict[str, dict[str, str]],
    people: dict[str, Any],
    signed_in: Callable[..., str],
) -> None:
    when = promise()
    created = publish(client, tokens, OUTAGE, channels=["banner"], next_update_at=when.isoformat())
    published = client.get(
        f"/api/v1/announcements/{created['id']}", headers=tokens["admin"]
    ).get_json()["published_at"]
    started = datetime.now(UTC) - timedelta(minutes=5)
    hooked = client.post("/hooks/alertmanager", json=alert(started), headers=tokens["monitor"])
    assert hooked.status_code == 200, hooked.get_json()
    signed_in(client, people["admin"].email)
    pages = [
        "/admin/",
        "/admin/incidents",
        f"/admin/incidents/{created['incident_id']}",
        "/admin/audit",
        "/admin/monitoring",
        "/admin/users",
    ]
    # No Accept-Language: the plan's default locale (en); otherwise the browser's best match.
    for header, locale in ((None, "en"), ("nl-NL,nl;q=0.9,en;q=0.5", "nl"), ("da", "da")):
        headers = {"Accept-Language": header} if header else {}
        for path in pages:
            html = client.get(path, headers=headers).get_data(as_text=True)
            times = re.findall(r'<time datetime="(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)">([^<]*)<', html)
            assert times, path
            for iso, text in times:
                ts = datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
                assert text.endswith(hhmm(ts, locale)), (path, iso, text)
            # The agent brief quotes replies to paste: each names its zone itself.
            page = re.sub(r'<pre class="message"[^>]*>.*?</pre>', "", html, flags=re.S)
            words = re.sub(r"<[^>]*>", " ", page)
            assert_read_by_people(words, locale)
            assert 'id="zone"' in html, path
        incident = client.get(f"/admin/incidents/{created['incident_id']}", headers=headers)
        assert hhmm(published, locale) in incident.get_data(as_text=True)
    assert time.time() - published < 3600  # published today: shown as a time only, above
