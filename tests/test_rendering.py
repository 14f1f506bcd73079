"""Rendering of announcements per channel, audience set and locale (templates + catalogues)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from broadcaster.domain.announcement import Announcement
from broadcaster.domain.plan import load_plan
from broadcaster.rendering.messages import SUBJECT_MAX, Renderer, routes_for
from broadcaster.rendering.segments import (
    BANNER_MAX,
    ELLIPSIS,
    ELLIPSIS_GSM,
    SOCIAL_LIMITS,
    graphemes,
    mastodon_length,
    sms_cost,
)

ORG = "Acme Energy"
STATUS_URL = "http://127.0.0.1:8000/status"  # default PUBLIC_URL + /status
CHAT = "https://acme.example/chat"
UNSUBSCRIBE = "-unsubscribe_url-"
TS = 1795464463.0  # 2026-11-23 20:07:43 UTC = 21:07:43 in Europe/Amsterdam

# The status word short texts start with (status "investigating"), per locale.
INVESTIGATING = {
    "en": "Investigating",
    "nl": "Wordt onderzocht",
    "da": "Undersøges",
    "sv": "Undersöks",
}
SMS_HEAD = f"{ORG}: Investigating:"
# The first route of each bundled audience, as the SMS tail shows it.
TAIL_CONSUMERS_EN = f" Technical problem: {CHAT} {STATUS_URL}"
TAIL_CONSUMERS_NL = f" Technisch probleem: {CHAT} {STATUS_URL}"
TAIL_BUSINESS = f" Account manager: +31 20 765 4321 {STATUS_URL}"
TAIL_STAFF = f" Incident room: https://acme.example/incident-room {STATUS_URL}"
TAIL_NO_ROUTE = f" {STATUS_URL}"

# Fixed strings, copied from broadcaster/translations/*/LC_MESSAGES/messages.po.
REACH = {
    "en": "How to reach us for your need",
    "nl": "Zo bereikt u ons met uw hulpvraag",
    "da": "Sådan kontakter du os om det, du har brug for",
    "sv": "Så når du oss med ditt ärende",
}
CORRECTION = {
    "en": ("Correction", "This corrects our earlier message"),
    "nl": ("Correctie", "Dit bericht corrigeert ons eerdere bericht"),
    "da": ("Rettelse", "Denne besked retter vores tidligere besked"),
    "sv": ("Rättelse", "Det här meddelandet rättar vårt tidigare meddelande"),
}
UNSUBSCRIBE_TEXT = {
    "en": "Unsubscribe from these emails",
    "nl": "Afmelden voor deze e-mails",
    "da": "Afmeld disse e-mails",
    "sv": "Avsluta prenumerationen på dessa e-postmeddelanden",
}
# (Status, Severity) labels in the text part.
STATUS_SEVERITY_WORDS = {
    "en": ("Status", "Severity"),
    "nl": ("Status", "Ernst"),
    "da": ("Status", "Alvorlighed"),
    "sv": ("Status", "Allvarlighetsgrad"),
}

TRANSLATIONS = {
    "nl": {"title": "Stroomstoring", "body": "We werken eraan."},
    "da": {"title": "Strømsvigt", "body": "Vi arbejder på sagen."},
    "sv": {"title": "Strömavbrott", "body": "Vi arbetar på det."},
}


def announcement(**overrides: Any) -> Announcement:
    ann: dict[str, Any] = {
        "id": "ann_1",
        "title": "Power outage",
        "body": "We are working on it.",
        "severity": "critical",
        "status": "investigating",
        "audiences": ["consumers"],
        "channels": ["email", "sms"],
        "translations": {},
        "corrects": None,
        "published_at": TS,
        "created_at": TS,
        "incident_id": "inc_1",
        "author": "lead",
        "state": "published",
    }
    ann.update(overrides)
    return Announcement.from_dict(ann)


def filler(n: int, word: str = "power") -> str:
    """``n`` characters of words separated by single spaces, not starting or ending in one."""
    text = ((word + " ") * (n // (len(word) + 1) + 2))[:n]
    return text[:-1] + "s" if text.endswith(" ") else text


@pytest.fixture
def renderer(app: Flask) -> Renderer:
    return app.extensions["broadcaster"].renderer


# A second plan: shared routes between audiences, an "&" in the name, one SMS segment only.
CUSTOM_PLAN = """
[organisation]
name = "Zon & Wind"
default_locale = "en"
locales = ["en", "nl"]
timezone = "UTC"

[policy]
sms_max_segments = 1

[channels_by_severity]
info = ["email"]
minor = ["email"]
major = ["email", "sms"]
critical = ["email", "sms"]

[audiences.residents]
channels = ["email", "sms"]

[[audiences.residents.routes]]
need = { en = "Power cut", nl = "Stroomuitval" }
channel = "Phone"
contact = "0800 1234"
hours = "24/7"

[[audiences.residents.routes]]
need = "Billing"
channel = "Portal"
contact = "https://zon.example/portal"

[audiences.farms]
channels = ["email", "sms"]

[[audiences.farms.routes]]
need = "Grid connection"
channel = "Phone"
contact = "0800 5678"
hours = "Mon-Fri"

[[audiences.farms.routes]]
need = { en = "Power cut", nl = "Stroomuitval" }
channel = "Phone"
contact = "0800 1234"
hours = "24/7"
"""


@pytest.fixture
def custom_plan_file(tmp_path: Path) -> Path:
    path = tmp_path / "plan.toml"
    path.write_text(CUSTOM_PLAN, encoding="utf-8")
    return path


@pytest.fixture
def custom_renderer(make_app: Callable[..., Flask], custom_plan_file: Path) -> Renderer:
    app = make_app(PLAN=str(custom_plan_file))
    return app.extensions["broadcaster"].renderer


# --- SMS ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("audiences", "locale", "translations", "expected"),
    [
        (
            ["consumers"],
            "en",
            {},
            f"{SMS_HEAD} Power outage. We are working on it.{TAIL_CONSUMERS_EN}",
        ),
        (
            ["consumers"],
            "nl",
            TRANSLATIONS,
            f"{ORG}: Wordt onderzocht: Stroomstoring. We werken eraan.{TAIL_CONSUMERS_NL}",
        ),
        # No nl translation: English text, English route label.
        (
            ["consumers"],
            "nl",
            {},
            f"{SMS_HEAD} Power outage. We are working on it.{TAIL_CONSUMERS_EN}",
        ),
        (["business"], "en", {}, f"{SMS_HEAD} Power outage. We are working on it.{TAIL_BUSINESS}"),
        (["staff"], "en", {}, f"{SMS_HEAD} Power outage. We are working on it.{TAIL_STAFF}"),
        ([], "en", {}, f"{SMS_HEAD} Power outage. We are working on it.{TAIL_NO_ROUTE}"),
    ],
)
def test_sms_exact_text(
    renderer: Renderer,
    audiences: list[str],
    locale: str,
    translations: dict[str, Any],
    expected: str,
) -> None:
    rendering = renderer.render("sms", announcement(translations=translations), audiences, locale)
    assert rendering.content == {"text": expected, "announcement_id": "ann_1"}
    assert rendering.measures == {
        "encoding": "GSM-7",
        "segments": 1,
        "units": len(expected),
        "chars": len(expected),
        "max_segments": 2,
        "cut": False,
        "left_out": [],
        "shortened": [],
    }


@pytest.mark.parametrize(
    ("body", "encoding", "extra_units"),
    [
        ("Refund: €5 [max] per {home}.", "GSM-7", 5),  # escape + char: two septets each
        ("Storm ⚡ and 🌩 tonight.", "UCS-2", 1),  # 🌩 is outside the BMP: a surrogate pair
    ],
)
def test_sms_units_and_chars_differ_for_wide_characters(
    renderer: Renderer, body: str, encoding: str, extra_units: int
) -> None:
    rendering = renderer.render("sms", announcement(body=body), [], "en")
    text = rendering.content["text"]
    assert text == f"{SMS_HEAD} Power outage. {body}{TAIL_NO_ROUTE}"
    assert rendering.measures["encoding"] == encoding
    assert rendering.measures["chars"] == len(text)
    assert rendering.measures["units"] == len(text) + extra_units == sms_cost(text).units
    assert rendering.measures["segments"] == sms_cost(text).segments


def test_sms_body_whitespace_is_collapsed_to_one_line(renderer: Renderer) -> None:
    ann = announcement(body="  First line.\n\nSecond\tline.\r\n")
    text = renderer.render("sms", ann, ["consumers"], "en").content["text"]
    assert text == f"{SMS_HEAD} Power outage. First line. Second line.{TAIL_CONSUMERS_EN}"


@pytest.mark.parametrize(
    ("locale", "title", "body", "encoding"),
    [
        ("da", "Strømsvigt i Århus", "Vi arbejder på sagen. Æbler, øl og ål er sikre.", "GSM-7"),
        (
            "sv",
            "Strömavbrott i Göteborg",
            "Vi åtgärdar felet. ÄNDRING: Östra delen först.",
            "GSM-7",
        ),
        ("nl", "Storing", "De schade is geëvalueerd.", "UCS-2"),
        ("nl", "Klanten geïnformeerd", "Meer volgt.", "UCS-2"),  # in the title
        ("nl", "Storing in het café", "Het café en de crèche zijn weer open.", "GSM-7"),
        ("nl", "Één storing", "Alle wijken zijn weer aangesloten.", "GSM-7"),
    ],
)
def test_sms_encoding_of_local_letters(
    renderer: Renderer, locale: str, title: str, body: str, encoding: str
) -> None:
    ann = announcement(translations={locale: {"title": title, "body": body}})
    # No route: in UCS-2 two segments hold 134 units, and the whole body must fit here.
    rendering = renderer.render("sms", ann, [], locale)
    text = rendering.content["text"]
    assert rendering.locale == locale
    assert text.startswith(f"{ORG}: {INVESTIGATING[locale]}: {title}. {body} ")
    assert rendering.measures["encoding"] == encoding == sms_cost(text).encoding
    assert rendering.measures["units"] == sms_cost(text).units
    assert rendering.measures["segments"] == sms_cost(text).segments
    assert rendering.measures["cut"] is False


LONG_EN = (
    "A fault in the main substation has cut power to the northern districts. Engineers are "
    "on site and expect to restore supply within four hours; hospitals run on backup power. "
    "Please keep freezers closed, unplug sensitive equipment and check on elderly neighbours. "
    "We will send another update as soon as we know more about the cause and the timeline."
)
LONG_NL = (
    "Door een storing in het hoofdstation is de stroom in de noordelijke wijken uitgevallen. "
    "Monteurs zijn ter plaatse; klanten worden geïnformeerd zodra de oorzaak is geëvalueerd. "
    "Houd vriezers gesloten en haal gevoelige apparatuur uit het stopcontact."
)


@pytest.mark.parametrize(
    ("locale", "translations", "body", "tail"),
    [
        ("en", {}, LONG_EN, TAIL_CONSUMERS_EN),
        (
            "nl",
            {"nl": {"title": "Stroomstoring", "body": LONG_NL}},
            LONG_NL,
            TAIL_CONSUMERS_NL,
        ),
    ],
)
def test_sms_long_body_keeps_whole_sentences_within_the_plan_cap(
    renderer: Renderer,
    locale: str,
    translations: dict[str, Any],
    body: str,
    tail: str,
) -> None:
    ann = announcement(body=LONG_EN, translations=translations)
    rendering = renderer.render("sms", ann, ["consumers"], locale)
    text = rendering.content["text"]
    title = translations[locale]["title"] if translations else ann.title
    head = f"{ORG}: {INVESTIGATING[locale]}: {title}. "
    assert sms_cost(head + body + tail).segments > 2  # the whole text would not fit
    assert renderer.plan.sms_max_segments == 2
    # Route and status link are kept whole at the end; the body lost its last sentences.
    assert text.startswith(head)
    assert text.endswith(tail)
    kept = text[len(head) : -len(tail)]
    assert body.startswith(kept) and kept.endswith(".")
    assert body[len(kept)] == " "  # a sentence boundary
    # The most sentences that fit: one more would need a third segment.
    next_sentence = re.match(r" [^.]*\.", body[len(kept) :])
    assert next_sentence
    assert sms_cost(head + kept + next_sentence.group() + tail).segments > 2
    cost = sms_cost(text)
    assert rendering.measures == {
        "encoding": cost.encoding,
        "segments": cost.segments,
        "units": cost.units,
        "chars": len(text),
        "max_segments": 2,
        "cut": True,
        "left_out": [],
        "shortened": ["body"],  # later sentences left out
    }
    assert cost.segments <= 2


def test_sms_segment_cap_comes_from_the_plan(custom_renderer: Renderer) -> None:
    rendering = custom_renderer.render("sms", announcement(body=LONG_EN), ["residents"], "en")
    text = rendering.content["text"]
    assert text.startswith("Zon & Wind: Investigating: Power outage. A fault in the main")
    assert text.endswith(f"{ELLIPSIS_GSM} Power cut: 0800 1234 {STATUS_URL}")
    assert sms_cost(text).segments == 1
    assert rendering.measures["max_segments"] == 1
    assert rendering.measures["segments"] == 1
    assert rendering.measures["cut"] is True


BOUNDARY_EN = (None, ["consumers"], f"{SMS_HEAD} Power outage. ", TAIL_CONSUMERS_EN)
# Head and link alone are longer than 70 units in UCS-2: the Dutch cases are multipart only.
BOUNDARY_NL = (
    "Storing geëvalueerd",
    [],
    f"{ORG}: Wordt onderzocht: Storing geëvalueerd. ",
    TAIL_NO_ROUTE,
)


def _render_sms_of_length(
    renderer: Renderer, total: int, locale: str, case: tuple[Any, ...]
) -> tuple[str, str, Any]:
    """Render an SMS whose full text ``head + body + tail`` is exactly ``total`` units."""
    title, audiences, head, tail = case
    body = filler(total - sms_cost(head + tail).units)
    if title is None:
        ann = announcement(body=body)
    else:
        ann = announcement(translations={locale: {"title": title, "body": body}})
    full = head + body + tail
    assert sms_cost(full).units == total
    return body, full, renderer.render("sms", ann, audiences, locale)


@pytest.mark.parametrize(
    ("total", "locale", "case", "encoding", "segments"),
    [
        (160, "en", BOUNDARY_EN, "GSM-7", 1),
        (161, "en", BOUNDARY_EN, "GSM-7", 2),
        (306, "en", BOUNDARY_EN, "GSM-7", 2),  # 2 × 153: the most two parts hold
        (134, "nl", BOUNDARY_NL, "UCS-2", 2),  # 2 × 67
    ],
)
def test_sms_segment_boundaries(
    renderer: Renderer,
    total: int,
    locale: str,
    case: tuple[Any, ...],
    encoding: str,
    segments: int,
) -> None:
    _, full, rendering = _render_sms_of_length(renderer, total, locale, case)
    assert rendering.content["text"] == full  # nothing was cut: two segments are allowed
    assert rendering.measures == {
        "encoding": encoding,
        "segments": segments,
        "units": total,
        "chars": total,
        "max_segments": 2,
        "cut": False,
        "left_out": [],
        "shortened": [],
    }
    cost = sms_cost(full)
    assert (cost.encoding, cost.segments) == (encoding, segments)


@pytest.mark.parametrize(
    ("total", "locale", "case"),
    [(307, "en", BOUNDARY_EN), (135, "nl", BOUNDARY_NL)],
)
def test_sms_one_unit_over_two_segments_is_cut(
    renderer: Renderer, total: int, locale: str, case: tuple[Any, ...]
) -> None:
    body, full, rendering = _render_sms_of_length(renderer, total, locale, case)
    text = rendering.content["text"]
    head, tail = case[2], case[3]
    assert sms_cost(full).segments == 3
    assert text.startswith(head) and text.endswith(tail)
    assert len(text) < len(full)
    assert body[: len(text) - len(head) - len(tail) - 3] in text
    assert rendering.measures["cut"] is True
    assert rendering.measures["segments"] == sms_cost(text).segments == 2


# --- Languages ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subscriber_locale", "translations", "language", "title", "body"),
    [
        ("en", TRANSLATIONS, "en", "Power outage", "We are working on it."),
        ("nl", TRANSLATIONS, "nl", "Stroomstoring", "We werken eraan."),
        ("da", TRANSLATIONS, "da", "Strømsvigt", "Vi arbejder på sagen."),
        ("sv", TRANSLATIONS, "sv", "Strömavbrott", "Vi arbetar på det."),
        # No translation in the subscriber's language: the English text and English strings.
        ("da", {"nl": TRANSLATIONS["nl"]}, "en", "Power outage", "We are working on it."),
        ("nl", {}, "en", "Power outage", "We are working on it."),
        ("sv", {"da": TRANSLATIONS["da"]}, "en", "Power outage", "We are working on it."),
    ],
)
def test_email_language_follows_the_translation(
    renderer: Renderer,
    subscriber_locale: str,
    translations: dict[str, Any],
    language: str,
    title: str,
    body: str,
) -> None:
    rendering = renderer.render(
        "email", announcement(translations=translations), ["consumers"], subscriber_locale
    )
    assert rendering.locale == language
    content = rendering.content
    assert content["subject"] == f"{ORG}: {title}"
    for part in ("text", "html"):
        assert REACH[language] in content[part]
        assert UNSUBSCRIBE_TEXT[language] in content[part] or part == "text"
        assert body in content[part]
        for other, words in REACH.items():
            if other != language:
                assert words not in content[part]
    assert content["text"].startswith(f"{title}\n{'=' * len(title)}\n\n{body}\n")
    assert f'<html lang="{language}">' in content["html"]
    assert f'<h1 style="font-size: 1.4em">{title}</h1>' in content["html"]


@pytest.mark.parametrize(
    ("subscriber_locale", "translations", "label", "channel"),
    [
        ("en", TRANSLATIONS, "Technical problem", "Live chat"),
        ("nl", TRANSLATIONS, "Technisch probleem", "Livechat"),
        ("nl", {}, "Technical problem", "Live chat"),  # English text → English plan texts
        ("da", TRANSLATIONS, "Teknisk problem", "Livechat"),
        ("sv", TRANSLATIONS, "Tekniskt problem", "Livechatt"),
    ],
)
def test_route_texts_follow_the_language(
    renderer: Renderer,
    subscriber_locale: str,
    translations: dict[str, Any],
    label: str,
    channel: str,
) -> None:
    ann = announcement(translations=translations)
    labels = {"Technical problem", "Technisch probleem", "Teknisk problem", "Tekniskt problem"}
    sms = renderer.render("sms", ann, ["consumers"], subscriber_locale).content["text"]
    assert sms.endswith(f" {label}: {CHAT} {STATUS_URL}")
    email = renderer.render("email", ann, ["consumers"], subscriber_locale).content
    assert f"- {label}: {channel}, {CHAT} (24/7)" in email["text"]
    assert f"<strong>{label}</strong>" in email["html"]
    for part in (sms, email["text"], email["html"]):
        assert not any(word in part for word in labels - {label})


def test_nl_email_text_in_full(renderer: Renderer) -> None:
    ann = announcement(
        translations={"nl": {"title": "Stroomstoring", "body": "Eerste alinea.\n\nTweede."}}
    )
    text = renderer.render("email", ann, ["consumers"], "nl").content["text"]
    # The year shows only when the time is not from this year (rendering/clock.py).
    day = "23 nov" if time.gmtime().tm_year == 2026 else "23 nov 2026"
    assert text == (
        "Stroomstoring\n"
        "=============\n"
        "\n"
        "Eerste alinea.\n"
        "\n"
        "Tweede.\n"
        "\n"
        "Status: Wordt onderzocht · Ernst: Kritiek · "
        f"Bijgewerkt: {day}, 21:07\n"
        "Alle tijden in Midden-Europese tijd.\n"
        f"Updates volgen: {STATUS_URL}\n"
        "\n"
        "Zo bereikt u ons met uw hulpvraag:\n"
        f"- Technisch probleem: Livechat, {CHAT} (24/7)\n"
        "- Facturen: Klantportaal, https://acme.example/portal (24/7)\n"
        "- Noodgeval: Telefoon, +31 20 123 4567 (24/7)\n"
        "\n"
        "--\n"
        "Acme Energy\n"
        "U ontvangt dit bericht omdat u zich hebt aangemeld voor updates van Acme Energy.\n"
        f"Afmelden: {UNSUBSCRIBE}"
    )


# --- Email ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "subject"),
    [
        ("Power outage", "Acme Energy: Power outage"),
        ("x" * (SUBJECT_MAX - len("Acme Energy: ")), "Acme Energy: " + "x" * 65),  # exactly 78
        # Newlines and other line breaks never reach the header: no header injection.
        ("Outage\r\nBcc: victim@example.com", "Acme Energy: Outage Bcc: victim@example.com"),
        ("Outage\nX-Spam: yes", "Acme Energy: Outage X-Spam: yes"),
        ("Outage\rX-Spam: yes", "Acme Energy: Outage X-Spam: yes"),
        ("\n Outage \t in\u2028the\x85north\x0b\x0c ", "Acme Energy: Outage in the north"),
    ],
)
def test_email_subject(renderer: Renderer, title: str, subject: str) -> None:
    rendering = renderer.render("email", announcement(title=title), ["consumers"], "en")
    assert rendering.content["subject"] == subject
    assert not re.search(r"[\r\n\x0b\x0c\x1c-\x1f\x85\u2028\u2029]", rendering.content["subject"])
    assert rendering.measures == {
        "subject_length": len(subject),
        "subject_limit": SUBJECT_MAX,
        "cut": False,
    }


@pytest.mark.parametrize(
    "title",
    [
        filler(SUBJECT_MAX - len("Acme Energy: ") + 1),  # 79: one character too many
        "Major power outage in the northern districts of Amsterdam, Zaandam and Purmerend "
        "after a fault in the main substation",
        "Major power outage\r\nBcc: victim@example.com in the northern districts of Amsterdam "
        "and Zaandam",
    ],
)
def test_email_long_subject_is_cut_with_an_ellipsis(renderer: Renderer, title: str) -> None:
    rendering = renderer.render("email", announcement(title=title), ["consumers"], "en")
    subject = rendering.content["subject"]
    assert len(subject) <= SUBJECT_MAX
    assert subject.endswith(ELLIPSIS)
    assert "\n" not in subject and "\r" not in subject
    one_line_title = " ".join(title.split())
    stem = subject[: -len(ELLIPSIS)]
    full = f"Acme Energy: {one_line_title}"
    assert full.startswith(stem) and full[len(stem)] in " ,.;:-"  # between words
    # The longest such cut: one word more would not fit.
    next_word = re.match(r"[ ,.;:-]*\S+", full[len(stem) :])
    assert next_word
    assert len(full[: len(stem) + next_word.end()].rstrip(",.;:-") + ELLIPSIS) > SUBJECT_MAX
    assert rendering.measures == {
        "subject_length": len(subject),
        "subject_limit": SUBJECT_MAX,
        "cut": True,
    }
    # The text part keeps the whole title.
    assert rendering.content["text"].startswith(title + "\n")


def test_email_subject_keeps_part_of_a_title_without_spaces(renderer: Renderer) -> None:
    title = "https://status.acme.example/incidents/2026-11-23/power-outage-northern-districts"
    subject = renderer.render("email", announcement(title=title), ["consumers"], "en").content[
        "subject"
    ]
    assert len(subject) <= SUBJECT_MAX
    assert subject.endswith(ELLIPSIS)
    assert subject.startswith("Acme Energy: https://status.acme.example/")


XSS_TITLE = "<script>alert(1)</script>"
XSS_BODY = 'Click "onmouseover="alert(1)" x=\'y\' & <img src=x onerror=alert(2)>'


@pytest.mark.parametrize(
    ("locale", "translations"),
    [
        ("en", {}),
        ("nl", {"nl": {"title": XSS_TITLE, "body": XSS_BODY}}),
    ],
)
def test_email_html_escapes_title_and_body(
    renderer: Renderer, locale: str, translations: dict[str, Any]
) -> None:
    ann = announcement(title=XSS_TITLE, body=XSS_BODY, translations=translations)
    content = renderer.render("email", ann, ["consumers"], locale).content
    html = content["html"]
    for raw in ("<script>", "</script>", '"onmouseover=', "<img", "x='y'"):
        assert raw not in html
    escaped_title = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert f"<title>{escaped_title}</title>" in html
    assert f'<h1 style="font-size: 1.4em">{escaped_title}</h1>' in html
    assert (
        "<p>Click &#34;onmouseover=&#34;alert(1)&#34; x=&#39;y&#39; &amp; "
        "&lt;img src=x onerror=alert(2)&gt;</p>"
    ) in html
    # The text part is plain text: the same characters, not entities.
    text = content["text"]
    assert text.startswith(f"{XSS_TITLE}\n{'=' * len(XSS_TITLE)}\n\n{XSS_BODY}\n")
    assert "&lt;" not in text and "&#34;" not in text and "&amp;" not in text
    assert content["subject"] == f"{ORG}: {XSS_TITLE}"


def test_email_html_escapes_the_organisation_in_translated_strings(
    custom_renderer: Renderer,
) -> None:
    content = custom_renderer.render("email", announcement(), ["residents"], "en").content
    assert "Zon &amp; Wind · Investigating · Critical" in content["html"]
    assert "subscribed to updates from Zon &amp; Wind." in content["html"]
    assert "Zon & Wind" not in content["html"]
    assert "subscribed to updates from Zon & Wind." in content["text"]
    assert content["subject"] == "Zon & Wind: Power outage"


def _body_paragraphs(html: str) -> list[str]:
    """The ``<p>`` elements between the heading and the "Updated" line."""
    section = html.split("</h1>", 1)[1].split('<p style="color: #555">', 1)[0]
    return re.findall(r"<p>(.*?)</p>", section, flags=re.S)


@pytest.mark.parametrize(
    ("body", "paragraphs"),
    [
        ("One paragraph only.", ["One paragraph only."]),
        ("First.\n\nSecond.", ["First.", "Second."]),
        (
            "First.\n\nSecond line one\nline two.\n\nThird.",
            ["First.", "Second line one\nline two.", "Third."],
        ),
        ("A <b>\n\nB & C", ["A &lt;b&gt;", "B &amp; C"]),
        pytest.param(
            "First.\r\n\r\nSecond.",
            ["First.", "Second."],
        ),
    ],
)
def test_email_html_paragraphs_split_on_blank_lines(
    renderer: Renderer, body: str, paragraphs: list[str]
) -> None:
    html = renderer.render("email", announcement(body=body), ["consumers"], "en").content["html"]
    assert _body_paragraphs(html) == paragraphs


ROUTE_ROWS = {
    "Technical problem": ("Live chat", CHAT, "24/7"),
    "Billing": ("Customer portal", "https://acme.example/portal", "24/7"),
    "Emergency": ("Phone", "+31 20 123 4567", "24/7"),
    "Account manager": ("Phone", "+31 20 765 4321", "Mon-Fri 08:00-18:00"),
    "Incident room": ("Chat", "https://acme.example/incident-room", "24/7"),
}


def _text_routes(text: str) -> list[str]:
    section = text.split("How to reach us for your need:\n", 1)[1].split("\n\n--", 1)[0]
    return section.splitlines()


def _html_routes(html: str) -> list[str]:
    return re.findall(r"<tr><td[^>]*><strong>(.*?)</strong>", html)


@pytest.mark.parametrize(
    ("audiences", "needs"),
    [
        (["consumers"], ["Technical problem", "Billing", "Emergency"]),
        (["business"], ["Account manager"]),
        (
            ["consumers", "business"],
            ["Technical problem", "Billing", "Emergency", "Account manager"],
        ),
        (
            ["consumers", "business", "staff"],
            ["Technical problem", "Billing", "Emergency", "Account manager", "Incident room"],
        ),
        (["consumers", "consumers"], ["Technical problem", "Billing", "Emergency"]),
    ],
)
def test_email_routes_of_every_audience(
    renderer: Renderer, audiences: list[str], needs: list[str]
) -> None:
    content = renderer.render("email", announcement(), audiences, "en").content
    expected_lines = []
    for need in needs:
        channel, contact, hours = ROUTE_ROWS[need]
        expected_lines.append(f"- {need}: {channel}, {contact} ({hours})")
        # Phone contacts are tel: links (E.164), web contacts links (tests/test_phones.py).
        href, kind = (
            (contact, "web")
            if contact.startswith("http")
            else ("tel:" + re.sub(r"[^+0-9]", "", contact), "tel")
        )
        assert (
            f"<strong>{need}</strong><br>\n      {channel}: "
            f'<a href="{href}" data-contact="{kind}">{contact}</a><br>\n'
            f'      <span style="color: #555">Hours: {hours}</span></td></tr>'
        ) in content["html"]
    assert _text_routes(content["text"]) == expected_lines
    assert _html_routes(content["html"]) == needs


def test_email_without_routes_has_no_routes_section(renderer: Renderer) -> None:
    content = renderer.render("email", announcement(), [], "en").content
    assert REACH["en"] not in content["text"]
    assert REACH["en"] not in content["html"]
    assert "<table" not in content["html"]


@pytest.mark.parametrize(
    ("locale", "lines"),
    [
        (
            "en",
            [
                "- Power cut: Phone, 0800 1234 (24/7)",
                "- Billing: Portal, https://zon.example/portal",
                "- Grid connection: Phone, 0800 5678 (Mon-Fri)",
            ],
        ),
        (
            "nl",
            [
                "- Stroomuitval: Phone, 0800 1234 (24/7)",
                "- Billing: Portal, https://zon.example/portal",
                "- Grid connection: Phone, 0800 5678 (Mon-Fri)",
            ],
        ),
    ],
)
def test_email_shared_route_is_listed_once(
    custom_renderer: Renderer, locale: str, lines: list[str]
) -> None:
    ann = announcement(translations={"nl": TRANSLATIONS["nl"]})
    content = custom_renderer.render("email", ann, ["residents", "farms"], locale).content
    listed = [line for line in content["text"].splitlines() if line.startswith("- ")]
    assert listed == lines
    needs = [line[2:].split(":", 1)[0] for line in lines]
    assert _html_routes(content["html"]) == needs


@pytest.mark.parametrize("locale", ["en", "nl", "da", "sv"])
def test_email_has_the_unsubscribe_placeholder_in_both_parts(
    renderer: Renderer, locale: str
) -> None:
    ann = announcement(translations=TRANSLATIONS)
    content = renderer.render("email", ann, ["consumers"], locale).content
    assert content["text"].count(UNSUBSCRIBE) == 1
    assert content["text"].endswith(f": {UNSUBSCRIBE}")
    assert content["html"].count(UNSUBSCRIBE) == 1
    assert f'<a href="{UNSUBSCRIBE}">{UNSUBSCRIBE_TEXT[locale]}</a>' in content["html"]
    assert content["announcement_id"] == "ann_1"


@pytest.mark.parametrize("locale", ["en", "nl", "da", "sv"])
@pytest.mark.parametrize("corrects", ["ann_0", None])
def test_email_correction_line_is_translated(
    renderer: Renderer, locale: str, corrects: str | None
) -> None:
    ann = announcement(translations=TRANSLATIONS, corrects=corrects)
    content = renderer.render("email", ann, ["consumers"], locale).content
    word, sentence = CORRECTION[locale]
    title = TRANSLATIONS[locale]["title"] if locale != "en" else "Power outage"
    if corrects:
        assert content["text"].startswith(f"{word}: {sentence}\n\n{title}\n")
        assert f"<strong>{word}:</strong> {sentence}</p>" in content["html"]
    else:
        assert content["text"].startswith(f"{title}\n")
        for part in ("text", "html"):
            assert sentence not in content[part]
            assert f"{word}:" not in content[part]


@pytest.mark.parametrize(
    ("locale", "severity", "status", "severity_label", "status_label"),
    [
        ("en", "critical", "investigating", "Critical", "Investigating"),
        ("en", "info", "resolved", "Info", "Resolved"),
        ("nl", "critical", "investigating", "Kritiek", "Wordt onderzocht"),
        ("nl", "major", "identified", "Ernstig", "Oorzaak gevonden"),
        ("nl", "minor", "monitoring", "Gering", "Onder observatie"),
        ("nl", "info", "resolved", "Info", "Opgelost"),
        ("da", "major", "identified", "Alvorlig", "Årsag fundet"),
        ("sv", "minor", "monitoring", "Mindre", "Övervakas"),
    ],
)
def test_email_severity_and_status_labels_are_translated(
    renderer: Renderer,
    locale: str,
    severity: str,
    status: str,
    severity_label: str,
    status_label: str,
) -> None:
    ann = announcement(severity=severity, status=status, translations=TRANSLATIONS)
    content = renderer.render("email", ann, ["consumers"], locale).content
    status_word, severity_word = STATUS_SEVERITY_WORDS[locale]
    assert (
        f"{status_word}: {status_label} · {severity_word}: {severity_label} · " in content["text"]
    )
    assert f"{ORG} · {status_label} · {severity_label}\n" in content["html"]


WHOLE = {"cut": False, "left_out": [], "shortened": []}
SHORTER_BODY = {"cut": True, "left_out": [], "shortened": ["body"]}

# --- Social ---------------------------------------------------------------------------------

SOCIAL_HEAD = f"{ORG} · Investigating: Power outage. "
EMOJI_BODY = "Storm ⚡ damage 👨‍👩‍👧‍👦 families 🏳️‍🌈 affected. " * 40
URL_BODY = "Read https://acme.example/updates/2026/11/23/storm-damage-northern-districts now. " * 20


ROUTE_EN = f"Technical problem: {CHAT}"


@pytest.mark.parametrize("network", ["mastodon", "bluesky"])
@pytest.mark.parametrize("body", [" ".join([LONG_EN] * 3), EMOJI_BODY, URL_BODY])
def test_social_long_posts_fit_and_keep_route_and_link(
    renderer: Renderer, network: str, body: str
) -> None:
    rendering = renderer.render(network, announcement(body=body), ["consumers"], "en")
    post = rendering.content["text"]
    measure = mastodon_length if network == "mastodon" else graphemes
    limit = SOCIAL_LIMITS[network]
    assert measure(post) <= limit
    end = f" {ROUTE_EN}\n\n{STATUS_URL}"
    assert post.startswith(SOCIAL_HEAD) and post.endswith(end)
    kept = post[len(SOCIAL_HEAD) : -len(end)]
    # Whole sentences from the start of the body, as many as fit.
    assert " ".join(body.split()).startswith(kept) and kept.endswith(".")
    assert measure(post) > limit - 110  # shortened, not emptied
    assert rendering.measures == {"length": measure(post), "limit": limit, **SHORTER_BODY}


@pytest.mark.parametrize(
    ("network", "locale", "expected"),
    [
        ("mastodon", "en", f"{SOCIAL_HEAD}We are working on it. {ROUTE_EN}\n\n{STATUS_URL}"),
        ("bluesky", "en", f"{SOCIAL_HEAD}We are working on it. {ROUTE_EN}\n\n{STATUS_URL}"),
        (
            "mastodon",
            "nl",
            f"{ORG} · Wordt onderzocht: Stroomstoring. We werken eraan. "
            f"Technisch probleem: {CHAT}\n\n{STATUS_URL}",
        ),
        (
            "bluesky",
            "da",
            f"{ORG} · Undersøges: Strømsvigt. Vi arbejder på sagen. "
            f"Teknisk problem: {CHAT}\n\n{STATUS_URL}",
        ),
    ],
)
def test_social_short_post_is_exact(
    renderer: Renderer, network: str, locale: str, expected: str
) -> None:
    ann = announcement(translations=TRANSLATIONS, body="We are\n\nworking on it.")
    rendering = renderer.render(network, ann, ["consumers"], locale)
    assert rendering.content == {"text": expected}
    assert rendering.locale == locale
    assert rendering.measures["cut"] is False


# --- Banner ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "body", "expected"),
    [
        (
            "en",
            "We are\nworking on it.",
            f"Investigating: Power outage. We are working on it. {ROUTE_EN}",
        ),
        (
            "nl",
            "",
            f"Wordt onderzocht: Stroomstoring. We werken eraan. Technisch probleem: {CHAT}",
        ),
    ],
)
def test_banner_short_line(renderer: Renderer, locale: str, body: str, expected: str) -> None:
    ann = announcement(body=body or "unused", translations={"nl": TRANSLATIONS["nl"]})
    rendering = renderer.render("banner", ann, ["consumers"], locale)
    assert rendering.content == {
        "title": ann.title if locale == "en" else "Stroomstoring",
        "text": expected,
        "link": STATUS_URL,
    }
    assert rendering.measures == {"length": len(expected), "limit": BANNER_MAX, **WHOLE}


@pytest.mark.parametrize(
    "body",
    [LONG_EN, "Line one.\nLine two.\r\n\r\n" * 30, EMOJI_BODY],
)
def test_banner_long_body_is_one_short_line(renderer: Renderer, body: str) -> None:
    rendering = renderer.render("banner", announcement(body=body), ["consumers"], "en")
    line = rendering.content["text"]
    assert len(line) <= BANNER_MAX
    assert not re.search(r"[\r\n\u2028\u2029]", line)
    assert line.startswith("Investigating: Power outage. ")
    assert line.endswith(f". {ROUTE_EN}")  # whole sentences, then the route
    assert len(line) > BANNER_MAX - 60
    assert rendering.content["link"] == STATUS_URL
    assert STATUS_URL not in line
    assert rendering.measures == {"length": len(line), "limit": BANNER_MAX, **SHORTER_BODY}


# --- routes_for -----------------------------------------------------------------------------


def _needs(routes: list[dict[str, str]]) -> list[str]:
    return [route["need"] for route in routes]


@pytest.mark.parametrize(
    ("audiences", "locale", "needs"),
    [
        (["consumers"], "en", ["Technical problem", "Billing", "Emergency"]),
        (["consumers"], "nl", ["Technisch probleem", "Facturen", "Noodgeval"]),
        (["consumers"], "da", ["Teknisk problem", "Fakturering", "Nødsituation"]),
        (["staff"], "en", ["Incident room"]),
        (
            ["consumers", "business", "staff"],
            "en",
            ["Technical problem", "Billing", "Emergency", "Account manager", "Incident room"],
        ),
        (["consumers", "consumers"], "en", ["Technical problem", "Billing", "Emergency"]),
        ([], "en", []),
        pytest.param(
            ["business", "consumers"],  # e.g. sorted by name, as fanout and announcements do
            "en",
            ["Technical problem", "Billing", "Emergency", "Account manager"],
        ),
    ],
)
def test_routes_for_bundled_plan(
    renderer: Renderer, audiences: list[str], locale: str, needs: list[str]
) -> None:
    assert _needs(routes_for(renderer.plan, audiences, locale)) == needs


def test_routes_for_returns_full_route_dicts(renderer: Renderer) -> None:
    assert routes_for(renderer.plan, ["business", "staff"], "nl") == [
        {
            "need": "Accountmanager",
            "channel": "Telefoon",
            "contact": "+31 20 765 4321",
            "hours": "ma-vr 08:00-18:00",
        },
        {
            "need": "Crisisruimte",
            "channel": "Chat",
            "contact": "https://acme.example/incident-room",
            "hours": "24/7",
        },
    ]


@pytest.mark.parametrize(
    ("audiences", "locale", "needs"),
    [
        (["residents", "farms"], "en", ["Power cut", "Billing", "Grid connection"]),
        (["residents", "farms"], "nl", ["Stroomuitval", "Billing", "Grid connection"]),
        (["farms"], "en", ["Grid connection", "Power cut"]),
    ],
)
def test_routes_for_merges_shared_routes_once(
    custom_plan_file: Path, audiences: list[str], locale: str, needs: list[str]
) -> None:
    plan = load_plan(custom_plan_file)
    assert _needs(routes_for(plan, audiences, locale)) == needs


@pytest.mark.parametrize(
    ("title", "sms_start", "banner_start"),
    [
        ("Outage", f"{SMS_HEAD} Outage. ", "Investigating: Outage. "),
        ("Outage.", f"{SMS_HEAD} Outage. ", "Investigating: Outage. "),
        (
            "Is your power out?",
            f"{SMS_HEAD} Is your power out? ",
            "Investigating: Is your power out? ",
        ),
        ("Stop!", f"{SMS_HEAD} Stop! ", "Investigating: Stop! "),
    ],
)
def test_title_ends_one_sentence_without_doubled_punctuation(
    renderer: Renderer, title: str, sms_start: str, banner_start: str
) -> None:
    ann = announcement(title=title, status="investigating")
    assert renderer.render("sms", ann, ["consumers"], "en").content["text"].startswith(sms_start)
    assert (
        renderer.render("banner", ann, ["consumers"], "en").content["text"].startswith(banner_start)
    )
    mastodon = renderer.render("mastodon", ann, ["consumers"], "en").content["text"]
    assert (
        f"{title.rstrip('.')}.." not in mastodon and "?." not in mastodon and "!." not in mastodon
    )
