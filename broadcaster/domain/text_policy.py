"""The one text policy: what characters and sizes any stored text may have.

Nothing published is ever deleted, so a character that breaks a page (a lone surrogate,
a control character, a bidi override) would break it forever. Every text that reaches a
public surface passes here once, at the way in: people get a refusal naming the field
(``problem``), monitoring gets its text cleaned instead (``clean``), because an alert must
still produce a statement.

Two kinds of text: ``LINE`` (titles, route facts: one line) and ``BLOCK`` (bodies and
reasons: line breaks and tabs allowed).
"""

from __future__ import annotations

import unicodedata
from typing import Any

LINE = "line"
BLOCK = "block"

TITLE_MAX = 200
# Bidi embeddings, overrides (U+202A–U+202E) and isolates (U+2066–U+2069): they reorder
# what a reader sees ("gnp.exe"), in a subject line or a status page alike.
BIDI_CONTROLS = frozenset([*range(0x202A, 0x202F), *range(0x2066, 0x206A)])
_BLOCK_ALLOWED = frozenset("\n\t")


def _bad(ch: str, kind: str) -> bool:
    category = unicodedata.category(ch)
    if category == "Cs" or ord(ch) in BIDI_CONTROLS:  # lone surrogates: not even encodable
        return True
    if category == "Cc":
        return kind == LINE or ch not in _BLOCK_ALLOWED
    return kind == LINE and category in ("Zl", "Zp")


def forbidden(text: str, kind: str = BLOCK) -> str | None:
    """The first character ``text`` may not contain, if any."""
    return next((ch for ch in text if _bad(ch, kind)), None)


def describe(ch: str) -> str:
    """``U+000B (LINE TABULATION)``: enough for a person to find the character."""
    name = unicodedata.name(ch, "")
    if not name and unicodedata.category(ch) == "Cc":
        name = "control character"
    return f"U+{ord(ch):04X}" + (f" ({name})" if name else "")


def normalise(text: str) -> str:
    """CRLF and CR become LF (harmless, what Windows sends); then Unicode NFC."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if forbidden(text, BLOCK) is not None:
        return text  # refused anyway; NFC cannot take lone surrogates
    return unicodedata.normalize("NFC", text)


def problem(text: str, kind: str, *, max_chars: int = 0, max_bytes: int = 0) -> str | None:
    """Why ``text`` may not be stored as this kind of text, or None."""
    if not text.strip():
        return "must not be empty"
    bad = forbidden(text, kind)
    if bad is not None:
        if kind == LINE:
            return (
                "must be one line: no line breaks, control characters, bidi overrides or "
                f"invalid characters (found {describe(bad)})"
            )
        return (
            "must not contain control characters (other than line breaks and tabs), bidi "
            f"overrides or invalid characters (found {describe(bad)})"
        )
    if max_chars and len(text) > max_chars:
        return f"longer than {max_chars} characters"
    if max_bytes and len(text.encode()) > max_bytes:
        return f"too long: {len(text.encode())} bytes, at most {max_bytes}"
    return None


def clean(text: str, kind: str, *, max_chars: int = 0, max_bytes: int = 0) -> str:
    """``text`` made to fit the policy: bad characters dropped (or spaces in a line), cut
    with "…" at ``max_chars`` characters or ``max_bytes`` of UTF-8."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    kept = []
    for ch in text:
        if not _bad(ch, kind):
            kept.append(ch)
        elif kind == LINE and unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            kept.append(" ")
    text = unicodedata.normalize("NFC", "".join(kept))
    text = " ".join(text.split()) if kind == LINE else text.strip()
    if max_chars and len(text) > max_chars:
        text = text[: max_chars - 1].rstrip() + "…"
    if max_bytes and len(text.encode()) > max_bytes:
        text = text.encode()[: max_bytes - 3].decode(errors="ignore").rstrip() + "…"
    return text


def encodable(value: Any) -> Any:
    """``value`` with every string made encodable: a lone surrogate becomes the text ``\\ud800``.

    JSON may carry ``"\\ud800"``; Python decodes it to a lone surrogate, which neither UTF-8,
    Redis nor a page can take. For what is kept or echoed as sent (monitoring payloads,
    field names in an error): two keys that differ only there stay two keys.
    """
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {encodable(k): encodable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [encodable(v) for v in value]
    return value
