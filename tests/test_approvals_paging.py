"""The Approvals page and API list every pending item, newest first, paged, with the count.

The attack: 300 drafts pushed a real submission off the Approvals page, which showed only
the 100 oldest. Drafts here go through the API with a helpdesk token, as the attack's did.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import announce

Headers = dict[str, str]
DRAFT = {
    "title": "Draft",
    "body": "Something may be wrong.",
    "severity": "minor",
    "audiences": ["consumers"],
    "channels": ["banner"],
}
REAL = {
    "title": "Gas leak in Utrecht",
    "body": "Leave the building at Oudegracht 12 and call us.",
    "severity": "critical",
    "audiences": ["consumers"],
    "channels": ["banner"],
}
SECTION = re.compile(r'<section class="card" id="(ann_[^"]+)"')
OLDER = re.compile(r'<a href="(/admin/approvals\?page=\d+)" rel="next">Older</a>')


def drafts(client: FlaskClient, headers: Headers, n: int) -> list[str]:
    """``n`` pending drafts through the API, oldest first."""
    return [announce(client, headers, DRAFT, title=f"Draft {i:03d}")["id"] for i in range(n)]


def api_pages(client: FlaskClient, headers: Headers, per_page: int) -> tuple[list[dict], set]:
    """Every pending item, page by page through the API; and the totals each page named."""
    items: list[dict[str, Any]] = []
    totals = set()
    page = 1
    while True:
        answer = client.get(
            f"/api/v1/announcements/pending?page={page}&per_page={per_page}", headers=headers
        )
        assert answer.status_code == 200, answer.get_json()
        body = answer.get_json()
        totals.add(body["total"])
        if not body["items"]:
            return items, totals
        assert len(body["items"]) <= per_page
        items += body["items"]
        page += 1


def admin_pages(client: FlaskClient) -> list[list[str]]:
    """The item ids of every Approvals page, following its "Older" links from the first."""
    pages, path = [], "/admin/approvals"
    while path:
        html = client.get(path).get_data(as_text=True)
        pages.append(SECTION.findall(html))
        older = OLDER.search(html)
        path = older.group(1) if older else None
    return pages


@pytest.fixture
def flooded(
    client: FlaskClient, tokens: dict[str, Headers], people: dict[str, Any]
) -> dict[str, Any]:
    """300 drafts, then one real submission by someone else.

    ``people`` first: an approver account newer than the submission may not approve it.
    """
    ids = drafts(client, tokens["helpdesk"], 300)
    real = announce(client, tokens["approver"], REAL)
    assert real["state"] == "pending_approval"
    return {"drafts": ids, "real": real["id"]}


def test_a_real_submission_after_300_drafts_leads_the_api_and_paging_reaches_the_oldest(
    client: FlaskClient, tokens: dict[str, Headers], flooded: dict[str, Any]
) -> None:
    first = client.get("/api/v1/announcements/pending?per_page=20", headers=tokens["helpdesk"])
    body = first.get_json()
    assert body["total"] == 301 and body["page"] == 1 and body["per_page"] == 20
    assert body["items"][0]["id"] == flooded["real"]
    assert body["items"][0]["links"]["self"] == (
        f"http://localhost/api/v1/announcements/{flooded['real']}"
    )

    items, totals = api_pages(client, tokens["helpdesk"], per_page=20)
    assert totals == {301}
    assert [i["id"] for i in items] == [flooded["real"], *reversed(flooded["drafts"])]
    created = [i["created_at"] for i in items]
    assert created == sorted(created, reverse=True), "newest first"
    assert {i["state"] for i in items} == {"pending_approval"}


def test_a_real_submission_after_300_drafts_leads_the_approvals_page(
    app: Flask,
    tokens: dict[str, Headers],
    flooded: dict[str, Any],
    people: dict[str, Any],
    signed_in: Callable[..., str],
) -> None:
    bo = app.test_client()
    csrf = signed_in(bo, people["approver2"].email)
    page = bo.get("/admin/approvals").get_data(as_text=True)
    assert "301 waiting, newest first · showing 1–20." in page
    assert SECTION.findall(page)[0] == flooded["real"]
    assert f'action="/admin/approvals/{flooded["real"]}/approve"' in page

    pages = admin_pages(bo)
    assert len(pages) == 16 and [len(p) for p in pages] == [20] * 15 + [1]
    assert [i for p in pages for i in p] == [flooded["real"], *reversed(flooded["drafts"])]
    last = bo.get("/admin/approvals?page=16").get_data(as_text=True)
    assert "showing 301–301" in last and 'rel="prev">Newer</a>' in last

    home = bo.get("/admin/").get_data(as_text=True)
    assert "Waiting for approval (301)" in home
    assert "all 301 on the Approvals page" in home
    assert f'href="/admin/approvals#{flooded["real"]}"' in home

    approved = bo.post(f"/admin/approvals/{flooded['real']}/approve", data={"csrf_token": csrf})
    assert approved.status_code == 303
    assert "300 waiting" in bo.get("/admin/approvals").get_data(as_text=True)


def test_a_refused_reject_shows_the_page_that_holds_the_item(
    app: Flask,
    client: FlaskClient,
    tokens: dict[str, Headers],
    people: dict[str, Any],
    signed_in: Callable[..., str],
) -> None:
    ids = drafts(client, tokens["helpdesk"], 45)
    arne = app.test_client()
    csrf = signed_in(arne, people["approver"].email)
    oldest = ids[0]  # on page 3 of 20 per page
    answer = arne.post(
        f"/admin/approvals/{oldest}/reject", data={"csrf_token": csrf, "reason": "  "}
    )
    assert answer.status_code == 422
    html = answer.get_data(as_text=True)
    assert oldest in SECTION.findall(html) and "Say why" in html
    assert "showing 41–45" in html


@pytest.mark.parametrize("page", ["0", "-3", "x", "99999999999999999999"])
def test_odd_page_numbers_show_a_page_not_an_error(
    app: Flask,
    client: FlaskClient,
    tokens: dict[str, Headers],
    people: dict[str, Any],
    signed_in: Callable[..., str],
    page: str,
) -> None:
    drafts(client, tokens["helpdesk"], 2)
    arne = app.test_client()
    signed_in(arne, people["approver"].email)
    answer = arne.get(f"/admin/approvals?page={page}")
    assert answer.status_code == 200
    html = answer.get_data(as_text=True)
    assert "2 waiting" in html
    assert len(SECTION.findall(html)) in (0, 2)  # page 1, or far beyond the end
    beyond = arne.get("/admin/approvals?page=7").get_data(as_text=True)
    assert "Nothing more on this page." in beyond and "Newer" in beyond


def test_nothing_waiting_says_so(
    app: Flask, people: dict[str, Any], signed_in: Callable[..., str]
) -> None:
    arne = app.test_client()
    signed_in(arne, people["approver"].email)
    html = arne.get("/admin/approvals").get_data(as_text=True)
    assert "Nothing is waiting." in html and "waiting, newest first" not in html
    assert "Older" not in html and "Newer" not in html


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(per_page=st.integers(1, 50))
def test_any_page_size_lists_each_pending_item_once_newest_first(
    client: FlaskClient, tokens: dict[str, Headers], per_page: int
) -> None:
    head = client.get("/api/v1/announcements/pending", headers=tokens["helpdesk"]).get_json()
    if head["total"] == 0:  # made once: the examples only read
        drafts(client, tokens["helpdesk"], 37)
    everything = client.get(
        "/api/v1/announcements/pending?per_page=1000", headers=tokens["helpdesk"]
    ).get_json()["items"]
    items, totals = api_pages(client, tokens["helpdesk"], per_page)
    assert totals == {37}
    assert [i["id"] for i in items] == [i["id"] for i in everything]
    assert len({i["id"] for i in items}) == 37
    created = [i["created_at"] for i in items]
    assert created == sorted(created, reverse=True)


def test_page_arguments_are_checked(client: FlaskClient, tokens: dict[str, Headers]) -> None:
    for query in ("per_page=0", "per_page=1001", "page=0"):
        answer = client.get(f"/api/v1/announcements/pending?{query}", headers=tokens["helpdesk"])
        assert answer.status_code == 422 and answer.get_json()["code"] == 422
    assert client.get("/api/v1/announcements/pending").status_code == 401
    monitor = client.get("/api/v1/announcements/pending", headers=tokens["monitor"])
    assert monitor.status_code == 403
