"""Status pages precomputed on publish: reads bounded by the page, not by the history.

``/status``, ``/status.json`` and ``/status.atom`` read one document per locale that every
publish updates (broadcaster/rendering/status.py); older history is paged.
"""

from __future__ import annotations

import json
import time
from typing import Any

import feedparser
import pytest
import redis
from flask import Flask

from broadcaster.domain.announcement import Announcement
from broadcaster.domain.announcements import ACTIVE_KEY, AnnouncementStore
from broadcaster.rendering import status
from tests.helpers import publish
from tests.test_public import BASE


def seed_history(
    r: redis.Redis, count: int, start: int = 0, days_ago: float = 30, indexed: bool = True
) -> None:
    """``count`` resolved incidents, the first resolved ``days_ago`` days ago, then hourly
    earlier; stored as the announcement service stores them, in one pipeline (and, unless
    ``indexed`` is false, filed by recency as a publish files them)."""
    store = AnnouncementStore(r)
    now = time.time()
    pipe = r.pipeline(transaction=False)
    for n in range(start, start + count):
        opened = now - days_ago * 86400 - n * 3600 - 1800
        incident_id = f"inc_past{n:05d}"
        incident = {
            "id": incident_id,
            "title": f"Past outage {n}",
            "opened_at": opened,
            "resolved_at": opened + 1800,
            "severity": "minor",
            "status": "resolved",
            "updated_at": opened + 1800,
        }
        for k, (state, at) in enumerate((("investigating", opened), ("resolved", opened + 1800))):
            announcement = Announcement(
                id=f"ann_past{n:05d}{k}",
                incident_id=incident_id,
                title=f"Past outage {n}",
                body="It is fixed.",
                severity="minor",
                status=state,
                audiences=["consumers"],
                channels=["email"],
                author="seed",
                state="published",
                created_at=at,
                published_at=at,
            )
            store.write(pipe, announcement, incident, new=True)
        pipe.srem(ACTIVE_KEY, incident_id)  # the banner let it go long ago
        if indexed:
            status.index(pipe, incident)
    pipe.execute()


def commands(r: redis.Redis) -> int:
    return int(r.info("stats")["total_commands_processed"])


def reads_for(client: Any, r: redis.Redis, url: str) -> int:
    """Redis commands one request costs (less the INFO that measures it)."""
    before = commands(r)
    assert client.get(url).status_code == 200
    return commands(r) - before - 1


def test_a_status_request_reads_the_same_whatever_the_history(client, tokens, r):
    seed_history(r, 10)
    publish(client, tokens, BASE)  # open
    assert client.get("/status.json").status_code == 200  # builds the documents
    publish(client, tokens, BASE, title="Water outage")
    applied_small = reads_for(client, r, "/status.json")  # the read that applies the publish
    small = {url: reads_for(client, r, url) for url in ("/status.json", "/status", "/status.atom")}
    seed_history(r, 290, start=10)
    publish(client, tokens, BASE, title="Gas leak")
    applied_large = reads_for(client, r, "/status.json")
    large = {url: reads_for(client, r, url) for url in ("/status.json", "/status", "/status.atom")}
    assert applied_large == applied_small
    assert large == small
    assert max(large.values()) <= 3, large  # the stored document (+ the dirty mark), no scan
    # Older pages cost a bounded number too: one timeline read per incident on the page
    # (pipelined), a few more, whatever the length of the history.
    assert reads_for(client, r, "/status.json?page=9") <= status.PAGE_SIZE + 10


def stored_after_a_read(client: Any, r: redis.Redis, locale: str) -> dict[str, Any]:
    """The stored document once a page was read (a read applies what publishes marked)."""
    assert client.get(f"/status.json?lang={locale}").status_code == 200
    return json.loads(r.get(status.document_key(locale)))


def test_a_publish_updates_the_document_at_once(client, tokens, r):
    publish(client, tokens, BASE)
    stored = stored_after_a_read(client, r, "nl")
    assert [i["title"] for i in stored["open"]] == ["Stroomstoring"]
    created = publish(client, tokens, BASE, title="Invoices late", channels=["email"])
    stored = stored_after_a_read(client, r, "en")
    assert [i["title"] for i in stored["open"]] == ["Invoices late", "Power outage"]
    publish(client, tokens, BASE, incident_id=created["incident_id"], status="resolved")
    stored = stored_after_a_read(client, r, "en")
    assert [i["id"] for i in stored["resolved"]] == [created["incident_id"]]
    data = client.get("/status.json").get_json()
    assert [i["title"] for i in data["open"]] == ["Power outage"]
    assert [i["id"] for i in data["resolved"]] == [created["incident_id"]]


def test_a_publish_costs_the_same_with_many_open_incidents(client, tokens, r):
    """A publish renders its own incident again, not every open one (api-accept: 200 new
    incidents a second each rebuilding every open one queued behind each other)."""

    def publish_cost(title: str) -> int:
        """Redis commands of a publish and of the page read that applies it."""
        assert client.get("/status.json").status_code == 200  # nothing left to apply
        before = commands(r)
        publish(client, tokens, BASE, title=title, channels=["email"])
        assert client.get("/status.json").status_code == 200
        return commands(r) - before

    for n in range(3):
        publish(client, tokens, BASE, title=f"Open {n}", channels=["email"])
    few = publish_cost("Measured with few")
    for n in range(3, 40):
        publish(client, tokens, BASE, title=f"Open {n}", channels=["email"])
    many = publish_cost("Measured with many")
    assert many <= few + 2, (few, many)
    stored = stored_after_a_read(client, r, "en")
    assert len(stored["open"]) == 42 and stored["open"][0]["title"] == "Measured with many"


def test_a_full_list_losing_an_entry_is_rebuilt_so_the_next_in_line_shows(
    client, tokens, r, monkeypatch
):
    monkeypatch.setattr(status, "MAX_OPEN", 3)
    made = [publish(client, tokens, BASE, title=f"Open {n}", channels=["email"]) for n in range(4)]
    stored = stored_after_a_read(client, r, "en")
    assert [i["title"] for i in stored["open"]] == ["Open 3", "Open 2", "Open 1"]
    publish(client, tokens, BASE, incident_id=made[3]["incident_id"], status="resolved")
    stored = stored_after_a_read(client, r, "en")
    assert [i["title"] for i in stored["open"]] == ["Open 2", "Open 1", "Open 0"]


def test_paging_shows_older_incidents(client, tokens, r):
    seed_history(r, 45, days_ago=1)  # more than a page within the 14 days…
    seed_history(r, 10, start=1000, days_ago=200)  # …and older ones
    publish(client, tokens, BASE)
    first = client.get("/status.json").get_json()
    assert len(first["resolved"]) == status.PAGE_SIZE and first["page"] == 1
    assert first["next_page"] == 2
    assert [i["title"] for i in first["open"]] == ["Power outage"]
    seen = [i["id"] for i in first["resolved"]]
    page = 2
    while page:
        data = client.get(f"/status.json?page={page}").get_json()
        assert data["open"] == first["open"] and len(data["resolved"]) <= status.PAGE_SIZE
        seen += [i["id"] for i in data["resolved"]]
        page = data["next_page"]
    expected = [f"inc_past{n:05d}" for n in (*range(45), *range(1000, 1010))]
    assert seen == expected, "every resolved incident once, newest first"
    html = client.get("/status?lang=nl&page=2").get_data(as_text=True)
    assert "Eerdere storingen" in html and "Past outage 20" in html
    assert 'href="?lang=nl&amp;page=3"' in html and 'href="?lang=nl" rel="prev"' in html
    assert "Past outage 20" not in client.get("/status").get_data(as_text=True)
    past_end = client.get("/status.json?page=99").get_json()
    assert past_end["resolved"] == [] and past_end["next_page"] is None
    for junk in ("0", "-1", "x", "1e9", "9999999"):
        assert client.get(f"/status.json?page={junk}").status_code == 200


def test_the_first_page_lists_only_the_last_14_days(client, tokens, r):
    seed_history(r, 3, days_ago=20)
    created = publish(client, tokens, BASE)
    publish(client, tokens, BASE, incident_id=created["incident_id"], status="resolved")
    data = client.get("/status.json").get_json()
    assert [i["id"] for i in data["resolved"]] == [created["incident_id"]]
    assert data["next_page"] == 2
    older = client.get("/status.json?page=2").get_json()["resolved"]
    assert [i["id"] for i in older] == ["inc_past00000", "inc_past00001", "inc_past00002"]
    feed = feedparser.parse(client.get("/status.atom").data)
    assert [e.title for e in feed.entries] == [BASE["title"], BASE["title"]]


def test_the_document_ages_without_a_publish(client, tokens, r, monkeypatch):
    created = publish(client, tokens, BASE)
    publish(client, tokens, BASE, incident_id=created["incident_id"], status="resolved")
    assert len(client.get("/status.json").get_json()["resolved"]) == 1
    later = time.time() + 15 * 86400
    monkeypatch.setattr(status.time, "time", lambda: later)
    data = client.get("/status.json").get_json()
    assert data["resolved"] == [] and data["next_page"] == 2
    assert "No current incidents." in client.get("/status").get_data(as_text=True)


def test_invented_query_strings_hit_one_entry(make_app, tokens, r):
    app: Flask = make_app(BANNER_PROCESS_CACHE=30)
    publish(app.test_client(), tokens, BASE)
    client = app.test_client()
    for path in ("/status", "/status.json", "/status.atom"):
        first = client.get(f"{path}?cb=1")
        # Changed behind the app's back: an answer from the cache still shows the old one.
        r.set(status.document_key("en"), json.dumps({**json.loads(first_doc(r)), "open": []}))
        second = client.get(f"{path}?cb=2")
        assert second.data == first.data and second.headers["ETag"] == first.headers["ETag"]
        assert client.get(f"{path}?cb=3&lang=zz").data == first.data
        assert len(app.extensions["microcache"]) == 1
        app.extensions["microcache"].clear()
        assert client.get(f"{path}?cb=4").data != first.data
        publish(app.test_client(), tokens, BASE, title=f"Again {path}")


def first_doc(r: redis.Redis) -> bytes:
    return r.get(status.document_key("en"))


def test_history_from_before_the_recency_sets_is_filed_once(client, tokens, r):
    seed_history(r, 25, days_ago=1, indexed=False)  # stored by a version without the sets
    seed_history(r, 2, start=100, days_ago=1)
    r.zadd("bc:incs", {"inc_only_drafts": 1.0})  # an incident with nothing public
    r.set("bc:inc:inc_only_drafts", json.dumps({"id": "inc_only_drafts", "opened_at": 1.0}))
    publish(client, tokens, BASE)
    data = client.get("/status.json").get_json()
    assert len(data["resolved"]) == status.PAGE_SIZE and data["next_page"] == 2
    assert r.zcard(status.RESOLVED_KEY) == 27 and r.zcard(status.OPEN_KEY) == 1
    older = client.get("/status.json?page=2").get_json()["resolved"]
    assert len(older) == 7


@pytest.mark.parametrize(
    ("locale", "words", "english"),
    [
        ("nl", ["Particuliere klanten", "Livechat", "Klantportaal", "Telefoon", "ma-vr"], True),
        ("sv", ["Privatkunder", "Livechatt", "Kundportal", "Nödsituation", "mån-fre"], True),
        ("en", ["Private customers", "Live chat", "Customer portal", "Mon-Fri"], False),
    ],
)
def test_the_status_page_shows_the_plan_texts_in_the_readers_language(
    client, locale: str, words: list[str], english: bool
) -> None:
    html = client.get(f"/status?lang={locale}").get_data(as_text=True)
    for word in words:
        assert word in html, word
    if english:
        for word in ("Private customers", "Live chat", "Customer portal", "Mon-Fri"):
            assert word not in html, word
    doc = client.get(f"/status.json?lang={locale}").get_json()
    assert words[1] in json.dumps(doc, ensure_ascii=False)
