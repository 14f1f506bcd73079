"""A WhatsApp message in both forms: the approved template's variables, and free text.

The fan-out picks one per person (``choose``): free text within the person's 24-hour
window, else the template. Both are rendered here, once per locale × audience set.

Template variables follow WhatsApp's rules for parameters (Twilio errors 63013, 63021): no
line breaks, tabs or runs of spaces, never empty, and the template with its values at most
1,024 characters — so the values together stay within ``VARIABLES_MAX``, the status link
whole and the rest shortened at word boundaries. A language without its own template gets
the default locale's, filled in the default locale's words (the template's language).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from broadcaster.domain.announcement import Announcement
from broadcaster.domain.plan_whatsapp import Template
from broadcaster.rendering.compose_text import (
    CONFIRM_ASK,
    announcement_parts,
    compose,
    one_line,
    with_confirm,
)
from broadcaster.rendering.segments import ELLIPSIS, shorten

if TYPE_CHECKING:
    from broadcaster.rendering.messages import Renderer, Rendering

TEXT_MAX = 1600  # Twilio's limit for one message Body
# The values together: the template's own words need room within WhatsApp's 1,024.
VARIABLES_MAX = 800
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_KEEP_WHOLE = ("status_url",)  # a shortened link is a broken link
EMPTY = "-"  # WhatsApp refuses an empty parameter


def _route(ctx: dict[str, Any]) -> str:
    route = ctx.get("route")
    if not route:
        return ""
    hours = f" ({route['hours']})" if route.get("hours") else ""
    return f"{route['need']}: {route['contact']}{hours}"


_FIELD_VALUES: dict[str, Callable[[dict[str, Any]], str]] = {
    "title": lambda ctx: (f"{ctx['exercise']}: " if ctx.get("exercise") else "") + ctx["title"],
    "body": lambda ctx: ctx["body"],
    "status_url": lambda ctx: ctx["status_url"],
    "organisation": lambda ctx: ctx["organisation"],
    "severity": lambda ctx: ctx["severity_label"],
    "status": lambda ctx: ctx["status_label"],
    "updated": lambda ctx: ctx["updated"],
    "next_update": lambda ctx: ctx["next_update"],
    "route": _route,
    # The request to confirm when the audience asks (else a dash): domain/confirm_plan.py.
    "confirm": lambda ctx: ctx["_"](CONFIRM_ASK) if ctx.get("confirm") else "",
}


def parameter(text: str) -> str:
    """One value as WhatsApp takes a parameter: one line, no control characters."""
    return one_line(_CONTROL.sub(" ", text))


def variables(template: Template, ctx: dict[str, Any]) -> dict[str, str]:
    """The template's variables filled from ``ctx``, within VARIABLES_MAX together.

    Shared fairly: shorter values stay whole, longer ones (the body) share what is left.
    """
    values = {number: parameter(_FIELD_VALUES[name](ctx)) for number, name in template.variables}
    budget = VARIABLES_MAX
    fixed = [n for n, name in template.variables if name in _KEEP_WHOLE]
    for number in fixed:
        budget -= len(values[number] or EMPTY)
    rest = sorted((n for n in values if n not in fixed), key=lambda n: len(values[n]))
    for i, number in enumerate(rest):
        share = max(1, budget // (len(rest) - i))
        value, _ = shorten(values[number], lambda s, share=share: len(s) <= share, ELLIPSIS)
        values[number] = value or EMPTY
        budget -= len(values[number])
    return {number: value or EMPTY for number, value in values.items()}


def free_text(renderer: Renderer, ctx: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The whole message as free text (within the 24-hour window), within TEXT_MAX."""
    head = (f"{ctx['exercise']}: " if ctx.get("exercise") else "") + one_line(
        renderer.plan.organisation
    )
    parts = with_confirm(announcement_parts(ctx, head + ":", renderer.status_url, "\n"), ctx)
    text = compose(parts, lambda s: len(s) <= TEXT_MAX)
    return text.text, {"length": len(text.text), "limit": TEXT_MAX, **text.measures()}


def render(
    renderer: Renderer,
    announcement: Announcement,
    audiences: list[str],
    language: str,
    ctx: dict[str, Any],
) -> Rendering:
    """Both forms for one audience set; ``language`` is the reader's (or the default)."""
    # messages.py dispatches here: imported when called, not when either module loads.
    from broadcaster.rendering.messages import Rendering, language_for

    plan = renderer.plan
    text, measures = free_text(renderer, ctx)
    content = {"text": text, "announcement_id": announcement.id}
    templates = plan.whatsapp.templates if plan.whatsapp else {}
    template = templates.get(language) or templates.get(plan.default_locale)
    if template is None:
        measures["template"] = None  # no template: free text within the window only
        return Rendering(content, language, measures)
    words = ctx
    if template.locale != language:
        # The default locale's template, in its own language: not Dutch words in English.
        words = renderer.context(
            announcement,
            audiences,
            language_for(announcement, template.locale, plan.default_locale),
        )
        words["exercise"] = ctx.get("exercise", "")
    filled = variables(template, words)
    content["content_sid"] = template.content_sid
    content["content_variables"] = json.dumps(filled, ensure_ascii=False)
    measures.update(
        template=template.locale,
        template_fallback=template.locale != language,
        variables=filled,
        variables_length=sum(len(v) for v in filled.values()),
        variables_limit=VARIABLES_MAX,
    )
    return Rendering(content, language, measures)


TEMPLATE_KEYS = ("content_sid", "content_variables")


def choose(content: dict[str, str], window_open: bool) -> dict[str, str]:
    """What one person gets: free text in their window (or when there is no template),
    else the template alone — Twilio refuses a Body beside a ContentSid."""
    if window_open or not content.get("content_sid"):
        return {k: v for k, v in content.items() if k not in TEMPLATE_KEYS}
    return {k: v for k, v in content.items() if k != "text"}
