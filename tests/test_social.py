"""Mastodon and Bluesky channels against the real SDKs (Mastodon.py, atproto) and fake servers."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from atproto_client.models.string_formats import validate_tid

from channels.base import (
    ChannelConfigError,
    PermanentDeliveryError,
    PublicPost,
    TransientDeliveryError,
)
from channels.bluesky import BlueskyChannel, record_key
from channels.mastodon import MastodonChannel
from tests.fakes_social import FakeBluesky, FakeMastodon, http_urls

STATUS_URL = "https://status.acme.example"
TEXT = "Strømafbrydelse i Århus ⚡ – vi arbejder på sagen.\n\n" + STATUS_URL
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens there


def post(
    n: int,
    network: str,
    reply_to: dict[str, Any] | None = None,
    text: str = TEXT,
    **fields: Any,
) -> PublicPost:
    """Announcement ``ann_<n>`` of incident ``inc_1`` for one network."""
    return PublicPost(
        f"ann_{n}", "inc_1", text, STATUS_URL, "da", f"ann_{n}:{network}", reply_to, **fields
    )


def wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def mastodon_channel(fake: FakeMastodon, **overrides: Any) -> MastodonChannel:
    config = {
        "MASTODON_BASE_URL": fake.url,
        "MASTODON_ACCESS_TOKEN": fake.TOKEN,
        "PROVIDER_TIMEOUT": 5,
        **overrides,
    }
    return MastodonChannel(config)


def bluesky_channel(fake: FakeBluesky, **overrides: Any) -> BlueskyChannel:
    config = {
        "BLUESKY_BASE_URL": fake.url,
        "BLUESKY_HANDLE": fake.HANDLE,
        "BLUESKY_APP_PASSWORD": fake.APP_PASSWORD,
        "PROVIDER_TIMEOUT": 5,
        **overrides,
    }
    return BlueskyChannel(config)


# --- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "config", "setting"),
    [
        (MastodonChannel, {"MASTODON_BASE_URL": "https://x.example"}, "MASTODON_ACCESS_TOKEN"),
        (MastodonChannel, {"MASTODON_ACCESS_TOKEN": "t"}, "BROADCASTER_MASTODON_BASE_URL"),
        (BlueskyChannel, {"BLUESKY_HANDLE": "a.bsky.social"}, "BROADCASTER_BLUESKY_APP_PASSWORD"),
        (BlueskyChannel, {"BLUESKY_APP_PASSWORD": "p"}, "BROADCASTER_BLUESKY_HANDLE"),
    ],
)
def test_half_configured_network_fails_at_start_up_naming_the_setting(cls, config, setting):
    with pytest.raises(ChannelConfigError, match=setting):
        cls({"PROVIDER_TIMEOUT": 5, **config})


@pytest.mark.parametrize(
    ("cls", "config"),
    [
        (MastodonChannel, {}),
        (MastodonChannel, {"MASTODON_BASE_URL": None, "MASTODON_ACCESS_TOKEN": ""}),
        (BlueskyChannel, {}),
        # config.py may give the base URL a default: that alone is no account.
        (BlueskyChannel, {"BLUESKY_BASE_URL": "https://bsky.social"}),
    ],
)
def test_unconfigured_network_posts_to_the_outbox(cls, config, mastodon, bluesky):
    channel = cls(config)
    assert channel.transport == "outbox"
    first = channel.publish(post(1, cls.name))
    second = channel.publish(post(2, cls.name, reply_to=first.thread))
    assert first.provider_id.startswith("outbox-") and first.thread == {"id": first.provider_id}
    assert second.provider_id != first.provider_id
    assert second.extra["message"]["text"] == TEXT
    assert mastodon.requests == [] and bluesky.requests == []


def test_network_facts():
    assert (MastodonChannel.name, MastodonChannel.limit) == ("mastodon", 500)
    assert (BlueskyChannel.name, BlueskyChannel.limit) == ("bluesky", 300)


# --- Mastodon ------------------------------------------------------------------------------


def test_mastodon_makes_no_request_at_start_up(mastodon):
    channel = mastodon_channel(mastodon)
    assert channel.transport == "mastodon"
    assert mastodon.requests == []


def test_mastodon_thread_of_three(mastodon):
    channel = mastodon_channel(mastodon)
    first = channel.publish(post(1, "mastodon"))
    second = channel.publish(post(2, "mastodon", reply_to=first.thread))
    third = channel.publish(post(3, "mastodon", reply_to=second.thread))

    statuses = mastodon.posts
    assert [s["id"] for s in statuses] == [r.provider_id for r in (first, second, third)]
    assert [s["in_reply_to_id"] for s in statuses] == [None, statuses[0]["id"], statuses[1]["id"]]
    assert first.thread == {"id": statuses[0]["id"]}
    assert first.url == statuses[0]["url"] == f"{mastodon.url}/@acme/{statuses[0]['id']}"
    assert all(s["visibility"] == "public" and s["language"] == "da" for s in statuses)
    forms = [r["form"] for r in mastodon.requests]
    assert [f["status"] for f in forms] == [TEXT] * 3
    assert [r["idempotency_key"] for r in mastodon.requests] == [
        "ann_1:mastodon",
        "ann_2:mastodon",
        "ann_3:mastodon",
    ]


def test_mastodon_same_post_twice_is_one_status(mastodon):
    channel = mastodon_channel(mastodon)
    once = channel.publish(post(1, "mastodon"))
    again = channel.publish(post(1, "mastodon"))
    assert again.provider_id == once.provider_id
    assert len(mastodon.posts) == 1
    assert mastodon.replays == ["ann_1:mastodon"]


def test_mastodon_retry_after_a_timeout_does_not_post_twice(mastodon):
    channel = mastodon_channel(mastodon, PROVIDER_TIMEOUT=0.5)
    mastodon.stall_next(1.5)
    with pytest.raises(TransientDeliveryError, match="unreachable"):
        channel.publish(post(1, "mastodon"))
    # Mastodon finished the status after we gave up; the retried job must find it.
    wait_for(lambda: len(mastodon.posts) == 1)
    result = channel.publish(post(1, "mastodon"))
    assert result.provider_id == mastodon.posts[0]["id"]
    assert len(mastodon.posts) == 1 and mastodon.replays == ["ann_1:mastodon"]


def test_mastodon_429_retry_after_comes_from_the_reset_header(mastodon):
    channel = mastodon_channel(mastodon)
    reset = datetime.now(UTC) + timedelta(seconds=120)
    mastodon.fail_next(
        429,
        headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset.isoformat()},
        body={"error": "Too many requests"},
    )
    with pytest.raises(TransientDeliveryError, match="429") as caught:
        channel.publish(post(1, "mastodon"))
    assert caught.value.retry_after == pytest.approx(120, abs=2)
    assert mastodon.posts == []


def test_mastodon_429_without_a_usable_reset_waits_a_minute(mastodon):
    channel = mastodon_channel(mastodon)
    mastodon.fail_next(429, headers={"X-RateLimit-Reset": "soon"}, body={"error": "Slow down"})
    with pytest.raises(TransientDeliveryError) as caught:
        channel.publish(post(1, "mastodon"))
    assert caught.value.retry_after == 60


@pytest.mark.parametrize("status", [500, 502, 503, 504, 507])
def test_mastodon_server_errors_are_transient(mastodon, status):
    channel = mastodon_channel(mastodon)
    mastodon.fail_next(status, headers={"Retry-After": "30"}, body={"error": "Oops"})
    with pytest.raises(TransientDeliveryError, match=f"HTTP {status}") as caught:
        channel.publish(post(1, "mastodon"))
    assert caught.value.retry_after == 30
    assert channel.publish(post(1, "mastodon")).provider_id == mastodon.posts[0]["id"]


def test_mastodon_rejected_status_is_permanent_with_mastodons_message(mastodon):
    channel = mastodon_channel(mastodon)
    with pytest.raises(PermanentDeliveryError, match="HTTP 422") as caught:
        channel.publish(post(1, "mastodon", text="x" * 501))
    assert "Text character limit of 500 exceeded" in caught.value.reason
    # URLs count 23 characters however long they are: this one fits.
    long_link = f"https://status.acme.example/{'a' * 100}"
    channel.publish(post(2, "mastodon", text="x" * 476 + " " + long_link))
    assert len(mastodon.posts) == 1


def test_mastodon_400_is_permanent_with_mastodons_message(mastodon):
    channel = mastodon_channel(mastodon)
    mastodon.fail_next(400, body={"error": "Invalid language"})
    with pytest.raises(PermanentDeliveryError, match="HTTP 400: Invalid language"):
        channel.publish(post(1, "mastodon"))


def test_mastodon_bad_token_is_transient(mastodon):
    channel = mastodon_channel(mastodon, MASTODON_ACCESS_TOKEN="revoked-token")
    with pytest.raises(TransientDeliveryError, match="401: The access token is invalid"):
        channel.publish(post(1, "mastodon"))


def test_mastodon_reply_to_a_deleted_status_starts_a_new_thread(mastodon):
    channel = mastodon_channel(mastodon)
    first = channel.publish(post(1, "mastodon"))
    mastodon.deleted.add(first.provider_id)
    second = channel.publish(post(2, "mastodon", reply_to=first.thread))
    assert mastodon.posts[1]["id"] == second.provider_id
    assert mastodon.posts[1]["in_reply_to_id"] is None
    assert [r["status"] for r in mastodon.requests] == [200, 404, 200]


def test_mastodon_outbox_thread_reference_is_not_sent(mastodon):
    channel = mastodon_channel(mastodon)
    channel.publish(post(1, "mastodon", reply_to={"id": "outbox-0123456789ab"}))
    assert "in_reply_to_id" not in mastodon.requests[0]["form"]


def test_mastodon_unreachable_is_transient():
    channel = MastodonChannel(
        {"MASTODON_BASE_URL": UNREACHABLE, "MASTODON_ACCESS_TOKEN": "t", "PROVIDER_TIMEOUT": 2}
    )
    with pytest.raises(TransientDeliveryError, match="unreachable"):
        channel.publish(post(1, "mastodon"))


# --- Bluesky -------------------------------------------------------------------------------


def test_bluesky_logs_in_on_first_post_only(bluesky):
    channel = bluesky_channel(bluesky)
    assert channel.transport == "bluesky" and bluesky.requests == []
    channel.publish(post(1, "bluesky"))
    channel.publish(post(2, "bluesky"))
    assert len(bluesky.calls("com.atproto.server.createSession")) == 1
    assert len(bluesky.posts) == 2


def test_bluesky_thread_of_three(bluesky):
    channel = bluesky_channel(bluesky)
    first = channel.publish(post(1, "bluesky"))
    second = channel.publish(post(2, "bluesky", reply_to=first.thread))
    third = channel.publish(post(3, "bluesky", reply_to=second.thread))

    records = bluesky.posts
    refs = [{"uri": r["uri"], "cid": r["cid"]} for r in records]
    assert [r.provider_id for r in (first, second, third)] == [r["uri"] for r in records]
    assert first.thread == {"root": refs[0], "parent": refs[0]}  # the first post is its own root
    assert second.thread == {"root": refs[0], "parent": refs[1]}
    assert third.thread == {"root": refs[0], "parent": refs[2]}
    assert "reply" not in records[0]["value"]

    def reply(n: int) -> dict[str, Any]:
        ref = records[n]["value"]["reply"]
        return {k: {"uri": ref[k]["uri"], "cid": ref[k]["cid"]} for k in ("root", "parent")}

    assert reply(1) == {"root": refs[0], "parent": refs[0]}
    assert reply(2) == {"root": refs[0], "parent": refs[1]}
    handle, rkey = FakeBluesky.HANDLE, records[2]["rkey"]
    assert third.url == f"https://bsky.app/profile/{handle}/post/{rkey}"
    assert all(r["value"]["langs"] == ["da"] for r in records)
    assert all(r["value"]["text"] == TEXT for r in records)


@pytest.mark.parametrize("answer", ["internal", "conflict", "invalid"])
def test_bluesky_same_post_twice_is_one_record(bluesky, answer):
    bluesky.duplicate_answer = answer
    channel = bluesky_channel(bluesky)
    first = channel.publish(post(1, "bluesky"))
    reply = channel.publish(post(2, "bluesky", reply_to=first.thread))
    again = channel.publish(post(2, "bluesky", reply_to=first.thread))
    assert again == reply
    assert [r["uri"] for r in bluesky.posts] == [first.provider_id, reply.provider_id]
    assert bluesky.refused_duplicates == [bluesky.posts[1]["rkey"]]


def test_bluesky_retry_after_a_timeout_does_not_post_twice(bluesky):
    channel = bluesky_channel(bluesky, PROVIDER_TIMEOUT=0.5)
    first = channel.publish(post(1, "bluesky"))
    bluesky.stall_next(1.5)
    with pytest.raises(TransientDeliveryError, match="unreachable"):
        channel.publish(post(2, "bluesky", reply_to=first.thread))
    wait_for(lambda: len(bluesky.posts) == 2)
    result = channel.publish(post(2, "bluesky", reply_to=first.thread))
    assert result.provider_id == bluesky.posts[1]["uri"]
    assert result.thread == {
        "root": {"uri": first.provider_id, "cid": bluesky.posts[0]["cid"]},
        "parent": {"uri": result.provider_id, "cid": bluesky.posts[1]["cid"]},
    }
    assert len(bluesky.posts) == 2


def test_bluesky_record_key_is_a_tid_derived_from_the_idempotency_key():
    plain = record_key("ann_1:bluesky")
    assert plain == record_key("ann_1:bluesky") != record_key("ann_2:bluesky")
    published = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    for when in (published.timestamp(), published.isoformat()):
        key = record_key("ann_1:bluesky", when)
        assert validate_tid(key, None) == key  # the SDK's strict TID check
        value = 0
        for char in key:
            value = value * 32 + "234567abcdefghijklmnopqrstuvwxyz".index(char)
        assert value >> 10 == int(published.timestamp() * 1_000_000)
    assert validate_tid(plain, None) == plain


def test_bluesky_post_with_publication_time_gets_an_honest_tid(bluesky):
    channel = bluesky_channel(bluesky)
    published = time.time() - 5
    channel.publish(post(1, "bluesky", event={"published_at": published}))
    assert bluesky.posts[0]["rkey"] == record_key("ann_1:bluesky", published)


def test_bluesky_link_facet_covers_the_link_in_utf8_bytes(bluesky):
    channel = bluesky_channel(bluesky)
    body_link = "https://kort.acme.example/områder?by=Århus"
    text = f"Strømafbrydelse i Århus 🔌👩‍🔧. Se {body_link} (kort).\n\n{STATUS_URL}"
    channel.publish(post(1, "bluesky", text=text))
    value = bluesky.posts[0]["value"]
    data = text.encode()
    facets = [
        (f["index"]["byteStart"], f["index"]["byteEnd"], f["features"][0]["uri"])
        for f in value["facets"]
    ]
    start = len(text[: text.rindex(STATUS_URL)].encode())
    assert (start, start + len(STATUS_URL), STATUS_URL) in facets
    assert start != text.rindex(STATUS_URL)  # bytes, not characters
    assert all(f["features"][0]["$type"] == "app.bsky.richtext.facet#link" for f in value["facets"])
    assert (
        {data[s:e].decode() for s, e, _ in facets}
        == set(http_urls(text))
        == {
            body_link,
            STATUS_URL,
        }
    )


def test_bluesky_429_retry_after_comes_from_ratelimit_reset(bluesky):
    channel = bluesky_channel(bluesky)
    channel.publish(post(1, "bluesky"))
    reset = int(time.time()) + 300
    bluesky.fail_next(
        429,
        headers={"ratelimit-remaining": "0", "ratelimit-reset": str(reset)},
        body={"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
        endpoint="/xrpc/com.atproto.repo.createRecord",
    )
    with pytest.raises(TransientDeliveryError, match="429: RateLimitExceeded") as caught:
        channel.publish(post(2, "bluesky"))
    assert caught.value.retry_after == pytest.approx(reset - time.time(), abs=2)
    assert len(bluesky.posts) == 1


def test_bluesky_429_at_login_is_transient(bluesky):
    channel = bluesky_channel(bluesky)
    reset = int(time.time()) + 60
    bluesky.fail_next(
        429,
        headers={"ratelimit-reset": str(reset)},
        body={"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
        endpoint="/xrpc/com.atproto.server.createSession",
    )
    with pytest.raises(TransientDeliveryError) as caught:
        channel.publish(post(1, "bluesky"))
    assert caught.value.retry_after == pytest.approx(60, abs=2)
    channel.publish(post(1, "bluesky"))  # logs in now
    assert len(bluesky.posts) == 1


@pytest.mark.parametrize("status", [500, 502, 503])
def test_bluesky_server_errors_are_transient(bluesky, status):
    channel = bluesky_channel(bluesky)
    bluesky.fail_next(
        status,
        body={"error": "InternalServerError", "message": "Internal Server Error"},
        endpoint="/xrpc/com.atproto.repo.createRecord",
    )
    with pytest.raises(TransientDeliveryError, match=f"HTTP {status}"):
        channel.publish(post(1, "bluesky"))
    # It looked whether the record existed (it did not), then reported the error.
    assert len(bluesky.calls("com.atproto.repo.getRecord")) == 1
    assert bluesky.posts == []
    channel.publish(post(1, "bluesky"))
    assert len(bluesky.posts) == 1


def test_bluesky_rejected_post_is_permanent_with_the_pds_message(bluesky):
    channel = bluesky_channel(bluesky)
    with pytest.raises(PermanentDeliveryError, match="HTTP 400: InvalidRequest") as caught:
        channel.publish(post(1, "bluesky", text="🔌" * 301))
    assert "must not be longer than 300 graphemes" in caught.value.reason
    # 300 graphemes (800 code points, 2,850 bytes) fit; the PDS also caps the text at 3,000 bytes.
    channel.publish(post(2, "bluesky", text="👩‍🔧" * 250 + "é" * 50))
    assert len(bluesky.posts) == 1
    with pytest.raises(PermanentDeliveryError, match="longer than 3000"):
        channel.publish(post(3, "bluesky", text="👩‍🔧" * 300))  # 300 graphemes, 3,300 bytes


def test_bluesky_scripted_400_is_permanent_with_the_message(bluesky):
    channel = bluesky_channel(bluesky)
    bluesky.fail_next(
        400,
        body={"error": "InvalidRequest", "message": "Invalid app.bsky.feed.post record"},
        endpoint="/xrpc/com.atproto.repo.createRecord",
    )
    with pytest.raises(PermanentDeliveryError, match="Invalid app.bsky.feed.post record"):
        channel.publish(post(1, "bluesky"))


def test_bluesky_wrong_app_password_is_transient_and_tried_once(bluesky):
    channel = bluesky_channel(bluesky, BLUESKY_APP_PASSWORD="wrong-pass-word-here")
    with pytest.raises(TransientDeliveryError, match="401: AuthenticationRequired"):
        channel.publish(post(1, "bluesky"))
    assert len(bluesky.calls("com.atproto.server.createSession")) == 1


@pytest.mark.parametrize("access_ttl", [7200, 60], ids=["access-token", "refresh-token-too"])
def test_bluesky_session_gone_logs_in_again_once(bluesky, access_ttl):
    bluesky.access_ttl = access_ttl  # 60 s: the SDK refreshes before every request
    channel = bluesky_channel(bluesky)
    channel.publish(post(1, "bluesky"))
    bluesky.revoke_sessions()
    channel.publish(post(2, "bluesky"))
    assert len(bluesky.calls("com.atproto.server.createSession")) == 2
    assert len(bluesky.posts) == 2


def test_bluesky_sdk_refreshes_a_session_near_expiry(bluesky):
    bluesky.access_ttl = 60  # under the SDK's 15 minutes of margin
    channel = bluesky_channel(bluesky)
    channel.publish(post(1, "bluesky"))
    channel.publish(post(2, "bluesky"))
    assert len(bluesky.calls("com.atproto.server.createSession")) == 1
    assert len(bluesky.calls("com.atproto.server.refreshSession")) >= 1
    assert len(bluesky.posts) == 2


def test_bluesky_outbox_thread_reference_is_not_sent(bluesky):
    channel = bluesky_channel(bluesky)
    result = channel.publish(post(1, "bluesky", reply_to={"id": "outbox-0123456789ab"}))
    assert "reply" not in bluesky.posts[0]["value"]
    assert result.thread["root"] == result.thread["parent"]


def test_bluesky_unreachable_is_transient():
    channel = BlueskyChannel(
        {
            "BLUESKY_BASE_URL": UNREACHABLE,
            "BLUESKY_HANDLE": "a.bsky.social",
            "BLUESKY_APP_PASSWORD": "p",
            "PROVIDER_TIMEOUT": 2,
        }
    )
    with pytest.raises(TransientDeliveryError, match="unreachable"):
        channel.publish(post(1, "bluesky"))
