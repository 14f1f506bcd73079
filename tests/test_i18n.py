"""Message catalogues: complete, compiled, and wired to gettext_for / clock.format_time."""

from __future__ import annotations

import gettext
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from broadcaster.rendering.clock import format_time
from broadcaster.rendering.i18n import LOCALES, TRANSLATIONS_DIR, gettext_for, translations
from broadcaster.rendering.segments import is_gsm7

TRANSLATED = [locale for locale in LOCALES if locale != "en"]
POT = TRANSLATIONS_DIR / "messages.pot"
SUBSCRIBED = "You receive this because you subscribed to updates from %(organisation)s."
TS = 1795464463  # 2026-11-23 20:07:43 UTC


def _po_path(locale: str) -> Path:
    return TRANSLATIONS_DIR / locale / "LC_MESSAGES" / "messages.po"


def _read(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as f:
        return read_po(f, locale=locale)


def _msgids(catalog: Catalog) -> set[str]:
    return {m.id for m in catalog if m.id}


def test_translated_locales_are_nl_da_sv() -> None:
    assert TRANSLATED == ["nl", "da", "sv"]


def test_pot_is_not_empty() -> None:
    assert "How to reach us for your need" in _msgids(_read(POT))


@pytest.mark.parametrize("locale", TRANSLATED)
def test_every_pot_msgid_is_translated(locale: str) -> None:
    catalog = _read(_po_path(locale), locale)
    by_id = {m.id: m for m in catalog if m.id}
    missing = sorted(_msgids(_read(POT)) - by_id.keys())
    assert not missing, f"{locale}: msgids missing from the .po (run pybabel update): {missing}"
    empty = sorted(i for i, m in by_id.items() if not m.string)
    assert not empty, f"{locale}: untranslated: {empty}"
    fuzzy = sorted(i for i, m in by_id.items() if m.fuzzy)
    assert not fuzzy, f"{locale}: fuzzy (compile skips these, readers get English): {fuzzy}"


@pytest.mark.parametrize("locale", TRANSLATED)
def test_translations_are_text_not_code(locale: str) -> None:
    """A script once wrote a Python dict of every locale into each msgstr: readers saw braces."""
    catalog = _read(_po_path(locale), locale)
    bad = [m.id for m in catalog if m.id and isinstance(m.string, str) and "{'" in m.string]
    assert not bad, f"{locale}: {bad}"


@pytest.mark.parametrize("locale", TRANSLATED)
def test_placeholders_match(locale: str) -> None:
    problems = [(m.id, errors) for m, errors in _read(_po_path(locale), locale).check()]
    assert not problems, f"{locale}: {problems}"


@pytest.mark.parametrize("locale", TRANSLATED)
def test_translations_fit_gsm7(locale: str) -> None:
    """A character outside GSM-7 would switch any SMS that uses the string to UCS-2."""
    bad = [m.string for m in _read(_po_path(locale), locale) if m.id and not is_gsm7(m.string)]
    assert not bad, f"{locale}: {bad}"


def _messages(catalogue: gettext.GNUTranslations) -> dict[object, str]:
    """The catalogue's messages without its header (msgid ""), whose Generated-By line
    names the Babel version that compiled the file: a fresh install may have another."""
    return {msgid: text for msgid, text in catalogue._catalog.items() if msgid != ""}


@pytest.mark.parametrize("locale", TRANSLATED)
def test_mo_is_up_to_date_with_po(locale: str) -> None:
    buf = BytesIO()
    write_mo(buf, _read(_po_path(locale), locale))
    buf.seek(0)
    fresh = gettext.GNUTranslations(buf)
    loaded = translations(locale)
    assert isinstance(loaded, gettext.GNUTranslations), f"{locale}: no .mo loaded"
    # Compare the messages, not the header: its Generated-By line names the Babel version
    # that compiled the file, which differs between the committer's and a fresh install.
    assert _messages(loaded) == _messages(fresh), (
        f"{locale}: messages.mo is stale, run: pybabel compile -d broadcaster/translations"
    )


def test_dutch() -> None:
    assert gettext_for("nl")("How to reach us for your need") == "Zo bereikt u ons met uw hulpvraag"


def test_regional_tag_uses_the_language_catalogue() -> None:
    # "Channel": a msgid the templates use ("Need" went with the routes as stacked cards).
    assert gettext_for("nl_BE")("Channel") == gettext_for("nl-NL")("Channel") == "Kanaal"


@pytest.mark.parametrize("locale", ["fr", "en", "", "../../etc"])
def test_unknown_locale_is_english(locale: str) -> None:
    _ = gettext_for(locale)
    assert _("How to reach us for your need") == "How to reach us for your need"
    assert _(SUBSCRIBED, organisation="Acme") == (
        "You receive this because you subscribed to updates from Acme."
    )
    assert isinstance(translations(locale), gettext.NullTranslations)


def test_placeholders_are_filled() -> None:
    text = gettext_for("da")(SUBSCRIBED, organisation="Acme")
    assert "Acme" in text
    assert "%(" not in text
    assert text != SUBSCRIBED.replace("%(organisation)s", "Acme")


def test_without_params_percent_is_left_alone() -> None:
    assert gettext_for("sv")(SUBSCRIBED) == translations("sv").gettext(SUBSCRIBED)


def test_gettext_for_is_thread_safe() -> None:
    def render(locale: str) -> tuple[str, str]:
        return locale, gettext_for(locale)("Resolved")

    expected = {"en": "Resolved", "nl": "Opgelost", "da": "Løst", "sv": "Löst"}
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(render, list(LOCALES) * 50))
    assert all(text == expected[locale] for locale, text in results)


def test_format_time_is_localised() -> None:
    nl, en = format_time(TS, "nl", "UTC", now=0), format_time(TS, "en", "UTC", now=0)
    assert nl == "23 nov 2026, 20:07" and en == "Nov 23, 2026, 8:07 PM"


def test_format_time_unknown_locale_is_english() -> None:
    assert format_time(TS, "xx", "UTC") == format_time(TS, "en", "UTC")


def test_format_time_timezone_and_plain_spaces() -> None:
    assert format_time(TS, "nl", "Europe/Amsterdam", now=TS) == "21:07"
    for locale in LOCALES:
        assert is_gsm7(format_time(TS, locale, "UTC", now=0)), locale
