"""Message catalogues (gettext via Babel) for the fixed strings in our templates.

English is the source language: msgids are English and there is no en catalogue.
The compiled .mo files are committed, so installs need no build step. To update catalogues:

    pybabel extract -F babel.cfg -o broadcaster/translations/messages.pot .
    pybabel update -i broadcaster/translations/messages.pot -d broadcaster/translations
    # translate the new/fuzzy entries in broadcaster/translations/*/LC_MESSAGES/messages.po
    pybabel compile -d broadcaster/translations

tests/test_i18n.py fails if a msgid lacks a translation or a .mo is older than its .po.
"""

from __future__ import annotations

import gettext
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel.support import Translations

LOCALES = ("en", "nl", "da", "sv")  # locales we ship catalogues for (en = source)
DEFAULT_LOCALE = "en"
TRANSLATIONS_DIR = Path(__file__).resolve().parents[1] / "translations"
DOMAIN = "messages"


def resolve(locale: str) -> str:
    """Map a locale tag ("nl", "nl_BE", "NL-nl") to one of LOCALES; anything else → "en"."""
    language = str(locale or "").replace("-", "_").split("_", 1)[0].strip().lower()
    return language if language in LOCALES else DEFAULT_LOCALE


@lru_cache(maxsize=len(LOCALES))
def _load(locale: str) -> Translations | gettext.NullTranslations:
    """Load the catalogue for a resolved locale (only ever called with members of LOCALES)."""
    if locale == DEFAULT_LOCALE:
        return gettext.NullTranslations()
    return Translations.load(str(TRANSLATIONS_DIR), [locale], DOMAIN)


def translations(locale: str) -> Translations | gettext.NullTranslations:
    """The (cached, read-only) catalogue for ``locale``; unknown locales get English."""
    return _load(resolve(locale))


def gettext_for(locale: str) -> Callable[..., str]:
    """A ``_(message, **params)`` bound to ``locale``: translate, then ``% params`` if given.

    Each call returns its own function over a shared read-only catalogue, so it is safe to
    use from many threads at once (there is no global "current locale").
    """
    catalogue = translations(locale)

    def _(message: str, **params: Any) -> str:
        text = catalogue.gettext(message)
        return text % params if params else text

    return _


def N_(message: str) -> str:
    """Mark ``message`` for extraction without translating it (translate later with ``_``)."""
    return message
