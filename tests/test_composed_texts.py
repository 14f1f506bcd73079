"""SMS, banner and social texts composed from parts: the promise, the route and the link stay.

Issue 16: a long body used to be cut mid-sentence, losing the promised time; titles doubled
the status word; the SMS carried the first route whatever the need. Here announcements go
through the API, SMS through the real Twilio SDK to the fake Twilio, posts through the real
Mastodon.py and atproto to the fake networks, and the banner through /banner.json.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broadcaster.domain.announcement import Announcement
from broadcaster.domain.plan import PlanError, load_plan
from broadcaster.rendering.clock import format_time
from broadcaster.rendering.compose_text import (
    BODY,
    MUST,
    ROUTE,
    TITLE,
    WORDS,
    Part,
    compose,
    sentences,
)
from broadcaster.rendering.i18n import gettext_for
from broadcaster.rendering.segments import BANNER_MAX, SOCIAL_LIMITS, sms_cost, social_length
from tests.fakes_social import FakeBluesky, FakeMastodon
from tests.helpers import drain, publish, subscribe

LOCALES = ("en", "nl", "da", "sv")
ORG = "Acme Energy"
TZ = "Europe/Amsterdam"
STATUS_URL = "http://127.0.0.1:8000/status"
CHAT = "https://acme.example/chat"
PORTAL = "https://acme.example/portal"
PHONE = {"en": "+31612340001", "nl": "+31612340002", "da": "+31612340003", "sv": "+31612340004"}
BILLING = {"en": "Billing", "nl": "Betalingen", "da": "Betaling", "sv": "Betalning"}
TECHNICAL = {
    "en": "Technical problem",
    "nl": "Technisch probleem",
    "da": "Teknisk problem",
    "sv": "Tekniskt problem",
}

# Long bodies, each promising a time in its last sentence (the part cutting used to lose).
TEXTS = {
    "en": (
        "Payments fail",
        "Card payments and direct debits fail for most customers since 09:10 this morning. "
        "Our engineers have found a fault in the payment gateway and are replacing the failed "
        "hardware now. Payments you made in the meantime have not been charged twice. Please "
        "try again later or pay in the customer portal, which is not affected by this fault. "
        "We apologise for the inconvenience and will give an update no later than 12:00.",
    ),
    "nl": (
        "Betalingen mislukken",
        "Sinds 09:10 mislukken betalingen met pas en automatische incasso's voor de meeste "
        "klanten. Onze technici hebben een storing in de betaalomgeving gevonden en vervangen "
        "nu de defecte apparatuur. Betalingen die u in de tussentijd deed, zijn niet dubbel "
        "afgeschreven. Probeer het later opnieuw of betaal in het klantportaal, dat niet door "
        "deze storing wordt geraakt. Onze excuses; we geven uiterlijk 12:00 een update.",
    ),
    "da": (
        "Betalinger fejler",
        "Siden kl. 09:10 fejler kortbetalinger og betalingsservice for de fleste kunder. "
        "Vores teknikere har fundet en fejl i betalingssystemet og udskifter nu det defekte "
        "udstyr. Betalinger, du har foretaget i mellemtiden, er ikke trukket to gange. Prøv "
        "igen senere, eller betal i kundeportalen, som ikke er ramt af fejlen. Vi beklager "
        "ulejligheden og giver en opdatering senest kl. 12:00.",
    ),
    "sv": (
        "Betalningar misslyckas",
        "Sedan 09.10 misslyckas kortbetalningar och autogiro för de flesta kunder. Våra "
        "tekniker har hittat ett fel i betalsystemet och byter nu ut den trasiga utrustningen. "
        "Betalningar som du gjort under tiden har inte dragits två gånger. Försök igen senare "
        "eller betala i kundportalen, som inte påverkas av felet. Vi ber om ursäkt och ger en "
        "uppdatering senast 12.00.",
    ),
}

PLAN = """
[organisation]
name = "Acme Energy"
default_locale = "{default_locale}"
locales = ["en", "nl", "da", "sv"]
timezone = "Europe/Amsterdam"

[policy]
sms_max_segments = 2

[channels_by_severity]
info = ["banner"]
minor = ["banner"]
major = ["banner", "social", "sms"]
critical = ["banner", "social", "sms"]

[audiences.consumers]
channels = ["sms", "banner", "social"]
primary_route = "{technical}"

[[audiences.consumers.routes]]
need = {{ en = "Technical problem", nl = "Technisch probleem", da = "Teknisk problem", \
sv = "Tekniskt problem" }}
channel = "Live chat"
contact = "https://acme.example/chat"

[[audiences.consumers.routes]]
need = {{ en = "Billing", nl = "Betalingen", da = "Betaling", sv = "Betalning" }}
channel = "Customer portal"
contact = "https://acme.example/portal"

[audiences.business]
channels = ["sms", "banner"]
primary_route = "Account manager"

[[audiences.business.routes]]
need = "Partner desk"
channel = "Phone"
contact = "+31 20 765 0000"

[[audiences.business.routes]]
need = "Account manager"
channel = "Phone"
contact = "+31 20 765 4321"

[audiences.partners]
channels = ["sms"]

[[audiences.partners.routes]]
need = "Partner desk"
channel = "Phone"
contact = "+31 20 765 0000"
"""


def plan_text(default_locale: str = "en") -> str:
    return PLAN.format(default_locale=default_locale, technical=TECHNICAL[default_locale])


@pytest.fixture
def plan_app(make_app: Callable[..., Flask], tmp_path: Path) -> Callable[..., Flask]:
    """An app on PLAN with ``default_locale``; ``overrides`` go to the app's config."""

    def build(default_locale: str = "en", **overrides: Any) -> Flask:
        path = tmp_path / f"plan-{default_locale}.toml"
        path.write_text(plan_text(default_locale), encoding="utf-8")
        return make_app(PLAN=str(path), **overrides)

    return build


def payments_outage(promised: float, need: str | None = "Billing", **changes: Any) -> dict:
    """The long announcement in four languages, on SMS, banner and social."""
    title, body = TEXTS["en"]
    data: dict[str, Any] = {
        "title": title,
        "body": body,
        "severity": "critical",
        "audiences": ["consumers"],
        "channels": ["sms", "banner", "social"],
        "translations": {
            locale: {"title": TEXTS[locale][0], "body": TEXTS[locale][1]}
            for locale in LOCALES
            if locale != "en"
        },
        "next_update_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(promised)),
        **changes,
    }
    if need:
        data["need"] = need
    return data


def promise(locale: str, promised: float) -> str:
    """The promised time as messages show it, from the one time-formatting function."""
    return format_time(promised, locale, TZ)


def assert_body_ends_cleanly(kept: str, body: str) -> None:
    """``kept`` is the body's start, ending at a sentence boundary or a word + ellipsis."""
    flat = " ".join(body.split())
    for ellipsis in ("...", "…"):
        if kept.endswith(ellipsis):
            prefix = kept[: -len(ellipsis)]
            assert prefix and flat.startswith(prefix), kept
            assert flat[len(prefix)] in " ,.;:-", f"cut mid-word: {kept!r}"
            return
    assert flat.startswith(kept), kept
    assert not kept or kept == flat or (kept[-1] in ".!?" and flat[len(kept)] == " "), kept


def split_text(text: str, head: str, locale: str, promised: float) -> tuple[str, str]:
    """(the body part between ``head`` and the promise, everything from the promise on)."""
    _ = gettext_for(locale)
    assert text.startswith(head), text
    at = text.index(f"{_('Next update by')}: {promise(locale, promised)}")
    return text[len(head) : at].strip(), text[at:]


# --- through the providers ------------------------------------------------------------------


def test_sms_in_four_languages_keeps_promise_need_route_and_link(
    plan_app: Callable[..., Flask], tokens: dict[str, dict[str, str]], providers: Any
) -> None:
    _, twilio = providers
    app = plan_app()
    client = app.test_client()
    subscribe(
        client,
        tokens["admin"],
        [{"phone": PHONE[loc], "locale": loc, "audiences": ["consumers"]} for loc in LOCALES],
    )
    promised = time.time() + 3600
    publish(client, tokens, payments_outage(promised))
    drain(app)
    received = {form["To"]: form["Body"] for form in twilio.accepted()}
    assert len(received) == 4
    for locale in LOCALES:
        text = received[PHONE[locale]]
        status = gettext_for(locale)("Investigating")
        title, body = TEXTS[locale]
        kept, tail = split_text(text, f"{ORG}: {status}: {title}. ", locale, promised)
        assert_body_ends_cleanly(kept, body)
        assert kept, "at least the first sentence fits two segments"
        # Payments outage: the billing route (need tag), not the primary live chat.
        assert tail.endswith(f". {BILLING[locale]}: {PORTAL} {STATUS_URL}"), tail
        assert CHAT not in text
        assert sms_cost(text).segments <= 2


@pytest.mark.parametrize("locale", LOCALES)
def test_social_posts_keep_promise_route_and_link(
    plan_app: Callable[..., Flask],
    tokens: dict[str, dict[str, str]],
    mastodon: FakeMastodon,
    bluesky: FakeBluesky,
    locale: str,
) -> None:
    # Social posts speak the plan's default language: one plan per language.
    app = plan_app(
        locale,
        MASTODON_BASE_URL=mastodon.url,
        MASTODON_ACCESS_TOKEN=mastodon.TOKEN,
        BLUESKY_BASE_URL=bluesky.url,
        BLUESKY_HANDLE=bluesky.HANDLE,
        BLUESKY_APP_PASSWORD=bluesky.APP_PASSWORD,
    )
    client = app.test_client()
    promised = time.time() + 3600
    data = payments_outage(promised, need=BILLING[locale], channels=["social"])
    if locale != "en":  # the default language's text is the announcement's own
        data["title"], data["body"] = TEXTS[locale]
    publish(client, tokens, data)
    drain(app)
    [toot] = mastodon.posts
    [skeet] = bluesky.posts
    paragraphs = re.findall(r"<p>(.*?)</p>", toot["content"])
    posts = {
        "mastodon": "\n\n".join(html.unescape(p) for p in paragraphs),
        "bluesky": skeet["value"]["text"],
    }
    status = gettext_for(locale)("Investigating")
    title, body = TEXTS[locale]
    for network, post in posts.items():
        assert social_length(post, network) <= SOCIAL_LIMITS[network]
        kept, tail = split_text(post, f"{ORG} · {status}: {title}. ", locale, promised)
        assert_body_ends_cleanly(kept, body)
        assert tail.endswith(f". {BILLING[locale]}: {PORTAL}\n\n{STATUS_URL}"), tail


def test_banner_in_four_languages_shows_promise_and_route(
    plan_app: Callable[..., Flask], tokens: dict[str, dict[str, str]]
) -> None:
    client = plan_app().test_client()
    promised = time.time() + 3600
    created = publish(client, tokens, payments_outage(promised, channels=["banner"]))
    for locale in LOCALES:
        body = client.get(f"/banner.json?audience=consumers&lang={locale}").get_json()
        [banner] = body["banners"]
        text = banner["text"]
        assert len(text) <= BANNER_MAX
        status = gettext_for(locale)("Investigating")
        title, full_body = TEXTS[locale]
        kept, tail = split_text(text, f"{status}: {title}. ", locale, promised)
        assert_body_ends_cleanly(kept, full_body)
        assert tail.endswith(f". {BILLING[locale]}: {PORTAL}"), tail
        # The status link is the banner's own link, not part of the line.
        assert banner["link"].startswith(f"{STATUS_URL}?lang={locale}#{created['incident_id']}")


def test_a_resolved_title_does_not_repeat_the_status_word(
    plan_app: Callable[..., Flask], tokens: dict[str, dict[str, str]], providers: Any
) -> None:
    _, twilio = providers
    app = plan_app()
    client = app.test_client()
    subscribe(
        client,
        tokens["admin"],
        [{"phone": PHONE[loc], "locale": loc, "audiences": ["consumers"]} for loc in LOCALES],
    )
    titles = {
        "en": "Resolved: payments work again",
        "nl": "Opgelost: betalingen werken weer",
        "da": "Betalinger virker igen (løst)",
        "sv": "Löst: betalningar fungerar igen",
    }
    # The all-clear texts exactly the people the incident reached (domain/all_clear.py):
    # alert them first.
    first = publish(client, tokens, payments_outage(time.time() + 600, channels=["sms"]))
    drain(app)
    publish(
        client,
        tokens,
        {
            "incident_id": first["incident_id"],
            "title": titles["en"],
            "body": "Payments work normally again.",
            "severity": "critical",
            "status": "resolved",
            "audiences": ["consumers"],
            "channels": ["sms", "banner"],
            "translations": {
                loc: {"title": titles[loc], "body": "Payments work normally again."}
                for loc in LOCALES
                if loc != "en"
            },
        },
    )
    drain(app)
    received = {form["To"]: form["Body"] for form in twilio.accepted()}  # the last: all-clear
    for locale in LOCALES:
        word = gettext_for(locale)("Resolved").casefold()
        sms = received[PHONE[locale]]
        [banner] = client.get(f"/banner.json?audience=consumers&lang={locale}").get_json()[
            "banners"
        ]
        for text in (sms, banner["text"]):
            assert text.casefold().count(word) == 1, text
            assert titles[locale] in text


# --- the route a short text shows -----------------------------------------------------------


@pytest.mark.parametrize(
    ("audiences", "need", "route"),
    [
        (["consumers"], "Billing", f"Billing: {PORTAL}"),  # the need tag first
        (["consumers"], None, f"Technical problem: {CHAT}"),  # then primary_route
        (["business"], None, "Account manager: +31 20 765 4321"),  # primary, not the first
        (["partners"], None, "Partner desk: +31 20 765 0000"),  # no primary: the first route
        (["business", "consumers"], None, f"Technical problem: {CHAT}"),  # plan order
        (["business", "consumers"], "Billing", f"Billing: {PORTAL}"),
    ],
)
def test_route_is_need_tag_then_primary_route_then_first(
    plan_app: Callable[..., Flask], audiences: list[str], need: str | None, route: str
) -> None:
    renderer = plan_app().extensions["broadcaster"].renderer
    announcement = Announcement.from_dict(
        {
            **payments_outage(time.time(), need=need),
            "next_update_at": None,
            "status": "investigating",
            "audiences": audiences,
            "id": "ann_1",
            "incident_id": "inc_1",
            "author": "ada",
            "state": "published",
            "created_at": time.time(),
        }
    )
    for channel in ("sms", "banner", "mastodon"):
        text = renderer.render(channel, announcement, audiences, "en").content["text"]
        assert route in text, (channel, text)


def test_need_tag_is_checked_stored_and_returned(
    plan_app: Callable[..., Flask], tokens: dict[str, dict[str, str]]
) -> None:
    client = plan_app().test_client()
    bad = client.post(
        "/api/v1/announcements",
        json=payments_outage(time.time() + 600, need="Refunds"),
        headers=tokens["admin"],
    )
    assert bad.status_code == 422
    [problem] = bad.get_json()["errors"]["need"]
    assert "'Technical problem', 'Billing'" in problem
    # A need of another audience's route is not one of this announcement's routes.
    other = payments_outage(time.time() + 600, need="Account manager")
    answer = client.post("/api/v1/announcements", json=other, headers=tokens["admin"])
    assert answer.status_code == 422
    created = publish(client, tokens, payments_outage(time.time() + 600))
    got = client.get(f"/api/v1/announcements/{created['id']}", headers=tokens["admin"])
    assert got.get_json()["need"] == "Billing"


def test_records_from_before_the_need_tag_load() -> None:
    old = {
        "id": "ann_old",
        "incident_id": "inc_old",
        "title": "T",
        "body": "B",
        "severity": "info",
        "status": "investigating",
        "audiences": ["consumers"],
        "channels": ["banner"],
        "author": "ada",
        "state": "published",
        "created_at": 1.0,
    }
    assert Announcement.from_dict(old).need is None


@pytest.mark.parametrize(
    ("primary", "reason"),
    [
        ('"Refunds"', "must be the need of one of its routes ('Technical problem', 'Billing')"),
        ("3", "must be the need of one of its routes"),
        # A translated label is not the key: the default locale's label is.
        ('"Betalingen"', "must be the need of one of its routes"),
    ],
)
def test_primary_route_must_name_a_route_of_its_audience(
    tmp_path: Path, primary: str, reason: str
) -> None:
    path = tmp_path / "plan.toml"
    path.write_text(
        plan_text().replace('primary_route = "Technical problem"', f"primary_route = {primary}"),
        encoding="utf-8",
    )
    with pytest.raises(PlanError) as error:
        load_plan(path)
    assert f"plan.toml: audiences.consumers.primary_route: {reason}" in str(error.value)


def test_a_follow_up_keeps_the_need_of_its_incident(
    plan_app: Callable[..., Flask], tokens: dict[str, dict[str, str]], providers: Any
) -> None:
    _, twilio = providers
    app = plan_app()
    client = app.test_client()
    subscribe(client, tokens["admin"], [{"phone": PHONE["en"], "audiences": ["consumers"]}])
    first = publish(client, tokens, payments_outage(time.time() + 600, channels=["sms"]))
    publish(
        client,
        tokens,
        {
            "title": "Payments work again",
            "body": "Card payments work normally again.",
            "severity": "critical",
            "status": "resolved",
            "audiences": ["consumers"],
            "channels": ["sms"],
            "incident_id": first["incident_id"],
        },
    )
    drain(app)
    bodies = [form["Body"] for form in twilio.accepted()]
    [resolved_sms] = [b for b in bodies if "Payments work again" in b]
    [first_sms] = [b for b in bodies if b != resolved_sms]
    assert f"Billing: {PORTAL}" in first_sms
    assert resolved_sms.endswith(f"Billing: {PORTAL} {STATUS_URL}"), resolved_sms
    assert "Next update by" not in resolved_sms  # no promise made, none shown


def test_a_monitoring_rule_need_must_be_a_route_of_its_audiences(tmp_path: Path) -> None:
    rule = (
        '[[monitoring.rules]]\nmatch = { service = "payments" }\naudiences = ["partners"]\n'
        'need = "Billing"\n'
    )
    path = tmp_path / "plan.toml"
    path.write_text(plan_text() + rule, encoding="utf-8")
    with pytest.raises(PlanError) as error:
        load_plan(path)
    assert (
        "plan.toml: monitoring.rules[0].need: must be the need of one of its audiences' routes "
        "('Partner desk')"
    ) in str(error.value)
    path.write_text(plan_text() + rule.replace("partners", "consumers"), encoding="utf-8")
    assert load_plan(path).monitoring.rules[0].need == "Billing"


# --- the composer on its own ----------------------------------------------------------------


def test_sentences_split_on_punctuation_and_blank_lines_only() -> None:
    text = 'Siden kl. 09:10 fejler det. Vi ved det, e.g. nu! "Ja." Nej?\n\nUden punktum\nher'
    assert sentences(text) == [
        "Siden kl. 09:10 fejler det.",
        "Vi ved det, e.g. nu!",
        '"Ja."',
        "Nej?",
        "Uden punktum her",
    ]


def test_compose_drops_the_least_important_part_first() -> None:
    parts = [
        Part("title", "Power outage.", TITLE, WORDS),
        Part("body", "One two three. Four five six.", BODY, "sentences"),
        Part("promise", "Next: 12:00.", MUST),
        Part("route", "Call 0800", ROUTE),
        Part("link", "https://x.example", MUST),
    ]
    full = compose(parts, lambda s: True)
    assert full.text == (
        "Power outage. One two three. Four five six. Next: 12:00. Call 0800 https://x.example"
    )
    assert not full.cut
    one_sentence = compose(parts, lambda s: len(s) <= 70)
    assert (
        one_sentence.text == "Power outage. One two three. Next: 12:00. Call 0800 https://x.example"
    )
    assert one_sentence.cut
    no_route = compose(parts, lambda s: len(s) <= 50)
    assert no_route.text == "Power outage. Next: 12:00. https://x.example"
    assert no_route.kept == ("title", "promise", "link")
    # The musts stay even when nothing fits.
    assert compose(parts, lambda s: False).text == "Next: 12:00. https://x.example"


def test_a_long_first_sentence_is_shortened_at_a_word() -> None:
    parts = [
        Part("body", "A fault in the main substation cut power. More.", BODY, "sentences"),
        Part("link", "L", MUST),
    ]
    composed = compose(parts, lambda s: len(s) <= 30, "...")
    assert composed.text == "A fault in the main... L"
    # Fewer than three words say nothing: the body is left out instead.
    assert compose(parts, lambda s: len(s) <= 12, "...").text == "L"


# --- any text -------------------------------------------------------------------------------

ANY_TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=600
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    title=ANY_TEXT,
    body=ANY_TEXT,
    locale=st.sampled_from(LOCALES),
    status=st.sampled_from(["investigating", "identified", "monitoring", "resolved"]),
    audiences=st.sampled_from([["consumers"], ["business"], ["partners"], []]),
)
def test_any_sms_fits_the_plan_and_keeps_link_and_promise(
    sms_renderers: dict[int, Any],
    title: str,
    body: str,
    locale: str,
    status: str,
    audiences: list[str],
) -> None:
    promised = 1795464463.0
    announcement = Announcement.from_dict(
        {
            "id": "ann_1",
            "incident_id": "inc_1",
            "title": title,
            "body": body,
            "severity": "critical",
            "status": status,
            "audiences": audiences,
            "channels": ["sms"],
            "translations": {locale: {"title": title, "body": body}} if locale != "en" else {},
            "next_update_at": promised,
            "author": "ada",
            "state": "published",
            "created_at": promised - 60,
        }
    )
    for cap, renderer in sms_renderers.items():
        text = renderer.render("sms", announcement, audiences, locale).content["text"]
        assert sms_cost(text).segments <= cap
        assert text.endswith(f" {STATUS_URL}")
        label = gettext_for(locale)("Next update by")
        assert f"{label}: {promise(locale, promised)}" in text


@pytest.fixture
def sms_renderers(make_app: Callable[..., Flask], tmp_path: Path) -> dict[int, Any]:
    """Renderers of PLAN with one and with two SMS segments."""
    out = {}
    for cap in (1, 2):
        path = tmp_path / f"plan-{cap}.toml"
        path.write_text(
            plan_text().replace("sms_max_segments = 2", f"sms_max_segments = {cap}"),
            encoding="utf-8",
        )
        out[cap] = make_app(PLAN=str(path)).extensions["broadcaster"].renderer
    return out
