"""A social account per language (``[social.LOCALE]``): the real SDKs against fake servers.

The default accounts come from the settings (English, the bundled plan's default locale);
the Dutch accounts from ``[social.nl]`` in the plan, each on its own fake server, so what a
server received is what that account posted.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rq.serializers import JSONSerializer

from broadcaster.delivery.queues import PLAN_QUEUE, queue
from broadcaster.domain.plan import BUNDLED_PLAN, PlanError, parse_plan
from broadcaster.domain.plan_social import SocialAccount
from channels.base import ChannelConfigError
from tests.fakes_social import FakeBluesky, FakeMastodon
from tests.helpers import announce, deliveries, drain
from tests.test_plan import VALID
from worker import BroadcastWorker

NL_TOKEN_ENV = "TEST_SOCIAL_NL_MASTODON_TOKEN"
NL_PASSWORD_ENV = "TEST_SOCIAL_NL_BLUESKY_PASSWORD"

OUTAGE = {
    "title": "Payments down",
    "body": "Card payments fail since 09:10. We are working on it.",
    "severity": "minor",
    "audiences": ["consumers"],
    "channels": ["social"],
    "translations": {
        "nl": {
            "title": "Betalingen liggen eruit",
            "body": "Kaartbetalingen mislukken sinds 09:10. We werken eraan.",
        }
    },
}
FIXED = {
    **OUTAGE,
    "status": "resolved",
    "title": "Payments work again",
    "body": "Card payments work normally again.",
    "translations": {
        "nl": {"title": "Betalingen werken weer", "body": "Kaartbetalingen werken weer normaal."}
    },
}


@pytest.fixture
def mastodon_nl() -> Iterator[FakeMastodon]:
    """The Dutch Mastodon account's server: another fake on another 127.0.0.1 port."""
    fake = FakeMastodon()
    yield fake
    fake.stop()
    assert fake.violations == []


@pytest.fixture
def bluesky_nl() -> Iterator[FakeBluesky]:
    fake = FakeBluesky()
    yield fake
    fake.stop()
    assert fake.violations == []


def plan_with(tmp_path: Path, social: str) -> str:
    """The bundled plan (en default; nl, da, sv) with ``social`` appended."""
    path = tmp_path / "plan.toml"
    path.write_text(BUNDLED_PLAN.read_text(encoding="utf-8") + "\n" + social, encoding="utf-8")
    return str(path)


def nl_accounts(mastodon_nl: FakeMastodon, bluesky_nl: FakeBluesky) -> str:
    return f"""
[social.nl]
mastodon = {{ base_url = "{mastodon_nl.url}", access_token_env = "{NL_TOKEN_ENV}" }}
bluesky = {{ handle = "{bluesky_nl.HANDLE}", app_password_env = "{NL_PASSWORD_ENV}", \
base_url = "{bluesky_nl.url}" }}
"""


@pytest.fixture
def app(make_app, tmp_path, monkeypatch, mastodon, bluesky, mastodon_nl, bluesky_nl):
    # The secrets live in the environment, under the names the plan gives.
    monkeypatch.setenv(NL_TOKEN_ENV, mastodon_nl.TOKEN)
    monkeypatch.setenv(NL_PASSWORD_ENV, bluesky_nl.APP_PASSWORD)
    return make_app(
        PLAN=plan_with(tmp_path, nl_accounts(mastodon_nl, bluesky_nl)),
        MASTODON_BASE_URL=mastodon.url,
        MASTODON_ACCESS_TOKEN=mastodon.TOKEN,
        BLUESKY_BASE_URL=bluesky.url,
        BLUESKY_HANDLE=bluesky.HANDLE,
        BLUESKY_APP_PASSWORD=bluesky.APP_PASSWORD,
    )


def texts(fake: FakeMastodon) -> list[str]:
    return [post["content"] for post in fake.posts]


def skeets(fake: FakeBluesky) -> list[str]:
    return [post["value"]["text"] for post in fake.posts]


# --- delivery ------------------------------------------------------------------------------


def test_each_account_posts_its_language_in_its_own_thread(
    app, tokens, mastodon, bluesky, mastodon_nl, bluesky_nl
):
    client = app.test_client()
    first = announce(client, tokens["admin"], OUTAGE)
    drain(app)
    announce(client, tokens["admin"], FIXED, incident_id=first["incident_id"])
    drain(app)

    # The default accounts: English; the Dutch accounts: Dutch, and never the other's words.
    assert ["Payments down" in t for t in texts(mastodon)] == [True, False]
    assert "Payments work again" in texts(mastodon)[1]
    assert ["Betalingen liggen eruit" in t for t in texts(mastodon_nl)] == [True, False]
    assert "Betalingen werken weer" in texts(mastodon_nl)[1]
    assert not any("Betalingen" in t for t in texts(mastodon) + skeets(bluesky))
    assert not any("Payments" in t for t in texts(mastodon_nl) + skeets(bluesky_nl))
    assert [p["language"] for p in mastodon.posts] == ["en", "en"]
    assert [p["language"] for p in mastodon_nl.posts] == ["nl", "nl"]
    assert "Betalingen liggen eruit" in skeets(bluesky_nl)[0]
    assert "Payments down" in skeets(bluesky)[0]
    assert [p["value"]["langs"] for p in bluesky_nl.posts] == [["nl"], ["nl"]]
    assert [p["value"]["langs"] for p in bluesky.posts] == [["en"], ["en"]]

    # One thread per account: each update replies to that account's previous post.
    for fake in (mastodon, mastodon_nl):
        assert fake.posts[0]["in_reply_to_id"] is None
        assert fake.posts[1]["in_reply_to_id"] == fake.posts[0]["id"]
    for fake in (bluesky, bluesky_nl):
        assert "reply" not in fake.posts[0]["value"]
        assert fake.posts[1]["value"]["reply"]["parent"]["uri"] == fake.posts[0]["uri"]

    records = deliveries(client, tokens["admin"], first["id"])
    social = {r["subscriber_id"]: r["state"] for r in records if r["channel"] == "social"}
    assert social == {n: "sent" for n in ("mastodon", "bluesky", "mastodon:nl", "bluesky:nl")}


def test_without_a_translation_the_locale_account_posts_the_default_language(
    app, tokens, mastodon, mastodon_nl, bluesky_nl
):
    client = app.test_client()
    announce(client, tokens["admin"], {**OUTAGE, "translations": {}})
    drain(app)
    # Still posted: the Dutch followers are told, in English.
    [post] = mastodon_nl.posts
    assert "Payments down" in post["content"] and post["language"] == "en"
    assert "Payments down" in skeets(bluesky_nl)[0]
    assert bluesky_nl.posts[0]["value"]["langs"] == ["en"]
    assert texts(mastodon) == texts(mastodon_nl), "the same English text as the default account"


def test_internal_only_announcements_post_nowhere(
    app, tokens, mastodon, bluesky, mastodon_nl, bluesky_nl
):
    client = app.test_client()
    staff_only = {**OUTAGE, "audiences": ["staff"], "channels": ["social", "email"]}
    created = announce(client, tokens["admin"], staff_only)
    drain(app)
    assert mastodon.posts == bluesky.posts == mastodon_nl.posts == bluesky_nl.posts == []
    assert mastodon_nl.requests == [] and bluesky_nl.requests == []
    records = deliveries(client, tokens["admin"], created["id"])
    assert [r for r in records if r["channel"] == "social"] == []


def test_an_empty_account_table_posts_to_the_outbox(make_app, tmp_path, tokens, mastodon):
    app = make_app(
        PLAN=plan_with(tmp_path, "[social.nl]\nmastodon = {}\n"),
        MASTODON_BASE_URL=mastodon.url,
        MASTODON_ACCESS_TOKEN=mastodon.TOKEN,
    )
    client = app.test_client()
    created = announce(client, tokens["admin"], OUTAGE)
    drain(app)
    [record] = [
        r
        for r in deliveries(client, tokens["admin"], created["id"])
        if r["subscriber_id"] == "mastodon:nl"
    ]
    assert record["state"] == "sent" and record["provider_id"].startswith("outbox-")
    assert len(mastodon.posts) == 1, "only the default account reached a server"
    assert "Payments down" in mastodon.posts[0]["content"]
    ready = client.get("/readyz").get_json()["checks"]["transports"]
    assert ready["mastodon:nl"] == "outbox" and ready["mastodon"] == "mastodon"
    assert "bluesky:nl" not in ready


def test_a_post_queued_for_an_account_the_plan_dropped_fails_with_the_reason(
    app, make_app, tokens, mastodon, mastodon_nl
):
    client = app.test_client()
    created = announce(client, tokens["admin"], OUTAGE)
    with app.app_context():  # plan the posts under the plan with [social.nl], send none
        r = app.extensions["broadcaster"].redis
        BroadcastWorker([queue(r, PLAN_QUEUE)], connection=r, serializer=JSONSerializer).work(
            burst=True
        )
    later = make_app(MASTODON_BASE_URL=mastodon.url, MASTODON_ACCESS_TOKEN=mastodon.TOKEN)
    drain(later)  # the next start's plan has no [social.nl]: no crash, a failure with why
    records = {
        r["subscriber_id"]: r
        for r in deliveries(client, tokens["admin"], created["id"])
        if r["channel"] == "social"
    }
    assert records["mastodon"]["state"] == "sent" and len(mastodon.posts) == 1
    assert records["mastodon:nl"]["state"] == "failed"
    assert "no longer configured" in records["mastodon:nl"]["error"]
    assert mastodon_nl.posts == []


# --- health and preview --------------------------------------------------------------------


def test_readyz_lists_the_locale_accounts(app):
    transports = app.test_client().get("/readyz").get_json()["checks"]["transports"]
    assert transports["mastodon:nl"] == "mastodon" and transports["bluesky:nl"] == "bluesky"


def test_preview_shows_each_accounts_text(app, tokens, mastodon_nl):
    client = app.test_client()
    answer = client.post("/api/v1/preview", json=OUTAGE, headers=tokens["helpdesk"])
    assert answer.status_code == 200, answer.get_json()
    preview = answer.get_json()
    by = {(p["channel"], p["locale"]): p for p in preview["public"]}
    assert by[("mastodon", "nl")]["places"] == ["mastodon:nl"]
    assert "Betalingen liggen eruit" in by[("mastodon", "nl")]["content"]["text"]
    assert by[("mastodon", "en")]["places"] == ["mastodon"]
    assert by[("bluesky", "nl")]["places"] == ["bluesky:nl"]
    assert by[("mastodon", "da")]["places"] == []
    surfaces = {s["surface"]: s for s in preview["surfaces"]}
    assert surfaces["social:mastodon:nl"]["label"] == "Social: mastodon (nl)"
    assert surfaces["social:mastodon:nl"]["reaches"] is True

    untranslated = {**OUTAGE, "translations": {}}
    preview = client.post(
        "/api/v1/preview", json=untranslated, headers=tokens["helpdesk"]
    ).get_json()
    assert "no nl translation: the nl social accounts post the en text" in preview["warnings"]
    surfaces = {s["surface"]: s for s in preview["surfaces"]}
    assert "posts the en text" in surfaces["social:bluesky:nl"]["why"]
    internal = client.post(
        "/api/v1/preview", json={**OUTAGE, "audiences": ["staff"]}, headers=tokens["helpdesk"]
    ).get_json()
    surfaces = {s["surface"]: s for s in internal["surfaces"]}
    assert surfaces["social:mastodon:nl"]["reaches"] is False
    assert mastodon_nl.requests == [], "a preview posts nothing"


# --- plan errors ---------------------------------------------------------------------------


def parse(social: Any) -> Any:
    data = copy.deepcopy(VALID)
    data["social"] = social
    return parse_plan(data, "plan.toml")


def problems(social: Any) -> str:
    with pytest.raises(PlanError) as caught:
        parse(social)
    return str(caught.value)


def test_a_valid_social_table_parses():
    plan = parse(
        {
            "nl": {
                "mastodon": {"base_url": "https://mastodon.nl/", "access_token_env": "NL_TOKEN"},
                "bluesky": {"handle": "acme-nl.bsky.social", "app_password_env": "NL_PASSWORD"},
            }
        }
    )
    assert plan.social == (
        SocialAccount("nl", "mastodon", "https://mastodon.nl", "NL_TOKEN"),
        SocialAccount("nl", "bluesky", "acme-nl.bsky.social", "NL_PASSWORD"),
    )
    assert [a.place for a in plan.social] == ["mastodon:nl", "bluesky:nl"]
    assert parse({"nl": {"mastodon": {}}}).social == (SocialAccount("nl", "mastodon"),)


@pytest.mark.parametrize(
    ("social", "expected"),
    [
        ({"de": {"mastodon": {}}}, "plan.toml: social.de: unknown locale (organisation.locales"),
        (
            {"en": {"mastodon": {}}},
            "plan.toml: social.en: en is the default locale: its accounts are the ones in the "
            "environment (BROADCASTER_MASTODON_*",
        ),
        ({"nl": {"twitter": {}}}, "social.nl.twitter: unknown key (expected one of: mastodon"),
        (
            {"nl": {"mastodon": {"base_url": "https://m.nl", "access_token": "s3cret"}}},
            "social.nl.mastodon.access_token: unknown key",
        ),
        (
            {"nl": {"mastodon": {"base_url": "https://m.nl"}}},
            "social.nl.mastodon.access_token_env: missing: name the environment variable",
        ),
        (
            {"nl": {"mastodon": {"access_token_env": "NL_TOKEN"}}},
            "social.nl.mastodon.base_url: missing (access_token_env is given)",
        ),
        (
            {"nl": {"mastodon": {"base_url": "mastodon.nl", "access_token_env": "T"}}},
            "social.nl.mastodon.base_url: must be an http(s) URL",
        ),
        (
            {"nl": {"mastodon": {"base_url": "https://m.nl", "access_token_env": "tok en!"}}},
            "social.nl.mastodon.access_token_env: must name an environment variable",
        ),
        (
            {"nl": {"bluesky": {"handle": "a.bsky.social"}}},
            "social.nl.bluesky.app_password_env: missing",
        ),
        (
            {"nl": {"bluesky": {"handle": "a.b", "app_password_env": "P", "base_url": "x"}}},
            "social.nl.bluesky.base_url: must be an http(s) URL",
        ),
        ({"nl": {"bluesky": {"handle": 7}}}, "social.nl.bluesky.handle: must be a non-empty"),
        ({"nl": {"mastodon": "https://m.nl"}}, "social.nl.mastodon: must be a table like"),
        ({"nl": "mastodon"}, "social.nl: must be a table, not str"),
        ("nl", "social: must be a table, not str"),
    ],
)
def test_a_bad_social_table_fails_start_up_naming_key_and_reason(social, expected):
    assert expected in problems(social)


def test_every_social_problem_is_reported_at_once():
    found = problems({"de": {}, "en": {}, "nl": {"twitter": {}}})
    assert "social.de:" in found and "social.en:" in found and "social.nl.twitter:" in found


def test_an_unset_secret_variable_fails_start_up_naming_it(make_app, tmp_path, monkeypatch):
    monkeypatch.delenv(NL_TOKEN_ENV, raising=False)
    social = (
        "[social.nl]\n"
        f'mastodon = {{ base_url = "https://m.nl", access_token_env = "{NL_TOKEN_ENV}" }}\n'
    )
    with pytest.raises(ChannelConfigError) as caught:
        make_app(PLAN=plan_with(tmp_path, social))
    assert f"environment variable {NL_TOKEN_ENV} is not set" in str(caught.value)
    assert "social.nl.mastodon.access_token_env" in str(caught.value)


@settings(max_examples=150, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(
                st.sampled_from(["nl", "en", "de", "mastodon", "bluesky", "base_url", "handle"])
                | st.text(max_size=8),
                inner,
                max_size=4,
            )
        ),
        max_leaves=12,
    )
)
def test_hostile_social_tables_are_refused_or_parsed_never_crash(social):
    try:
        plan = parse(social)
    except PlanError as exc:
        assert "plan.toml: social" in str(exc)
        return
    for account in plan.social:
        assert account.locale == "nl" and account.network in ("mastodon", "bluesky")
        assert bool(account.where) == bool(account.secret_env)
