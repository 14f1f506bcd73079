"""The ``[whatsapp]`` table of the crisis plan: the pre-approved template per language.

```toml
[whatsapp.templates.en]
content_sid = "HX0123456789abcdef0123456789abcdef"   # Twilio Content Template Builder
variables = { "1" = "title", "2" = "body", "3" = "status_url" }

[whatsapp.templates.nl]
content_sid = "HXfedcba9876543210fedcba9876543210"
variables = { "1" = "title", "2" = "body", "3" = "status_url" }
```

WhatsApp lets a business start a conversation only with a template Meta approved; the
template's ``{{1}}``, ``{{2}}``… are filled from the announcement's fields named here.
A language without a template gets the default locale's (the preview warns). A plan that
names ``whatsapp`` as a channel must have the default locale's template, so nobody finds
out in the middle of a crisis that nothing can be sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# What a template variable may be filled with (rendering/whatsapp.py makes each value).
FIELDS: dict[str, str] = {
    "title": "the announcement's title",
    "body": "its body, on one line, shortened to fit",
    "status_url": "the status page link",
    "organisation": "the organisation's name",
    "severity": "the severity label (Critical, Major…)",
    "status": "the incident status label (Investigating…)",
    "updated": "when it was published, in the plan's time zone",
    "next_update": "the promised next update time (or a dash)",
    "route": "the route for the announcement's need: need, contact and hours",
    "confirm": "the request to reply 1/OK or 2/HELP where the audience must confirm, else -",
}
# Twilio's Content SIDs: HX and 32 hex digits.
CONTENT_SID = re.compile(r"HX[0-9a-fA-F]{32}")
MAX_VARIABLES = 100  # Twilio takes at most 100 ContentVariables pairs
_NUMBER = re.compile(r"[1-9][0-9]{0,2}")


@dataclass(frozen=True)
class Template:
    """One language's approved template: its Content SID and variable → field."""

    locale: str
    content_sid: str
    variables: tuple[tuple[str, str], ...]  # ("1", "title"), in number order


@dataclass(frozen=True)
class WhatsAppPlan:
    """``[whatsapp]``: templates by locale (the default locale's is the fallback)."""

    templates: dict[str, Template] = field(default_factory=dict)

    def template_for(self, locale: str, default_locale: str) -> Template | None:
        """The template of ``locale``, else the default locale's (None: no templates)."""
        return self.templates.get(locale) or self.templates.get(default_locale)


def parse_whatsapp(
    check: Any,
    data: dict[str, Any],
    locales: tuple[str, ...],
    default_locale: str,
    uses: list[str],
) -> WhatsAppPlan | None:
    """Validate ``[whatsapp]``; ``uses``: the plan keys that name the whatsapp channel."""
    raw = data.get("whatsapp")
    if raw is None:
        if uses:
            check.fail(
                f"whatsapp.templates.{default_locale}",
                f"missing: {uses[0]} names whatsapp, which needs an approved template "
                "for the default locale ([whatsapp.templates." + default_locale + "])",
            )
        return None
    if not isinstance(raw, dict):
        check.fail("whatsapp", f"must be a table, not {type(raw).__name__}")
        return None
    check.known_keys(raw, "whatsapp", ("templates",))
    tables = raw.get("templates", {})
    if not isinstance(tables, dict):
        check.fail("whatsapp.templates", "must be a table of locale = { content_sid, variables }")
        tables = {}
    templates: dict[str, Template] = {}
    for locale, table in tables.items():
        key = f"whatsapp.templates.{locale}"
        if locale not in locales:
            check.fail(key, f"unknown locale {locale!r} (plan has: {', '.join(locales)})")
            continue
        template = _template(check, key, locale, table)
        if template is not None:
            templates[locale] = template
    if default_locale not in tables:
        check.fail(
            f"whatsapp.templates.{default_locale}",
            "missing: the default locale's template is every other language's fallback",
        )
    return WhatsAppPlan(templates)


def _template(check: Any, key: str, locale: str, table: Any) -> Template | None:
    if not isinstance(table, dict):
        check.fail(key, 'must be a table like { content_sid = "HX…", variables = {…} }')
        return None
    check.known_keys(table, key, ("content_sid", "variables"))
    sid = table.get("content_sid")
    ok = True
    if not isinstance(sid, str) or not CONTENT_SID.fullmatch(sid):
        check.fail(
            f"{key}.content_sid",
            "must be a Content SID: HX and 32 hex digits (Twilio Console → Messaging → "
            "Content Template Builder)",
        )
        ok = False
    variables = _variables(check, f"{key}.variables", table.get("variables", {}))
    if variables is None or not ok:
        return None
    return Template(locale, str(sid), variables)


def _variables(check: Any, key: str, raw: Any) -> tuple[tuple[str, str], ...] | None:
    """``{ "1" = "title", … }``: numbered 1…n without gaps, each a known field."""
    if not isinstance(raw, dict):
        check.fail(key, 'must be a table like { "1" = "title", "2" = "body" }')
        return None
    if len(raw) > MAX_VARIABLES:
        check.fail(key, f"at most {MAX_VARIABLES} variables (Twilio's limit)")
        return None
    found: dict[int, str] = {}
    ok = True
    for number, name in raw.items():
        if not _NUMBER.fullmatch(number):
            check.fail(
                f"{key}.{number}", "variables are numbered like the template's {{1}}: 1, 2, 3…"
            )
            ok = False
        elif not isinstance(name, str) or name not in FIELDS:
            check.fail(
                f"{key}.{number}",
                f"must name one of: {', '.join(FIELDS)} (not {name!r})"[:300],
            )
            ok = False
        else:
            found[int(number)] = name
    if not ok:
        return None
    if sorted(found) != list(range(1, len(found) + 1)):
        check.fail(key, "numbered 1, 2, 3… without gaps, as the template's {{1}}, {{2}}…")
        return None
    return tuple((str(n), found[n]) for n in sorted(found))


def whatsapp_uses(
    by_severity: dict[str, tuple[str, ...]],
    audiences: dict[str, Any],
    raw_audiences: dict[str, Any],
    fallback: dict[str, str],
) -> list[str]:
    """The plan keys that name the whatsapp channel explicitly (an audience without a
    ``channels`` list takes every channel, which by itself does not count)."""
    uses = [
        f"channels_by_severity.{severity}"
        for severity, channels in by_severity.items()
        if "whatsapp" in channels
    ]
    for name, audience in audiences.items():
        raw = raw_audiences.get(name)
        if isinstance(raw, dict) and "channels" in raw and "whatsapp" in audience.channels:
            uses.append(f"audiences.{name}.channels")
    uses += [
        f"policy.fallback.{source}"
        for source, target in fallback.items()
        if "whatsapp" in (source, target)
    ]
    uses += [  # escalation to WhatsApp (domain/confirm_plan.py) sends the template too
        f"audiences.{name}.confirm.escalate"
        for name, audience in audiences.items()
        if getattr(audience, "confirm", None) and "whatsapp" in audience.confirm.escalate
    ]
    return uses
