"""The voice call's texts, composed for listening rather than reading.

A listener cannot click a link, see a bold word or look back at a number. So the spoken
message has no URLs and no markup, times are said the way a person says them (weekday and
month as words, in the reader's language, via Babel) with the zone named once, and phone
numbers are spelled digit by digit in their groups ("0 2 0, 1 2 3, 4 5 6 7"). Like the
short texts (``compose_text``), it is placed most important first within a length that
keeps the call short and the inline TwiML under Twilio's limit; the promise always stays.

Beside the message: the short message for an answering machine, the key-press prompt, and
what the call says after a key (thanks, connecting, goodbye). The number key 2 dials is the
audience's emergency route: ``[audiences.X] emergency_route`` (a need label), else the
first route whose contact is a phone number.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
from babel.dates import format_date, format_skeleton
from babel.dates import format_time as babel_format_time

from broadcaster.domain.announcement import Announcement
from broadcaster.domain.plan import Plan, Route
from broadcaster.rendering import contacts, exercise
from broadcaster.rendering.compose_text import (
    MUST,
    ORGANISATION,
    ROUTE,
    SENTENCES,
    STATUS,
    TITLE,
    WORDS,
    Part,
    compose,
    mentions,
)
from broadcaster.rendering.i18n import gettext_for, resolve

# Characters of the spoken message: about 80 seconds at a calm speaking pace, and read
# twice still well inside Twilio's 4,000-character inline TwiML.
SPOKEN_MAX = 1200
SHORT_MAX = 400  # an answering machine records a minute or so: the gist and the number
CHARS_PER_SECOND = 14  # a calm text-to-speech pace, for the preview's estimate

_TAG = re.compile(r"<[^>]*>")
_URL = re.compile(r"(?i)\b(?:[a-z][a-z0-9+.\-]*://|www\.)\S*")
# Markup a voice would read out or stumble on: what is left of Markdown and HTML.
_MARKUP = re.compile(r"[<>*_#`~|\[\]{}\\^]+")
# Control and invisible format characters, and what XML cannot carry at all (lone
# surrogates, U+FFFE/U+FFFF): the TwiML must stay well-formed whatever the text held.
_CONTROL = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff\ud800-\udfff\ufffe\uffff]"
)
_WHITESPACE = re.compile(r"[ \t]+")
_LOOSE_PUNCTUATION = re.compile(r"[ \t]+([.,;:!?])")
_PLAIN_SPACES = str.maketrans({"\u00a0": " ", "\u202f": " "})


def listenable(text: str) -> str:
    """``text`` without URLs, markup or control characters; paragraphs kept."""
    text = html.unescape(text)
    text = _TAG.sub(" ", text)
    text = _URL.sub(" ", text)
    text = _CONTROL.sub(lambda m: "\n" if m.group() in "\n\r" else " ", text)
    text = _MARKUP.sub(" ", text)
    lines = [_WHITESPACE.sub(" ", line).strip() for line in text.split("\n")]
    # What a removed tag or link leaves before punctuation: "in Utrecht ." → "in Utrecht."
    return _LOOSE_PUNCTUATION.sub(r"\1", "\n".join(lines)).strip()


def spoken_time(ts: float, locale: str, tz: str, now: float | None = None) -> str:
    """``ts`` as said aloud: the time today, else weekday, day and month first, as words."""
    language = resolve(locale)
    zone = ZoneInfo(tz)
    when = datetime.fromtimestamp(ts, zone)
    today = datetime.fromtimestamp(time.time() if now is None else now, zone).date()
    clock = babel_format_time(when, format="short", locale=language)
    if when.date() != today:
        # The weekday in full: CLDR's skeletons with a day name give its abbreviation.
        weekday = format_date(when, "EEEE", locale=language)
        clock = f"{weekday} {format_skeleton('MMMMd', when, locale=language)}, {clock}"
    return clock.translate(_PLAIN_SPACES)


def spelled(contact: str, region: str | None, locale: str) -> str:
    """A phone number digit by digit, in its groups; "" when ``contact`` is not one.

    In the national format when it is a number of the plan's region (what people dial
    there), else international, its "+" said as a word.
    """
    if not contacts.phone_href(contact, region):
        return ""
    number = phonenumbers.parse(contact, region)
    national = bool(region) and phonenumbers.region_code_for_number(number) == region
    written = phonenumbers.format_number(
        number,
        phonenumbers.PhoneNumberFormat.NATIONAL
        if national
        else phonenumbers.PhoneNumberFormat.INTERNATIONAL,
    )
    groups = [" ".join(group) for group in re.findall(r"[0-9]+", written)]
    said = ", ".join(groups)
    return f"{gettext_for(locale)('plus')} {said}" if written.startswith("+") else said


def emergency_route(plan: Plan, audiences: Sequence[str]) -> tuple[Route, str] | None:
    """(the route key 2 dials, its E.164 number) for these audiences, in plan order."""
    for name in (n for n in plan.audiences if n in set(audiences)):
        audience = plan.audiences[name]
        for route in audience.routes:
            need = route.need_for(plan.default_locale, plan.default_locale)
            if audience.emergency_route and need != audience.emergency_route:
                continue
            href = contacts.phone_href(route.contact, plan.default_region)
            if href:
                return route, href.removeprefix("tel:")
    return None


def _route_said(texts: dict[str, str], region: str | None, locale: str) -> str:
    """ "Emergency: phone, 0 2 0, 1 2 3, 4 5 6 7, 24/7." — no web or mail address."""
    pieces = [listenable(texts["channel"])]
    number = spelled(texts["contact"], region, locale)
    if number:
        pieces.append(number)
    if texts.get("hours"):
        pieces.append(listenable(texts["hours"]))
    said = ", ".join(p for p in pieces if p)
    need = listenable(texts["need"])
    return f"{need}: {said}." if need else f"{said}."


def texts(
    plan: Plan,
    announcement: Announcement,
    audiences: Sequence[str],
    ctx: dict[str, Any],
    locale: str,
) -> tuple[dict[str, str], dict[str, Any]]:
    """(the call's content, its measures) from ``Renderer.context`` in ``locale``."""
    _ = ctx["_"]
    region = plan.default_region
    intro = _("This is a message from %(organisation)s.", organisation=plan.organisation)
    if announcement.exercise:
        intro = exercise.prefixed(intro, locale)
    promise = ""
    if announcement.next_update_at:
        when = spoken_time(announcement.next_update_at, locale, plan.timezone)
        promise = f"{_('Next update by')} {when}. {ctx['zone_note']}"
    title = listenable(ctx["headline"])
    status = ""
    if not mentions(ctx["title"], ctx["status_label"]):
        status = ctx["status_label"] + "."
    parts = [
        Part("organisation", intro, MUST),
        Part("status", status, STATUS),
        Part("title", title, TITLE, WORDS),
        Part("body", listenable(ctx["body"]), 5, SENTENCES),
        Part("promise", promise, MUST),
    ]
    parts += [
        Part(f"route {i + 1}", _route_said(route, region, locale), ROUTE)
        for i, route in enumerate(ctx["routes"])
    ]
    spoken = compose([p for p in parts if p.text], lambda s: len(s) <= SPOKEN_MAX)
    found = emergency_route(plan, audiences)
    emergency = ""
    short_parts = [
        Part("organisation", intro, MUST),
        Part("title", title, TITLE, WORDS),
        Part("promise", promise, MUST),
    ]
    if found:
        route, emergency = found
        said = _route_said(route.texts_in(locale, plan.default_locale), region, locale)
        short_parts.append(Part("route", said, ORGANISATION))
    short = compose([p for p in short_parts if p.text], lambda s: len(s) <= SHORT_MAX)
    prompt = _("Press 1 to confirm that you heard this message.")
    if emergency:
        prompt += " " + _("Press 2 to be connected to us.")
    content = {
        "text": spoken.text,
        "short": short.text,
        "prompt": prompt,
        "goodbye": _("Goodbye."),
        "thanks": _("Thank you. We have noted that you heard this message. Goodbye."),
        "connecting": _("We are connecting you now. Please hold."),
        "emergency": emergency,
        "locale": locale,
        "announcement_id": announcement.id,
    }
    measures = {
        "length": len(spoken.text),
        "limit": SPOKEN_MAX,
        "spoken_limit": SPOKEN_MAX,
        # Read twice, then the prompt: what a person listens to before the keys.
        "seconds": round((2 * len(spoken.text) + len(prompt)) / CHARS_PER_SECOND),
        "emergency_route": bool(emergency),
        **spoken.measures(),
    }
    return content, measures
