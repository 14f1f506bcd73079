"""Measure text against channel limits (SMS segments, social posts, banners) and fit it in.

Pure functions: no I/O, no Flask. Every ``fit_*`` keeps what must survive (the status link)
and shortens only the free text, at a word boundary, with a visible ellipsis.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import regex

from channels import NETWORKS, PERSONAL

# GSM 03.38 default alphabet, in table order; 0x1B (ESC) is left out because it is not a
# character of its own but the prefix of the extension table.
GSM7_BASIC: frozenset[str] = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
# Extension table: each is sent as ESC + char, so it costs two septets.
GSM7_EXTENSION: frozenset[str] = frozenset("^{}\\[~]|€\f")
_GSM7_ALL = GSM7_BASIC | GSM7_EXTENSION

# Characters per segment, single / multipart (the sms channel declares them).
GSM7_SINGLE, GSM7_MULTI = PERSONAL["sms"].segment_sizes["GSM-7"]
UCS2_SINGLE, UCS2_MULTI = PERSONAL["sms"].segment_sizes["UCS-2"]

ELLIPSIS_GSM = "..."  # "…" is not in GSM-7: using it would switch a whole SMS to UCS-2
ELLIPSIS = "…"

SOCIAL_LIMITS: dict[str, int] = {name: cls.limit for name, cls in NETWORKS.items()}
SOCIAL_SEPARATOR = "\n\n"
MASTODON_URL_LENGTH = NETWORKS["mastodon"].url_length
# The banner line holds status, title, a sentence, the promised update and a route.
BANNER_MAX = 200

# Stripped from the end of a cut so the ellipsis does not follow "word, " or "word -".
_TRAILING = ",.;:-"
_GRAPHEME = regex.compile(r"\X")
_WHITESPACE = regex.compile(r"\s+")
# Mastodon only gives the 23-character concession to URLs with a scheme; trailing sentence
# punctuation is not part of the URL there, so it is counted as ordinary text here too.
_URL = regex.compile(r"https?://[^\s]+?(?=[.,;:!?)\]}'\"»]*(?:\s|$))", regex.IGNORECASE)


@dataclass(frozen=True)
class SmsCost:
    """What an SMS text costs: encoding, units, segments, and the per-segment size used."""

    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets (GSM-7, extension chars count 2) or UTF-16 code units (UCS-2)
    segments: int  # 0 for empty text
    chars: int  # len(text)
    per_segment: int  # 160/153 (GSM-7) or 70/67 (UCS-2): single or multipart, whichever applied


def is_gsm7(text: str) -> bool:
    """True if every character of ``text`` can be sent in the GSM-7 alphabet."""
    return all(ch in _GSM7_ALL for ch in text)


def sms_cost(text: str) -> SmsCost:
    """Encoding, units and segment count of ``text`` sent as one (possibly multipart) SMS."""
    if is_gsm7(text):
        encoding, single, multi = "GSM-7", GSM7_SINGLE, GSM7_MULTI
        sizes = [2 if ch in GSM7_EXTENSION else 1 for ch in text]
    else:
        encoding, single, multi = "UCS-2", UCS2_SINGLE, UCS2_MULTI
        # Outside the BMP a character is a surrogate pair: two UTF-16 code units.
        sizes = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    units = sum(sizes)
    if units == 0:
        return SmsCost(encoding, 0, 0, 0, single)
    if units <= single:
        return SmsCost(encoding, units, 1, len(text), single)
    # Greedy packing, because an escape pair or surrogate pair must not straddle two parts:
    # a part that cannot take the whole pair is sent one unit short.
    segments, used = 1, 0
    for size in sizes:
        if used + size > multi:
            segments, used = segments + 1, 0
        used += size
    return SmsCost(encoding, units, segments, len(text), multi)


def _trim_end(text: str, end: int) -> int:
    """End index of ``text[:end]`` with trailing whitespace and ``,.;:-`` removed."""
    while end > 0 and (text[end - 1].isspace() or text[end - 1] in _TRAILING):
        end -= 1
    return end


def _cut_points(text: str, ends: list[int]) -> list[int]:
    """Distinct, non-empty, trimmed prefix ends from ascending raw cut positions."""
    points: list[int] = []
    for end in ends:
        trimmed = _trim_end(text, end)
        if trimmed > 0 and (not points or trimmed > points[-1]):
            points.append(trimmed)
    return points


def _longest_fitting(
    text: str, points: list[int], ellipsis: str, fits: Callable[[str], bool]
) -> int | None:
    """Largest cut point whose ``prefix + ellipsis`` fits, by binary search; None if none does.

    Only cut points that were actually tested are returned, so a measure that is not quite
    monotonic (stripping can shrink a prefix) still never yields a text that does not fit.
    """
    lo, hi = -1, len(points)  # points[lo] is known to fit, points[hi] is known not to
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(text[: points[mid]] + ellipsis):
            lo = mid
        else:
            hi = mid
    return points[lo] if lo >= 0 else None


def shorten(text: str, fits: Callable[[str], bool], ellipsis: str = ELLIPSIS) -> tuple[str, bool]:
    """``(text, False)`` if it fits, else the longest word-boundary prefix + ellipsis that fits.

    Falls back to cutting inside the first word (at grapheme boundaries, so an emoji or an
    accent is never split) and returns ``("", True)`` if not even one grapheme fits.
    Calls ``fits`` O(log n) times.
    """
    if fits(text):
        return text, False
    word_ends = _cut_points(text, [m.start() for m in _WHITESPACE.finditer(text)])
    best = _longest_fitting(text, word_ends, ellipsis, fits)
    if best is None:
        # Longer prefixes contain the first word, which already did not fit: search inside it.
        first_word = text[: word_ends[0]] if word_ends else text
        grapheme_ends = _cut_points(text, [m.end() for m in _GRAPHEME.finditer(first_word)])
        best = _longest_fitting(text, grapheme_ends, ellipsis, fits)
    if best is None:
        return "", True
    return text[:best] + ellipsis, True


def fit_sms(head: str, body: str, tail: str, max_segments: int) -> tuple[str, SmsCost, bool]:
    """``head + body + tail`` in at most ``max_segments`` segments, shortening only the body.

    The tail (the status link) is always kept whole; the head is shortened only when head and
    tail alone are too long. Returns (text, cost, was_cut).
    """
    if max_segments < 1:
        raise ValueError("max_segments must be at least 1")
    full = head + body + tail
    cost = sms_cost(full)
    if cost.segments <= max_segments:
        return full, cost, False
    # Keep a GSM-7 message in GSM-7: "…" alone would drop the segment size from 153 to 67.
    ellipsis = ELLIPSIS_GSM if is_gsm7(full) else ELLIPSIS

    def within(text: str) -> bool:
        return sms_cost(text).segments <= max_segments

    short_body, _ = shorten(body, lambda b: within(head + b + tail), ellipsis)
    if short_body or within(head + tail):
        text = head + short_body + tail
        return text, sms_cost(text), True
    short_head, _ = shorten(head, lambda h: within(h + tail), ellipsis)
    # If even the tail alone is too long it is still sent whole: the link matters most.
    text = short_head + tail
    return text, sms_cost(text), True


def graphemes(text: str) -> int:
    """User-perceived characters (extended grapheme clusters), as Bluesky counts them."""
    return len(_GRAPHEME.findall(text))


def mastodon_length(text: str) -> int:
    """Length as Mastodon counts it: each http(s) URL is 23, everything else per code point."""
    return social_length(text, "mastodon")


def _with_short_urls(text: str, url_length: int) -> int:
    """Code points, each http(s) URL counted as ``url_length`` (a network that shortens links).

    Code points are never fewer than the graphemes such a network counts: a safe measure.
    """
    urls = _URL.findall(text)
    return len(text) - sum(len(url) for url in urls) + url_length * len(urls)


def social_length(text: str, network: str) -> int:
    """Length as ``network`` counts it: URLs at its ``url_length``, else graphemes."""
    url_length = NETWORKS[network].url_length
    return graphemes(text) if url_length is None else _with_short_urls(text, url_length)


def fit_social(text: str, link: str, network: str) -> tuple[str, int, bool]:
    """``text + "\\n\\n" + link`` within the network's limit, shortening only ``text``.

    Returns (post, measured_length, was_cut). Raises ValueError for an unknown network.
    """
    if network not in SOCIAL_LIMITS:
        raise ValueError(f"unknown social network {network!r}; expected one of {SOCIAL_LIMITS}")
    limit = SOCIAL_LIMITS[network]

    def measure(post: str) -> int:
        return social_length(post, network)

    suffix = SOCIAL_SEPARATOR + link if link else ""
    short, was_cut = shorten(text, lambda t: measure(t + suffix) <= limit, ELLIPSIS)
    # Nothing of the text fits: post the link alone rather than a dangling separator.
    post = short + suffix if short else link
    return post, measure(post), was_cut


def fit_line(text: str, limit: int = BANNER_MAX) -> tuple[str, bool]:
    """``text`` on one line (whitespace collapsed) of at most ``limit`` characters."""
    line = " ".join(text.split())
    return shorten(line, lambda s: len(s) <= limit, ELLIPSIS)
