"""The API's manners: filters honoured or refused, Link paging, idempotency answers, absolute
URLs (issue 20 point 4)."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broadcaster.domain import idempotency as idem
from broadcaster.domain.ledger import Ledger
from tests.test_api import ANNOUNCEMENT, assert_error_shape, post

LISTS = [
    "/api/v1/announcements/pending",
    "/api/v1/incidents",
    "/api/v1/hooks/events",
    "/api/v1/subscribers",
    "/api/v1/audit",
    "/api/v1/announcements/{id}/deliveries",
]


def next_url(response) -> str | None:
    link = response.headers.get("Link")
    if not link:
        return None
    found = re.fullmatch(r'<([^>]+)>; rel="next"', link)
    assert found, link
    return found.group(1)


@pytest.fixture
def announcement_id(client, tokens) -> str:
    return post(client, tokens["approver"]).get_json()["id"]


@pytest.mark.parametrize("path", LISTS)
def test_an_unknown_filter_is_a_400_naming_it(client, tokens, announcement_id, path):
    url = path.format(id=announcement_id) + "?page=1&colour=red"
    body = assert_error_shape(client.get(url, headers=tokens["admin"]), 400)
    assert body["message"].startswith("unknown query parameter 'colour': this endpoint takes ")


def test_deliveries_filter_by_channel_and_state(client, tokens, r, announcement_id):
    ledger = Ledger(r, announcement_id)
    ledger.enqueue("email", [f"sub_e{i:02}" for i in range(7)])
    ledger.enqueue("sms", [f"sub_s{i:02}" for i in range(5)])
    ledger.move("sms", ["sub_s01", "sub_s03"], "failed", ["queued"])
    ledger.move("email", ["sub_e04"], "failed", ["queued"])
    url = f"/api/v1/announcements/{announcement_id}/deliveries"

    def get(query: str) -> dict:
        response = client.get(f"{url}?{query}", headers=tokens["admin"])
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    failed = get("state=failed")
    assert [(d["channel"], d["subscriber_id"]) for d in failed["items"]] == [
        ("email", "sub_e04"),
        ("sms", "sub_s01"),
        ("sms", "sub_s03"),
    ]
    assert failed["total"] == 3 and failed["next_cursor"] is None
    sms = get("channel=sms")
    assert {d["channel"] for d in sms["items"]} == {"sms"} and sms["total"] == 5
    both = get("channel=sms&state=queued")
    assert [d["subscriber_id"] for d in both["items"]] == ["sub_s00", "sub_s02", "sub_s04"]
    assert both["total"] == 3
    assert get("channel=email&state=sent")["items"] == []
    # A bad value names what is allowed (422: the parameter is known, its value is not).
    bad = client.get(f"{url}?state=lost", headers=tokens["admin"])
    assert bad.status_code == 422 and "state" in bad.get_json()["errors"]


@pytest.mark.parametrize(
    "query", ["per_page=3", "per_page=4&channel=email", "per_page=2&state=queued"]
)
def test_following_link_headers_reads_every_record_once(client, tokens, r, announcement_id, query):
    ledger = Ledger(r, announcement_id)
    ledger.enqueue("email", [f"sub_e{i:02}" for i in range(10)])
    ledger.enqueue("sms", [f"sub_s{i:02}" for i in range(4)])
    ledger.move("sms", ["sub_s02"], "failed", ["queued"])
    url: str | None = f"/api/v1/announcements/{announcement_id}/deliveries?{query}"
    seen: list[tuple[str, str]] = []
    pages = 0
    while url:
        response = client.get(url, headers=tokens["admin"])
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        seen += [(d["channel"], d["subscriber_id"]) for d in body["items"]]
        url = next_url(response)
        # The Link and the body's cursor say the same; the link is absolute.
        assert (url is None) == (body["next_cursor"] is None)
        assert url is None or url.startswith("http://localhost/api/v1/")
        pages += 1
        assert pages < 20
    expected = [("email", f"sub_e{i:02}") for i in range(10)] + [
        ("sms", f"sub_s{i:02}") for i in range(4)
    ]
    if "channel=email" in query:
        expected = [e for e in expected if e[0] == "email"]
    if "state=queued" in query:
        expected = [e for e in expected if e != ("sms", "sub_s02")]
    assert seen == expected


def test_offset_lists_link_to_the_next_page(client, tokens):
    client.post(
        "/api/v1/subscribers",
        headers=tokens["admin"],
        json=[{"email": f"p{i}@example.com", "audiences": ["consumers"]} for i in range(5)],
    )
    first = client.get("/api/v1/subscribers?per_page=2", headers=tokens["admin"])
    assert next_url(first) == "http://localhost/api/v1/subscribers?per_page=2&page=2"
    last = client.get("/api/v1/subscribers?per_page=2&page=3", headers=tokens["admin"])
    assert len(last.get_json()["items"]) == 1 and next_url(last) is None


@pytest.mark.parametrize("cursor", ["%%%", "AAAA", "x" * 900, "_-_-"])
def test_a_cursor_we_did_not_give_is_refused(client, tokens, announcement_id, cursor):
    url = f"/api/v1/announcements/{announcement_id}/deliveries?cursor={cursor}"
    response = client.get(url, headers=tokens["admin"])
    if response.status_code == 200:  # it decoded to some position: still a valid page
        assert isinstance(response.get_json()["items"], list)
    else:
        assert response.status_code == 422
        assert "cursor" in response.get_json()["errors"]


def test_idempotency_key_still_in_progress_is_409_with_retry_after(client, tokens, r):
    key = "ticket-7"
    guard = (idem.key_for("arne", key), idem.fingerprint(ANNOUNCEMENT))
    assert idem.begin(r, *guard) is None  # the first request, not finished yet
    response = post(client, tokens["approver"], **{"Idempotency-Key": key})
    assert "still in progress" in assert_error_shape(response, 409)["message"]
    assert response.headers["Retry-After"] == "1"
    assert not r.keys("bc:ann:*"), "nothing was created"


def test_accepted_gives_absolute_urls_and_a_location(client, tokens):
    response = post(client, tokens["approver"])
    assert response.status_code == 202
    body = response.get_json()
    assert response.headers["Location"] == body["links"]["self"]
    assert body["links"]["self"] == f"http://localhost/api/v1/announcements/{body['id']}"
    for link in body["links"].values():
        assert link.startswith("http://localhost/api/v1/")
        assert client.get(link, headers=tokens["admin"]).status_code == 200


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    query=st.dictionaries(
        st.sampled_from(["page", "per_page", "channel", "state", "cursor", "staff", "x", ""]),
        st.text(max_size=30),
        max_size=4,
    )
)
def test_any_query_gets_a_page_or_a_clear_4xx(client, tokens, announcement_id, query):
    response = client.get(
        f"/api/v1/announcements/{announcement_id}/deliveries",
        query_string=query,
        headers=tokens["admin"],
    )
    assert response.status_code in (200, 400, 422), response.get_data(as_text=True)
    body = response.get_json()
    assert isinstance(body, dict)
    if response.status_code != 200:
        assert body["message"]
