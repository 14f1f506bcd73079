"""The status feeds: Atom and RSS 2.0, for the whole page or one component (``?component=``)."""

from __future__ import annotations

import time
from xml.etree import ElementTree

import feedparser
import pytest

from tests.helpers import publish
from tests.test_components import OUTAGE


@pytest.fixture
def incidents(client, tokens):
    """Payments (open, two updates), the website (resolved) and an internal one."""
    payments = publish(client, tokens, OUTAGE, components={"payments": "major_outage"})
    publish(
        client,
        tokens,
        OUTAGE,
        incident_id=payments["incident_id"],
        components={},
        title="Payments: cause found",
        status="identified",
    )
    website = publish(
        client, tokens, OUTAGE, components={"website": "degraded_performance"}, title="Slow site"
    )
    publish(
        client,
        tokens,
        OUTAGE,
        incident_id=website["incident_id"],
        status="resolved",
        components={},
        title="Site fast again",
    )
    publish(
        client,
        tokens,
        {**OUTAGE, "audiences": ["staff"], "channels": ["email"]},
        components={"payments": "partial_outage"},
        title="Staff only: payments",
    )
    return payments, website


@pytest.mark.parametrize(
    ("path", "mimetype", "version"),
    [
        ("/status.atom", "application/atom+xml", "atom10"),
        ("/status.rss", "application/rss+xml", "rss20"),
    ],
)
def test_feed_per_component_holds_only_that_components_incidents(
    client, incidents, path, mimetype, version
):
    everything = client.get(f"{path}?lang=en")
    assert everything.status_code == 200 and everything.mimetype == mimetype
    feed = feedparser.parse(everything.get_data())
    assert feed.version == version and not feed.bozo
    # Newest first to the second (ISO times): published within one second, order is a tie.
    titles = {e.title for e in feed.entries}
    assert titles == {"Site fast again", "Slow site", "Payments: cause found", "Payments fail"}

    response = client.get(f"{path}?component=payments&lang=nl")
    assert response.status_code == 200
    feed = feedparser.parse(response.get_data())
    assert not feed.bozo
    assert feed.feed.title == "Acme Energy status: Betalingen"
    # The follow-up names no component but belongs to the incident that did.
    assert {e.title for e in feed.entries} == {"Payments: cause found", "Payments fail"}
    assert "Staff only" not in response.get_data(as_text=True)

    website = feedparser.parse(client.get(f"{path}?component=website").get_data())
    assert {e.title for e in website.entries} == {"Site fast again", "Slow site"}
    portal = feedparser.parse(client.get(f"{path}?component=portal").get_data())
    assert portal.entries == [] and not portal.bozo


@pytest.mark.parametrize("path", ["/status.atom", "/status.rss"])
@pytest.mark.parametrize("component", ["cards", "Payments", "<script>", "a" * 300])
def test_unknown_component_is_a_404_that_names_it(client, path, component):
    response = client.get(path, query_string={"component": component})
    assert response.status_code == 404
    message = response.get_json()["message"]
    assert message.startswith(f"unknown component {component!r}")
    assert "known: payments, portal, website" in message


def test_rss_entries_carry_ids_links_dates_and_the_withdrawal(client, tokens):
    created = publish(client, tokens, OUTAGE)
    withdrawn = client.post(
        f"/api/v1/announcements/{created['id']}/withdraw",
        json={"reason": "Sent for the wrong region."},
        headers=tokens["admin"],
    )
    assert withdrawn.status_code == 200
    response = client.get("/status.rss?component=payments&lang=en")
    feed = feedparser.parse(response.get_data())
    (entry,) = feed.entries
    assert entry.id.endswith(f"#{created['id']}")
    assert entry.link.endswith(f"#{created['incident_id']}")
    assert entry.title == "Withdrawn: Payments fail"
    assert entry.summary.startswith("Withdrawn: Sent for the wrong region.")
    assert entry.published_parsed
    assert feed.feed.link.endswith("/status")  # the page, not the feed itself
    # The same data, the same feed: its ETag holds until something changes.
    again = client.get("/status.rss?component=payments&lang=en")
    assert again.headers["ETag"] == response.headers["ETag"]


def test_microcache_keeps_each_components_feed_apart(make_app, tokens):
    app = make_app(BANNER_PROCESS_CACHE=60)
    client = app.test_client()
    publish(client, tokens, OUTAGE, components={"website": "major_outage"}, title="Site down")
    for path in ("/status.atom", "/status.rss"):
        whole = feedparser.parse(client.get(path).get_data())
        portal = feedparser.parse(client.get(f"{path}?component=portal").get_data())
        assert [e.title for e in whole.entries] == ["Site down"]
        assert portal.entries == []  # not the whole feed's cached answer
        assert client.get(f"{path}?component=nope").status_code == 404


ATOM = "{http://www.w3.org/2005/Atom}"


def test_atom_meets_rfc_4287(client, incidents):
    """Feed and entries: id, title, updated and an author (RFC 4287 4.1.1, 4.1.2)."""
    xml = client.get("/status.atom").get_data()
    root = ElementTree.fromstring(xml)
    for element in (root, *root.findall(f"{ATOM}entry")):
        for child in ("id", "title", "updated"):
            assert len(element.findall(f"{ATOM}{child}")) == 1, (element.tag, child)
        [author] = element.findall(f"{ATOM}author")
        assert author.findtext(f"{ATOM}name") == "Acme Energy"
    entries = root.findall(f"{ATOM}entry")
    assert len(entries) == 4  # the internal one is not there
    # The feed changed when its newest entry did, not when it was asked for.
    newest = max(e.findtext(f"{ATOM}updated") for e in entries)
    assert root.findtext(f"{ATOM}updated") == newest
    parsed = feedparser.parse(xml)
    assert not parsed.bozo and parsed.feed.author == "Acme Energy"
    assert all(entry.author == "Acme Energy" for entry in parsed.entries)


@pytest.mark.parametrize("path", ["/status.atom", "/status.rss", "/status.atom?component=payments"])
def test_a_feed_keeps_its_etag_until_something_changes(make_app, client, tokens, incidents, path):
    first = client.get(path)
    time.sleep(1.1)  # a feed dated by the clock would differ now
    second = client.get(path)
    assert first.headers["ETag"] == second.headers["ETag"]
    assert first.get_data() == second.get_data()
    again = client.get(path, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.get_data() == b""
    publish(client, tokens, OUTAGE, components={"payments": "partial_outage"}, title="New")
    changed = client.get(path, headers={"If-None-Match": first.headers["ETag"]})
    assert changed.status_code == 200 and changed.headers["ETag"] != first.headers["ETag"]
