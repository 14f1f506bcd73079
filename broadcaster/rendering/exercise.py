"""Every message of a drill starts with the word for exercise in the reader's language.

Applied to a rendered message just before it is sent (``delivery/fanout.py``), so no
template or channel can forget it: the email subject, text and HTML, the SMS text.
"""

from __future__ import annotations

import re

from broadcaster.rendering.i18n import gettext_for

_BODY_TAG = re.compile(r"<body[^>]*>", re.IGNORECASE)


def word(locale: str) -> str:
    """EXERCISE / OEFENING / ØVELSE / ÖVNING."""
    _ = gettext_for(locale)
    # The word a drill's messages start with: upper case, so it cannot be missed.
    return _("EXERCISE")


def prefixed(text: str, locale: str) -> str:
    """``text`` starting with the exercise word (once)."""
    mark = word(locale)
    return text if text.startswith(mark) else f"{mark}: {text}"


def marked(content: dict[str, str], locale: str) -> dict[str, str]:
    """A rendered message (subject, text, html…) marked as an exercise."""
    out = dict(content)
    for key in ("subject", "text"):
        if isinstance(out.get(key), str):
            out[key] = prefixed(out[key], locale)
    html = out.get("html")
    if isinstance(html, str):
        strip = f"<p><strong>{word(locale)}</strong></p>"
        found = _BODY_TAG.search(html)
        out["html"] = html[: found.end()] + strip + html[found.end() :] if found else strip + html
    return out
