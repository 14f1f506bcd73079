"""The one text policy every announcement passes, from any door (API, admin, monitoring).

People get a clear refusal (``problems``); monitoring gets its text made fit instead
(``sanitise``), because an alert must still produce a statement.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from broadcaster.domain.plan import SEVERITIES, STATUSES, Plan
from channels import CHANNELS

TITLE_MAX = 200
# Line breaks and control characters: in a title they could inject an email header or
# break a page layout.
_NOT_ONE_LINE = ("Cc", "Zl", "Zp")


def line_break(text: str) -> str | None:
    """The first character that keeps ``text`` from being one line, if any."""
    return next((ch for ch in text if unicodedata.category(ch) in _NOT_ONE_LINE), None)


def one_line_problem(text: str) -> str | None:
    """Why ``text`` is not one line, or None."""
    bad = line_break(text)
    if bad is None:
        return None
    return f"must be one line: no line breaks or control characters (found U+{ord(bad):04X})"


def title_problem(title: str) -> str | None:
    """Why ``title`` is not a valid title, or None."""
    if not title:
        return "must not be empty"
    if len(title) > TITLE_MAX:
        return f"longer than {TITLE_MAX} characters"
    return one_line_problem(title)


def body_problem(body: str, max_bytes: int) -> str | None:
    """Why ``body`` is not a valid message body, or None."""
    if not body:
        return "must not be empty"
    size = len(body.encode())
    if size > max_bytes:
        return f"too long: {size} bytes, at most {max_bytes}"
    return None


def problems(data: dict[str, Any], plan: Plan, max_body_bytes: int) -> dict[str, list[str]]:
    """Every way ``data`` breaks the text policy or the plan, by field."""
    errors: dict[str, list[str]] = {}

    def add(key: str, problem: str | None) -> None:
        if problem:
            errors.setdefault(key, []).append(problem)

    add("title", title_problem(str(data.get("title") or "")))
    add("body", body_problem(str(data.get("body") or ""), max_body_bytes))
    if data.get("severity") not in SEVERITIES:
        add("severity", f"must be one of: {', '.join(SEVERITIES)}")
    if data.get("status", "investigating") not in STATUSES:
        add("status", f"must be one of: {', '.join(STATUSES)}")
    audiences = list(data.get("audiences") or [])
    if not audiences:
        add("audiences", "name at least one audience")
    unknown = [a for a in audiences if a not in plan.audiences]
    if unknown:
        add("audiences", f"unknown audience {unknown[0]!r} (known: {', '.join(plan.audiences)})")
    strange = [c for c in data.get("channels") or [] if c not in CHANNELS]
    if strange:
        add("channels", f"unknown channel {strange[0]!r} (known: {', '.join(CHANNELS)})")
    translations = data.get("translations") or {}
    bad_locales = [k for k in translations if k not in plan.locales]
    if bad_locales:
        add(
            "translations",
            f"unknown locale {bad_locales[0]!r} (plan has: {', '.join(plan.locales)})",
        )
    for locale, text in translations.items():
        if not isinstance(text, dict):
            add(f"translations.{locale}", "must have a title and a body")
            continue
        add(f"translations.{locale}.title", title_problem(str(text.get("title") or "")))
        body = str(text.get("body") or "")
        add(f"translations.{locale}.body", body_problem(body, max_body_bytes))
    return errors


def one_line(text: str) -> str:
    """``text`` with line breaks and control characters turned into single spaces."""
    cleaned = "".join(" " if unicodedata.category(ch) in _NOT_ONE_LINE else ch for ch in text)
    return " ".join(cleaned.split())


def truncate_bytes(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8, on a character boundary, marked with …"""
    if len(text.encode()) <= max_bytes:
        return text
    return text.encode()[: max_bytes - 3].decode(errors="ignore").rstrip() + "…"


def sanitise(data: dict[str, Any], max_body_bytes: int) -> dict[str, Any]:
    """Monitoring's text made to fit the policy: one-line, truncated titles and bodies."""

    def title(text: Any) -> str:
        cleaned = one_line(str(text or ""))[:TITLE_MAX]
        return cleaned or "Monitoring alert"

    def body(text: Any) -> str:
        return truncate_bytes(str(text or "").strip(), max_body_bytes) or "Monitoring alert."

    fitted = {**data, "title": title(data.get("title")), "body": body(data.get("body"))}
    fitted["translations"] = {
        locale: {"title": title(t.get("title")), "body": body(t.get("body"))}
        for locale, t in (data.get("translations") or {}).items()
        if isinstance(t, dict)
    }
    return fitted
