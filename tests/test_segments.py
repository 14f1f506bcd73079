"""Segment counting and text fitting: SMS (GSM-7 / UCS-2), Mastodon, Bluesky, banners."""

from __future__ import annotations

import re
import time

import pytest

from broadcaster.rendering.segments import (
    BANNER_MAX,
    ELLIPSIS,
    ELLIPSIS_GSM,
    GSM7_BASIC,
    GSM7_EXTENSION,
    SOCIAL_LIMITS,
    fit_line,
    fit_sms,
    fit_social,
    graphemes,
    mastodon_length,
    shorten,
    sms_cost,
)

LINK = " https://status.example/status"
SOCIAL_LINK = "https://status.example/status"
DANISH = (
    "Strømafbrydelse i Århus. Vi arbejder på sagen, og forventer at strømmen er tilbage "
    "i løbet af eftermiddagen. Undgå at ringe 112 medmindre det er et nødstilfælde; følg "
    "opdateringer på vores statusside og lyt til DR P4 Østjylland for nyt. "
)


def is_word_cut(original: str, prefix: str) -> bool:
    """``prefix`` is a start of ``original`` that ends right before a space or punctuation."""
    rest = original[len(prefix) :]
    return original.startswith(prefix) and (rest == "" or rest[0].isspace() or rest[0] in ",.;:-")


def one_word_more(original: str, prefix: str) -> str:
    """The next word-boundary cut after ``prefix``, trimmed the way ``shorten`` trims it."""
    match = re.match(r"\S*\s+\S+", original[len(prefix) :])
    assert match, "no further word"
    return original[: len(prefix) + match.end()].rstrip(" ,.;:-")


# --- GSM-7 alphabet -------------------------------------------------------------------------


def test_gsm7_tables_have_the_standard_sizes() -> None:
    # 128 code points in the basic table minus ESC; 9 printable extensions plus form feed.
    assert len(GSM7_BASIC) == 127
    assert len(GSM7_EXTENSION) == 10
    assert "\x1b" not in GSM7_BASIC
    assert not GSM7_BASIC & GSM7_EXTENSION
    assert "€" in GSM7_EXTENSION and "…" not in GSM7_BASIC | GSM7_EXTENSION


# --- sms_cost -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments", "per_segment"),
    [
        ("", "GSM-7", 0, 0, 160),
        ("a", "GSM-7", 1, 1, 160),
        ("a" * 160, "GSM-7", 160, 1, 160),
        ("a" * 161, "GSM-7", 161, 2, 153),
        ("a" * 306, "GSM-7", 306, 2, 153),
        ("a" * 307, "GSM-7", 307, 3, 153),
        ("a" * 459, "GSM-7", 459, 3, 153),
        ("a" * 460, "GSM-7", 460, 4, 153),
        ("ë" + "a" * 69, "UCS-2", 70, 1, 70),
        ("ë" + "a" * 70, "UCS-2", 71, 2, 67),
        ("ë" + "a" * 133, "UCS-2", 134, 2, 67),
        ("ë" + "a" * 134, "UCS-2", 135, 3, 67),
        # Extension characters are ESC + char: two septets each.
        ("€" * 80, "GSM-7", 160, 1, 160),
        ("€" * 81, "GSM-7", 162, 2, 153),
        ("{}[]", "GSM-7", 8, 1, 160),
        # An escape pair never straddles parts: 152 + (2) + 152 = 306 septets, yet part one
        # carries only 152, so the last 'a' spills into a third part.
        ("a" * 152 + "€" + "a" * 152, "GSM-7", 306, 3, 153),
        ("a" * 153 + "€" + "a" * 151, "GSM-7", 306, 2, 153),
        # Emoji outside the BMP: a surrogate pair, 2 UTF-16 units, never split at 67.
        ("🙂", "UCS-2", 2, 1, 70),
        ("🙂" * 35, "UCS-2", 70, 1, 70),
        ("🙂" * 36, "UCS-2", 72, 2, 67),
        ("ë" * 66 + "🙂" + "ë" * 66, "UCS-2", 134, 3, 67),
        ("ë" * 67 + "🙂" + "ë" * 65, "UCS-2", 134, 2, 67),
    ],
)
def test_sms_cost(text: str, encoding: str, units: int, segments: int, per_segment: int) -> None:
    cost = sms_cost(text)
    assert (cost.encoding, cost.units, cost.segments, cost.per_segment) == (
        encoding,
        units,
        segments,
        per_segment,
    )
    assert cost.chars == len(text)


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("Strømafbrydelse i Århus. Vi arbejder på sagen.", "GSM-7"),
        ("Strömavbrott i Göteborg, vi åtgärdar felet.", "GSM-7"),
        ("Storing in Amsterdam, we werken eraan: één oplossing", "GSM-7"),
        ("ÆØÅ æøå ÄÖÜ äöü é É ß Ñ ñ Ç à ù ì ò è", "GSM-7"),
        ("Storing bij de Rijnbrug: we geïnformeerd", "UCS-2"),
        ("Ploegen: Noël", "UCS-2"),
        ("Výpadek: Šumperk", "UCS-2"),
        ("š", "UCS-2"),
        ("Wait…", "UCS-2"),
    ],
)
def test_sms_encoding_of_european_text(text: str, encoding: str) -> None:
    assert sms_cost(text).encoding == encoding


# --- shorten --------------------------------------------------------------------------------


def at_most(n: int):
    return lambda s: len(s) <= n


@pytest.mark.parametrize(
    ("text", "limit", "expected", "cut"),
    [
        ("Short enough", 20, "Short enough", False),
        ("The bridge is closed today", 20, "The bridge is…", True),
        # Trailing punctuation before the cut is dropped, not followed by the ellipsis.
        ("Closed, reopening later today", 12, "Closed…", True),
        ("Closed - reopening later today", 12, "Closed…", True),
        ("One two; three four", 14, "One two…", True),
        # First word alone does not fit: cut inside it.
        ("Supercalifragilistic word", 8, "Superca…", True),
        # Inside a word the cut respects graphemes: never half an emoji with its skin tone.
        ("👍🏽👍🏽👍🏽", 4, "👍🏽…", True),
        ("abc", 0, "", True),
    ],
)
def test_shorten(text: str, limit: int, expected: str, cut: bool) -> None:
    assert shorten(text, at_most(limit)) == (expected, cut)


def test_shorten_uses_the_given_ellipsis() -> None:
    assert shorten("The bridge is closed today", at_most(20), ELLIPSIS_GSM) == (
        "The bridge is...",
        True,
    )


def test_shorten_large_text_is_logarithmic_and_maximal() -> None:
    words = [f"word{i}" for i in range(1500)]
    text = " ".join(words)
    assert len(text) > 10_000
    calls = 0

    def fits(s: str) -> bool:
        nonlocal calls
        calls += 1
        return len(s) <= 5000

    start = time.perf_counter()
    short, cut = shorten(text, fits)
    elapsed = time.perf_counter() - start

    assert cut and short.endswith(ELLIPSIS) and len(short) <= 5000
    assert calls < 60
    assert elapsed < 1.0
    prefix = short[: -len(ELLIPSIS)]
    assert is_word_cut(text, prefix)
    # Longest: one more word would not have fit.
    assert len(one_word_more(text, prefix) + ELLIPSIS) > 5000


def test_shorten_large_text_without_spaces_is_logarithmic() -> None:
    calls = 0

    def fits(s: str) -> bool:
        nonlocal calls
        calls += 1
        return len(s) <= 100

    short, cut = shorten("x" * 10_000, fits)
    assert (short, cut) == ("x" * 99 + ELLIPSIS, True)
    assert calls < 60


# --- fit_sms --------------------------------------------------------------------------------


@pytest.mark.parametrize("max_segments", [1, 2, 3])
def test_fit_sms_long_danish_body(max_segments: int) -> None:
    head = "[Beredskab] "
    body = DANISH * 5
    text, cost, cut = fit_sms(head, body, LINK, max_segments)

    assert cut
    assert 1 <= cost.segments <= max_segments
    assert cost == sms_cost(text)
    assert cost.encoding == "GSM-7"  # "..." kept it GSM-7
    assert text.startswith(head) and text.endswith(ELLIPSIS_GSM + LINK)
    kept = text[len(head) : -len(ELLIPSIS_GSM + LINK)]
    assert is_word_cut(body, kept)
    # Longest: adding the next word would need another segment.
    longer = head + one_word_more(body, kept) + ELLIPSIS_GSM + LINK
    assert sms_cost(longer).segments > max_segments


def test_fit_sms_ucs2_body_uses_unicode_ellipsis() -> None:
    head = "[Storing] "
    body = "We zijn geïnformeerd over een storing bij de Rijnbrug. " * 10
    text, cost, cut = fit_sms(head, body, LINK, 2)

    assert cut
    assert cost.encoding == "UCS-2"
    assert cost.segments <= 2 and cost.units <= 2 * 67
    assert text.endswith(ELLIPSIS + LINK)
    kept = text[len(head) : -len(ELLIPSIS + LINK)]
    assert is_word_cut(body, kept)


@pytest.mark.parametrize("max_segments", [1, 2])
def test_fit_sms_short_body_unchanged(max_segments: int) -> None:
    head, body = "[Alert] ", "Water supply restored in Århus."
    text, cost, cut = fit_sms(head, body, LINK, max_segments)
    assert (text, cut) == (head + body + LINK, False)
    assert cost == sms_cost(head + body + LINK) and cost.segments == 1


def test_fit_sms_overlong_head_is_shortened_but_link_kept() -> None:
    head = "Emergency notice for residents of the northern districts " * 5
    text, cost, cut = fit_sms(head, "Body text.", LINK, 1)
    assert cut and cost.segments == 1
    assert text.endswith(ELLIPSIS_GSM + LINK)
    assert is_word_cut(head, text[: -len(ELLIPSIS_GSM + LINK)])


def test_fit_sms_rejects_zero_segments() -> None:
    with pytest.raises(ValueError):
        fit_sms("", "x", LINK, 0)


# --- graphemes and Mastodon length ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("", 0),
        ("abc", 3),
        ("👍🏽", 1),
        ("e\u0301", 1),
        ("👨\u200d👩\u200d👧\u200d👦", 1),
        ("🇩🇰", 1),
        ("Århus 👍🏽!", 8),
    ],
)
def test_graphemes(text: str, count: int) -> None:
    assert graphemes(text) == count


@pytest.mark.parametrize(
    ("text", "length"),
    [
        ("see https://example.com/a/very/long/path/that/is/longer/than/23", 4 + 23),
        ("https://a.io", 23),  # short URLs also count as 23
        ("http://x.example/p and https://y.example/q", 23 + 5 + 23),
        ("Go to https://example.com. Now", len("Go to . Now") + 23),
        ("no links here", 13),
        ("www.example.com is not counted as a link", 40),
        ("👍🏽", 2),  # code points, not graphemes
    ],
)
def test_mastodon_length(text: str, length: int) -> None:
    assert mastodon_length(text) == length


# --- fit_social -----------------------------------------------------------------------------


def test_fit_social_mastodon_long_text() -> None:
    text = ("Flooding near the harbour; avoid the quay and follow police directions. " * 30)[:2000]
    post, length, cut = fit_social(text, SOCIAL_LINK, "mastodon")

    assert cut
    assert length == mastodon_length(post) <= SOCIAL_LIMITS["mastodon"]
    assert post.endswith(ELLIPSIS + "\n\n" + SOCIAL_LINK)
    kept = post[: -len(ELLIPSIS + "\n\n" + SOCIAL_LINK)]
    assert is_word_cut(text, kept)
    # The link counts 23, so far more than 500 - len(link) characters of text survive.
    assert len(kept) > 500 - 23 - 10


def test_fit_social_mastodon_counts_urls_in_text_as_23() -> None:
    long_url = "https://example.com/" + "x" * 600
    post, length, cut = fit_social(f"Read {long_url} now", SOCIAL_LINK, "mastodon")
    assert not cut
    assert length == len("Read  now\n\n") + 23 + 23


def test_fit_social_bluesky_emoji_heavy() -> None:
    text = " ".join(["Stay safe 👍🏽 👨\u200d👩\u200d👧\u200d👦 🌊"] * 60)
    post, length, cut = fit_social(text, SOCIAL_LINK, "bluesky")

    assert cut
    assert length == graphemes(post) <= SOCIAL_LIMITS["bluesky"]
    # Counted per code point this would be far over 300; per grapheme it is not.
    assert len(post) > SOCIAL_LIMITS["bluesky"]
    assert post.endswith(ELLIPSIS + "\n\n" + SOCIAL_LINK)
    assert is_word_cut(text, post[: -len(ELLIPSIS + "\n\n" + SOCIAL_LINK)])


def test_fit_social_bluesky_counts_urls_fully() -> None:
    link = "https://example.com/" + "x" * 250
    post, length, cut = fit_social("word " * 20, link, "bluesky")
    assert cut and length <= 300 and post.endswith(link)


@pytest.mark.parametrize("network", ["mastodon", "bluesky"])
def test_fit_social_short_text_unchanged(network: str) -> None:
    text = "Water supply restored in Århus 👍🏽"
    post, length, cut = fit_social(text, SOCIAL_LINK, network)
    assert (post, cut) == (text + "\n\n" + SOCIAL_LINK, False)
    assert length == (mastodon_length(post) if network == "mastodon" else graphemes(post))


def test_fit_social_unknown_network() -> None:
    with pytest.raises(ValueError):
        fit_social("text", SOCIAL_LINK, "myspace")


# --- fit_line -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "cut"),
    [
        ("Road closed\n\nuse  the\tdetour ", "Road closed use the detour", False),
        ("  \n ", "", False),
    ],
)
def test_fit_line_collapses_whitespace(text: str, expected: str, cut: bool) -> None:
    assert fit_line(text) == (expected, cut)


def test_fit_line_long_text() -> None:
    text = "Evacuate the lower town\nnow. " * 12
    assert len(text) >= 300
    line, cut = fit_line(text)
    assert cut
    assert len(line) <= BANNER_MAX and line.endswith(ELLIPSIS)
    assert "\n" not in line
    assert is_word_cut(" ".join(text.split()), line[: -len(ELLIPSIS)])


def test_fit_line_custom_limit() -> None:
    assert fit_line("one two three", limit=9) == ("one two…", True)
