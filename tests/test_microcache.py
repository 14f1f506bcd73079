"""The per-process microcache in front of the public pages (broadcaster/microcache.py).

"Served from the cache" is shown the honest way: the banner data is changed in Redis
behind the app's back (as another web process or a worker would), and a cached answer
still shows the old data while a request that reaches the view shows the new.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from flask import Flask, Response

from broadcaster.infra import microcache
from tests.conftest import PEOPLE
from tests.helpers import publish
from tests.test_public import BASE

URL = "/banner.json?audience=consumers&lang=en"
REDIS_KEY = "bc:banner:consumers:en"  # what URL reads


def titles(response: Any) -> list[str]:
    return [b["title"] for b in response.get_json()["banners"]]


def behind_the_back(r: Any, key: str = REDIS_KEY, title: str = "Changed in Redis") -> None:
    """Another process rewrote the stored banner; this process was not told."""
    value = json.loads(r.get(key))
    value[0]["title"] = title
    r.set(key, json.dumps(value))


def cache_of(app: Flask) -> microcache.Microcache:
    return app.extensions["microcache"]


@pytest.fixture
def cached(make_app: Any, tokens: dict[str, dict[str, str]]) -> Flask:
    """An app with a long microcache TTL and one banner published through it."""
    app = make_app(BANNER_PROCESS_CACHE=30)
    publish(app.test_client(), tokens, BASE)
    return app


def test_a_repeat_within_the_ttl_never_reaches_the_view(cached, r):
    client = cached.test_client()
    first = client.get(URL)
    assert titles(first) == ["Power outage"]
    behind_the_back(r)
    again = client.get(URL)
    assert again.data == first.data and again.headers["ETag"] == first.headers["ETag"]
    for name in ("Cache-Control", "Access-Control-Allow-Origin", "Vary", "Content-Type"):
        assert again.headers[name] == first.headers[name]
    microcache.clear(cached)
    assert titles(client.get(URL)) == ["Changed in Redis"]


def test_the_entry_expires_after_the_ttl(make_app, tokens, r):
    app = make_app(BANNER_PROCESS_CACHE=0.5)
    publish(app.test_client(), tokens, BASE)
    client = app.test_client()
    assert titles(client.get(URL)) == ["Power outage"]
    behind_the_back(r)
    assert titles(client.get(URL)) == ["Power outage"]
    time.sleep(0.6)
    assert titles(client.get(URL)) == ["Changed in Redis"]


def test_if_none_match_is_answered_from_the_cache(cached, r):
    client = cached.test_client()
    first = client.get(URL)
    etag = first.headers["ETag"]
    bare = etag.strip('"')
    behind_the_back(r)  # the view would now answer 200 with another ETag
    for header in (etag, f"W/{etag}", f'"nope", {etag}', "*"):
        answer = client.get(URL, headers={"If-None-Match": header})
        assert answer.status_code == 304, header
        assert answer.data == b""
        assert answer.headers["ETag"] == etag
        assert answer.headers["Cache-Control"] == "public, max-age=15"
        assert answer.headers["Vary"] == "Accept-Language"
        assert answer.headers["Access-Control-Allow-Origin"] == "*"
        assert "Content-Type" not in answer.headers and "Content-Length" not in answer.headers
    other = client.get(URL, headers={"If-None-Match": f'"{bare[:-1]}x"'})
    assert other.status_code == 200 and other.data == first.data  # still the cached body


def test_clients_that_only_revalidate_still_fill_the_cache(cached, r):
    """banner.js polls with If-None-Match: a miss must still leave an entry behind."""
    etag = cached.test_client().get(URL).headers["ETag"]
    microcache.clear(cached)
    client = cached.test_client()
    assert client.get(URL, headers={"If-None-Match": etag}).status_code == 304  # a miss
    behind_the_back(r)
    assert client.get(URL, headers={"If-None-Match": etag}).status_code == 304  # a hit
    assert titles(client.get(URL)) == ["Power outage"]


def test_cached_answers_have_the_headers_flask_gives(make_app, cached):
    """A hit (200, 304, HEAD) carries exactly the headers the view's own answer carries."""
    plain = make_app()  # BANNER_PROCESS_CACHE=0: every request reaches the view
    hot = cached.test_client()
    hot.get(URL)  # fill the entry
    etag = hot.get(URL).headers["ETag"]

    def headers(response: Response) -> list[tuple[str, str]]:
        return sorted((k, v) for k, v in response.headers.items() if k != "Date")

    for method, extra in (("GET", {}), ("HEAD", {}), ("GET", {"If-None-Match": etag})):
        want = plain.test_client().open(URL, method=method, headers=extra)
        got = hot.open(URL, method=method, headers=extra)
        assert (got.status, headers(got), got.data) == (want.status, headers(want), want.data)
        assert ("Date" in got.headers) == ("Date" in want.headers)


def test_head_gets_headers_only_and_fills_the_cache_for_get(cached, r):
    client = cached.test_client()
    head = client.head(URL)  # a miss: the app is asked for the GET
    assert head.status_code == 200 and head.data == b""
    behind_the_back(r)
    get = client.get(URL)
    assert titles(get) == ["Power outage"], "HEAD's miss stored the GET answer"
    assert head.headers["Content-Length"] == str(len(get.data))
    assert head.headers["ETag"] == get.headers["ETag"]


def test_query_string_and_accept_language_are_part_of_the_key(cached):
    client = cached.test_client()
    answers = {
        "lang=en": client.get(URL),
        "lang=nl": client.get("/banner.json?audience=consumers&lang=nl"),
        "Accept-Language nl": client.get(
            "/banner.json?audience=consumers", headers={"Accept-Language": "nl"}
        ),
        "Accept-Language sv": client.get(
            "/banner.json?audience=consumers", headers={"Accept-Language": "sv"}
        ),
        "business": client.get("/banner.json?audience=business&lang=en"),
    }
    assert len(cache_of(cached)) == 5
    # Asked again, in another order: each key keeps its own answer.
    assert client.get("/banner.json?audience=business&lang=en").get_json()["banners"] == []
    assert client.get(
        "/banner.json?audience=consumers", headers={"Accept-Language": "nl"}
    ).get_json()["locale"] == ("nl")
    assert titles(answers["lang=nl"]) == ["Stroomstoring"]
    assert titles(answers["Accept-Language nl"]) == ["Stroomstoring"]
    assert answers["Accept-Language sv"].get_json()["locale"] == "sv"
    assert titles(answers["lang=en"]) == ["Power outage"]
    assert len(cache_of(cached)) == 5


def test_errors_are_never_cached(cached):
    client = cached.test_client()
    for _ in range(2):
        missing = client.get("/banner.json?audience=martians")
        assert missing.status_code == 404
        assert "martians" in missing.get_json()["message"]
        head = client.head("/banner.json?audience=martians")
        assert head.status_code == 404 and head.data == b""
    assert len(cache_of(cached)) == 0
    assert titles(client.get(URL)) == ["Power outage"]
    assert client.get("/banner.json?audience=martians").status_code == 404
    assert len(cache_of(cached)) == 1


def test_answers_that_set_a_cookie_or_are_not_public_are_not_kept(make_app, tokens, r):
    def spoil(response: Response) -> Response:  # a later change to a public view, say
        from flask import request

        if request.args.get("cookie"):
            response.set_cookie("seen", "1")
        if request.args.get("private"):
            response.headers["Cache-Control"] = "private, max-age=15"
        if request.args.get("vary"):
            response.vary.add("Origin")
        return response

    cached = make_app(BANNER_PROCESS_CACHE=30)
    cached.after_request(spoil)
    publish(cached.test_client(), tokens, BASE)
    client = cached.test_client()
    for query in ("cookie=1", "private=1", "vary=1"):
        url = f"{URL}&{query}"
        first = client.get(url)
        assert first.status_code == 200
        etag = first.headers["ETag"]
        # Still conditional, as the view makes it, though not kept.
        assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
    assert "seen=1" in client.get(f"{URL}&cookie=1").headers["Set-Cookie"]
    behind_the_back(r)
    for query in ("cookie=1", "private=1", "vary=1"):
        assert titles(client.get(f"{URL}&{query}")) == ["Changed in Redis"], query
    assert len(cache_of(cached)) == 0


def test_a_signed_in_persons_cookie_never_reaches_anyone_else(cached, people, signed_in):
    """Flask refreshes a permanent session's cookie on every request: never kept."""
    admin = cached.test_client()
    signed_in(admin, PEOPLE["admin"][0])
    for path in ("/status", URL):
        mine = admin.get(path)
        assert mine.status_code == 200
        for _ in range(2):
            anonymous = cached.test_client().get(path)
            assert anonymous.status_code == 200 and anonymous.data == mine.data
            assert "Set-Cookie" not in anonymous.headers, path


def test_admin_api_and_token_requests_are_never_cached(cached, tokens, people, signed_in, r):
    client = cached.test_client()
    signed_in(client, PEOPLE["admin"][0])
    for _ in range(2):
        assert client.get("/api/v1/incidents", headers=tokens["admin"]).status_code == 200
        assert client.get("/admin/").status_code == 200
        assert client.get("/healthz").status_code == 200
    assert len(cache_of(cached)) == 0
    # The API shows a change made behind the app's back at once.
    [incident] = client.get("/api/v1/incidents", headers=tokens["admin"]).get_json()["items"]
    key = f"bc:inc:{incident['id']}"
    stored = json.loads(r.get(key))
    stored["title"] = "Retitled behind the back"
    r.set(key, json.dumps(stored))
    listed = client.get("/api/v1/incidents", headers=tokens["admin"]).get_json()["items"]
    assert listed[0]["title"] == "Retitled behind the back"
    # A public page asked with a token goes the long way too, and is not kept.
    anonymous = cached.test_client()
    anonymous.get(URL)
    behind_the_back(r)
    assert titles(anonymous.get(URL, headers=tokens["helpdesk"])) == ["Changed in Redis"]
    assert titles(anonymous.get(URL)) == ["Power outage"]


def test_a_publish_through_this_process_shows_at_once(cached, tokens, r):
    client = cached.test_client()
    assert titles(client.get(URL)) == ["Power outage"]
    status_before = client.get("/status").get_data(as_text=True)
    assert "Invoices late" not in status_before
    publish(
        cached.test_client(),
        tokens,
        BASE,
        title="Gas leak",
        severity="critical",
        bypass_reason="test: alone",
    )
    assert titles(client.get(URL)) == ["Gas leak"]  # one banner: "+1 more"
    # Off the banner (no banner refresh), but the status pages changed: cleared too.
    publish(cached.test_client(), tokens, BASE, title="Invoices late", channels=["email"])
    assert "Invoices late" in client.get("/status").get_data(as_text=True)
    assert "Invoices late" in json.dumps(client.get("/status.json").get_json())


def test_the_status_pages_are_cached_per_language(cached, r):
    client = cached.test_client()
    page = client.get("/status?lang=nl")
    assert page.status_code == 200 and "Stroomstoring" in page.get_data(as_text=True)
    client.get("/status.json")
    client.get("/status.atom")
    incident_key = next(k for k in r.scan_iter("bc:inc:*") if k.count(b":") == 2)
    stored = json.loads(r.get(incident_key))
    stored["severity"] = "critical"
    r.set(incident_key, json.dumps(stored))
    assert client.get("/status?lang=nl").data == page.data
    assert len(cache_of(cached)) == 3


def test_invented_query_strings_share_one_entry(cached, r):
    client = cached.test_client()
    first = client.get(f"{URL}&n=0")
    for n in range(1, microcache.MAX_ENTRIES + 20):  # a client inventing query strings
        assert client.get(f"{URL}&n={n}").status_code == 200
    for query in ("cb=1", "cb=2", "lang=xx&cb=3", "page=abc", "audience=consumers&audience=x"):
        assert client.get(f"/banner.json?audience=consumers&{query}").status_code == 200
    # Unknown spellings of Accept-Language resolve to the language they give.
    for header in ("en", "en-GB", "xx-1", "xx-2,en;q=0.5"):
        client.get("/banner.json?audience=consumers", headers={"Accept-Language": header})
    # lang=en, no lang with a header that resolves to English, and every language the plan
    # does not speak (no banner at all): three entries in all.
    assert len(cache_of(cached)) == 3
    behind_the_back(r)
    assert client.get(f"{URL}&cb=999").data == first.data


def test_entries_are_bounded_oldest_out(cached, r):
    client = cached.test_client()
    status_url = "/status.json?lang=en"
    client.get(f"{status_url}&page=1")
    for n in range(2, microcache.MAX_ENTRIES + 21):  # a client paging past the history
        assert client.get(f"{status_url}&page={n}").status_code == 200
    assert len(cache_of(cached)) == microcache.MAX_ENTRIES
    key = "bc:status:doc:en"  # what every page shows on top: the open incidents
    document = json.loads(r.get(key))
    document["open"][0]["title"] = "Changed in Redis"
    r.set(key, json.dumps(document))

    def open_titles(response: Any) -> list[str]:
        return [i["title"] for i in response.get_json()["open"]]

    assert open_titles(client.get(f"{status_url}&page=1")) == ["Changed in Redis"], "oldest went"
    later = client.get(f"{status_url}&page={microcache.MAX_ENTRIES + 10}")
    assert open_titles(later) == ["Power outage"]


def test_a_get_with_a_body_still_meets_the_size_limit(cached):
    client = cached.test_client()
    assert client.get(URL).status_code == 200  # cached now
    big = client.get(URL, data=b"x" * (2 * 1024 * 1024 + 1))
    assert big.status_code == 413


def test_ttl_zero_means_every_request_reaches_the_view(make_app, tokens, r):
    app = make_app(BANNER_PROCESS_CACHE=0)
    publish(app.test_client(), tokens, BASE)
    client = app.test_client()
    etag = client.get(URL).headers["ETag"]
    behind_the_back(r)
    changed = client.get(URL, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and titles(changed) == ["Changed in Redis"]
    behind_the_back(r, title="Changed again")
    assert titles(client.get(URL)) == ["Changed again"]
    assert len(cache_of(app)) == 0


def test_one_thread_refetches_an_expired_entry_while_the_others_answer_from_it():
    import threading

    app = Flask("slow")
    renders: list[int] = []
    gate = threading.Event()

    @app.get("/page")
    def page() -> Response:
        renders.append(1)
        if len(renders) == 2:
            gate.wait(5)  # the second render is slow: a crowd arrives meanwhile
        response = Response(f"v{len(renders)}")
        response.headers["Cache-Control"] = "public, max-age=1"
        return response

    app.wsgi_app = microcache.Microcache(  # type: ignore[method-assign]
        app.wsgi_app, {"BANNER_PROCESS_CACHE": 0.05}, paths={"/page"}
    )
    client = app.test_client()
    assert client.get("/page").data == b"v1"
    time.sleep(0.1)  # expired
    fetched: list[bytes] = []
    refetch = threading.Thread(target=lambda: fetched.append(app.test_client().get("/page").data))
    refetch.start()
    deadline = time.monotonic() + 5
    while len(renders) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [client.get("/page").data for _ in range(3)] == [b"v1"] * 3, "no render of its own"
    gate.set()
    refetch.join(5)
    assert fetched == [b"v2"] and len(renders) == 2
    assert client.get("/page").data == b"v2"
