"""Compose short texts (SMS, social posts, the banner) from parts, most important first.

Cutting the joined text at a channel's limit lost whatever came last: the promised time of
the next update, the route, even the middle of a word. Here a short text is a list of
parts in reading order, each with a priority. The parts are placed most important first,
each only if the text still fits; the body goes in whole sentences. So what a tight limit
drops is always the least important part, and never the promise or the link (priority 0).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import regex

from broadcaster.domain.plan import Plan, Route
from broadcaster.rendering.i18n import N_
from broadcaster.rendering.segments import ELLIPSIS, shorten

# How a part may be fitted when it does not fit whole.
WHOLE = "whole"  # whole or left out (a phone number cut short is worse than none)
WORDS = "words"  # shortened at a word boundary, with an ellipsis
SENTENCES = "sentences"  # whole sentences from the start; the first may be shortened

# Priorities: lower is more important. 0 is always placed, even over the limit, because a
# text without the link or the promise is the failure this module exists to prevent.
MUST = 0
ORGANISATION = 1
TITLE = 2
STATUS = 3
ROUTE = 4
BODY = 5

# A first sentence shortened to fewer words than this says nothing ("A fault…"): leave it out.
MIN_WORDS = 3
# Sentence punctuation (optionally closed by a quote or bracket), whitespace, and a next
# sentence that does not start with a small letter or a digit: "kl. 09:10", "e.g. the"
# and "3. mei" stay one sentence.
_SENTENCE_END = regex.compile(r"(?<=[.!?…])([\"'”’»)\]]?)\s+(?=[^\p{Ll}\p{Nd}])")
_PARAGRAPH = re.compile(r"\n[ \t]*\n")
_WHITESPACE = re.compile(r"\s+")
# What may follow a word-boundary cut: shorten() trims these before the ellipsis.
_BOUNDARY = ",.;:-!?…"


@dataclass(frozen=True)
class Part:
    """One piece of a short text: its words, priority, how it may shrink, what goes before."""

    name: str
    text: str
    priority: int
    fit: str = WHOLE
    sep: str = " "  # put before the part when another part precedes it


@dataclass(frozen=True)
class Composed:
    """The composed text and, by part name, what is in it, what was left out or shortened."""

    text: str
    kept: tuple[str, ...]
    left_out: tuple[str, ...] = ()
    shortened: tuple[str, ...] = ()  # in the text, but not whole (body: not every sentence)

    @property
    def cut(self) -> bool:
        """True when anything was left out or shortened to fit."""
        return bool(self.left_out or self.shortened)

    def measures(self) -> dict[str, Any]:
        """What a Rendering reports about the fit (the preview shows it)."""
        return {"cut": self.cut, "left_out": list(self.left_out), "shortened": list(self.shortened)}


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (line breaks too) as one space."""
    return _WHITESPACE.sub(" ", text).strip()


def sentences(text: str) -> list[str]:
    """The sentences of ``text`` on one line each; a blank line also ends a sentence."""
    found = []
    for paragraph in _PARAGRAPH.split(text.replace("\r\n", "\n").replace("\r", "\n")):
        line = one_line(paragraph)
        start = 0
        for end in _SENTENCE_END.finditer(line):
            found.append(line[start : end.end(1)])  # the closing quote stays with its sentence
            start = end.end()
        found.append(line[start:])
    return [s for s in found if s]


def _words(text: str, fits: Callable[[str], bool], ellipsis: str) -> str:
    """The longest word-boundary prefix of ``text`` + ellipsis that fits; "" if none does."""
    short, _ = shorten(text, fits, ellipsis)
    if not short or short == text:
        return short
    kept = short[: -len(ellipsis)]
    rest = text[len(kept) :]
    # shorten() cuts inside the first word when no whole word fits: never show that.
    return short if not rest or rest[0].isspace() or rest[0] in _BOUNDARY else ""


def compose(
    parts: Sequence[Part], fits: Callable[[str], bool], ellipsis: str = ELLIPSIS
) -> Composed:
    """Place ``parts`` most important first, each only where the text still ``fits``.

    ``parts`` are in reading order; ties in priority go by that order. Priority ``MUST``
    parts are always placed. Returns the text with the parts that made it in.
    """
    placed: dict[int, str] = {}

    def joined(chosen: dict[int, str]) -> str:
        out = ""
        for i in sorted(chosen):
            out = out + parts[i].sep + chosen[i] if out else chosen[i]
        return out

    def text_with(index: int) -> Callable[[str], bool]:
        return lambda value: fits(joined({**placed, index: value} if value else placed))

    shortened: set[int] = set()
    for i in sorted(range(len(parts)), key=lambda i: (parts[i].priority, i)):
        part = parts[i]
        if part.fit == SENTENCES:
            value, shortened_body = _sentences_that_fit(part.text, text_with(i), ellipsis)
            was_cut = shortened_body
        else:
            value, was_cut = one_line(part.text), False
            if value and part.priority != MUST and not text_with(i)(value):
                was_cut = True
                value = _words(value, text_with(i), ellipsis) if part.fit == WORDS else ""
        if value:
            placed[i] = value
        if was_cut:
            shortened.add(i)
    return Composed(
        joined(placed),
        kept=tuple(parts[i].name for i in sorted(placed)),
        left_out=tuple(p.name for i, p in enumerate(parts) if i in shortened and i not in placed),
        shortened=tuple(p.name for i, p in enumerate(parts) if i in shortened and i in placed),
    )


def _sentences_that_fit(body: str, fits: Callable[[str], bool], ellipsis: str) -> tuple[str, bool]:
    """(the body's leading whole sentences that fit, whether any were left out).

    When not even the first sentence fits it is shortened at a word boundary instead.
    """
    found = sentences(body)
    taken: list[str] = []
    for sentence in found:
        if not fits(" ".join([*taken, sentence])):
            break
        taken.append(sentence)
    if taken or not found:
        return " ".join(taken), len(taken) < len(found)
    short = _words(found[0], fits, ellipsis)
    return (short if len(short.split()) >= MIN_WORDS else ""), True


def mentions(title: str, word: str) -> bool:
    """True if ``title`` already contains ``word`` as a word ("Resolved: …", "… opgelost")."""
    pattern = r"(?<!\w)" + re.escape(word.casefold()) + r"(?!\w)"
    return bool(word) and re.search(pattern, title.casefold()) is not None


def route_for(
    plan: Plan, audiences: Sequence[str], locale: str, need: str | None = None
) -> dict[str, str] | None:
    """The one route a short text shows: need tag match > ``primary_route`` > first route.

    Needs are matched by their label in the plan's default locale (the stable key the plan
    and the announcement API use); labels are returned in ``locale``. Audiences count in
    plan order, like ``routes_for``.
    """
    wanted = [plan.audiences[n] for n in plan.audiences if n in set(audiences)]
    routes = [route for audience in wanted for route in audience.routes]

    def key(route: Route) -> str:
        return route.need_for(plan.default_locale, plan.default_locale)

    chosen = next((r for r in routes if need and key(r) == need), None)
    if chosen is None:
        primary = ((a, a.primary_route) for a in wanted if a.primary_route)
        chosen = next(
            (r for a, p in primary for r in a.routes if key(r) == p),
            routes[0] if routes else None,
        )
    if chosen is None:
        return None
    return chosen.texts_in(locale, plan.default_locale)


def announcement_parts(
    ctx: dict[str, Any], organisation: str = "", link: str = "", link_sep: str = " "
) -> list[Part]:
    """The parts of a short text from ``Renderer.context``, in reading order.

    ``organisation`` is its prefix with punctuation ("Acme Energy:"); no prefix, no link
    when empty. The status word is left out when the title already says it.
    """
    _ = ctx["_"]
    parts = [Part("organisation", organisation, ORGANISATION)] if organisation else []
    if not mentions(ctx["title"], ctx["status_label"]):
        parts.append(Part("status", ctx["status_label"] + ":", STATUS))
    parts += [
        Part("title", ctx["headline"], TITLE, WORDS),
        Part("body", ctx["body"], BODY, SENTENCES),
    ]
    if ctx["next_update"]:
        parts.append(Part("promise", f"{_('Next update by')}: {ctx['next_update']}.", MUST))
    if ctx["route"]:
        parts.append(Part("route", f"{ctx['route']['need']}: {ctx['route']['contact']}", ROUTE))
    if link:
        parts.append(Part("link", link, MUST, sep=link_sep))
    return parts


# What a short text to an audience that must confirm asks (domain/confirmations.py reads
# the reply); always placed, like the link: it is what the message is for.
CONFIRM_ASK = N_("Reply 1 or OK to confirm, 2 or HELP if you need us.")


def with_confirm(parts: list[Part], ctx: dict[str, Any]) -> list[Part]:
    """``parts`` with the request to confirm before the link, when the audience asks."""
    if not ctx.get("confirm"):
        return parts
    ask = Part("confirm", ctx["_"](CONFIRM_ASK), MUST)
    has_link = bool(parts) and parts[-1].name == "link"
    return [*parts[:-1], ask, parts[-1]] if has_link else [*parts, ask]
