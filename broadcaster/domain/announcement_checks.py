"""What an announcement request must satisfy before it is stored: the plan and the text policy.

Called by the announcement service only (the one way in). ``problems`` lists every
problem by field, for a 422 that says what to fix; ``sanitise`` makes monitoring's text fit.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from broadcaster.domain import components, text_policy
from broadcaster.domain.incidents import ALL_STATUSES, SEVERITIES, closes
from broadcaster.domain.plan import Plan
from broadcaster.domain.text_policy import BLOCK, LINE, TITLE_MAX
from channels import CHANNELS

# A promised next update lies between now (give or take a clock's skew) and 30 days ahead:
# a date outside that is a typo, and a year-9999 date once froze the banner.
PROMISE_PAST_SECONDS = 5 * 60
PROMISE_AHEAD_SECONDS = 30 * 24 * 3600
REASON_MAX = 2000


def timestamp(value: Any) -> float | None:
    """A datetime or epoch seconds as epoch seconds (None stays None)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


def route_needs(plan: Plan, audiences: list[str]) -> list[str]:
    """The need labels (default locale) of the audiences' routes: the values ``need`` takes."""
    needs = (
        route.need_for(plan.default_locale, plan.default_locale)
        for name in audiences
        if name in plan.audiences
        for route in plan.audiences[name].routes
    )
    return list(dict.fromkeys(needs))


def normalised(data: dict[str, Any]) -> dict[str, Any]:
    """The request with its texts in one form (LF line ends, NFC)."""
    out = dict(data)
    for key in ("title", "body", "bypass_reason"):
        if isinstance(out.get(key), str):
            out[key] = text_policy.normalise(out[key])
    out["translations"] = {
        locale: {k: text_policy.normalise(v) if isinstance(v, str) else v for k, v in t.items()}
        if isinstance(t, dict)
        else t
        for locale, t in (data.get("translations") or {}).items()
    }
    return out


def problems(
    data: dict[str, Any], plan: Plan, max_body_bytes: int, now: float | None = None
) -> dict[str, list[str]]:
    """Every way ``data`` breaks the plan or the text policy, by field."""
    now = time.time() if now is None else now
    errors: dict[str, list[str]] = {}

    def add(key: str, problem: str | None) -> None:
        if problem:
            errors.setdefault(key, []).append(problem)

    def text(key: str, value: Any, kind: str, **limits: int) -> None:
        if not isinstance(value, str):
            add(key, "must be text")
        else:
            add(key, text_policy.problem(value, kind, **limits))

    text("title", data.get("title"), LINE, max_chars=TITLE_MAX)
    text("body", data.get("body"), BLOCK, max_bytes=max_body_bytes)
    if data.get("bypass_reason") is not None:
        text("bypass_reason", data["bypass_reason"], BLOCK, max_chars=REASON_MAX)
    if data.get("severity") not in SEVERITIES:
        add("severity", f"must be one of: {', '.join(SEVERITIES)}")
    if (data.get("status") or "investigating") not in ALL_STATUSES:
        add("status", f"must be one of: {', '.join(ALL_STATUSES)}")
    audiences = list(data.get("audiences") or [])
    if not audiences:
        add("audiences", "name at least one audience")
    unknown = [a for a in audiences if a not in plan.audiences]
    if unknown:
        add("audiences", f"unknown audience {unknown[0]!r} (known: {', '.join(plan.audiences)})")
    strange = [c for c in data.get("channels") or [] if c not in CHANNELS]
    if strange:
        add("channels", f"unknown channel {strange[0]!r} (known: {', '.join(CHANNELS)})")
    elif "whatsapp" in (data.get("channels") or []) and not plan.whatsapp:
        # Outside the 24-hour window WhatsApp takes only an approved template.
        add("channels", "whatsapp needs an approved template: the plan has no [whatsapp.templates]")
    translations = data.get("translations") or {}
    bad_locales = [k for k in translations if k not in plan.locales]
    if bad_locales:
        add(
            "translations",
            f"unknown locale {bad_locales[0]!r} (plan has: {', '.join(plan.locales)})",
        )
    for locale, words in translations.items():
        if not isinstance(words, dict):
            add(f"translations.{locale}", "must have a title and a body")
            continue
        text(f"translations.{locale}.title", words.get("title"), LINE, max_chars=TITLE_MAX)
        text(f"translations.{locale}.body", words.get("body"), BLOCK, max_bytes=max_body_bytes)
    need = data.get("need")
    if need is not None:
        needs = route_needs(plan, audiences)
        if need not in needs:
            known = ", ".join(repr(n) for n in needs) or "none"
            add("need", f"must be the need of one of the audiences' routes ({known})")
    for problem in components.problems(data.get("components"), plan.components):
        add("components", problem)
    promised = timestamp(data.get("next_update_at"))
    if promised is not None and not (
        now - PROMISE_PAST_SECONDS <= promised <= now + PROMISE_AHEAD_SECONDS
    ):
        add("next_update_at", "must lie between now and 30 days ahead")
    if promised is not None and closes(data.get("status")):
        # A resolution is the last word: a promise on it would stand on no page and remind
        # nobody, yet customers would wait for it.
        add("next_update_at", "a resolution promises no next update: leave it empty")
    return errors


def sanitise(data: dict[str, Any], max_body_bytes: int) -> dict[str, Any]:
    """Monitoring's text made to fit the policy: cleaned, one-line, cut titles and bodies."""

    def title(value: Any) -> str:
        return text_policy.clean(str(value or ""), LINE, max_chars=TITLE_MAX) or "Monitoring alert"

    def body(value: Any) -> str:
        cleaned = text_policy.clean(str(value or ""), BLOCK, max_bytes=max_body_bytes)
        return cleaned or "Monitoring alert."

    fitted = {**data, "title": title(data.get("title")), "body": body(data.get("body"))}
    fitted["translations"] = {
        locale: {"title": title(t.get("title")), "body": body(t.get("body"))}
        for locale, t in (data.get("translations") or {}).items()
        if isinstance(t, dict)
    }
    return fitted
