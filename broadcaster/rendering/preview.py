"""Preview: exactly what every audience will get, on every channel, in every language.

Renders channel × audience × locale with the same code the workers use, measures each
rendering against its channel's limit, counts recipients, and warns about anything a
sender should know before pressing publish. It never sends or records a delivery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from broadcaster.domain.announcement import Announcement
from broadcaster.domain.subscribers import channels_for
from broadcaster.rendering.segments import GSM7_SINGLE, UCS2_SINGLE
from channels import NETWORKS, PERSONAL

if TYPE_CHECKING:
    from broadcaster.services import Services  # the composition root; types only

PUBLIC_RENDERINGS = ("banner", *NETWORKS)  # shown whatever the channels: a preview


def recipient_counts(svc: Services, announcement: Announcement) -> dict[str, dict[str, int]]:
    """Per channel: how many people would get it, and how many are skipped (opted out)."""
    seen: dict[str, set[str]] = {}
    skipped: dict[str, set[str]] = {}
    for chunk in svc.subscribers.ids_in(announcement.audiences):
        for sid, person in svc.subscribers.get_many(chunk).items():
            send, skip = channels_for(person, announcement, svc.plan)
            for channel in send:
                seen.setdefault(channel, set()).add(sid)
            for channel in skip:
                skipped.setdefault(channel, set()).add(sid)
    return {
        channel: {
            "recipients": len(seen.get(channel, ())),
            "skipped": len(skipped.get(channel, ())),
        }
        for channel in announcement.channels
        if channel in PERSONAL
    }


def preview(svc: Services, announcement: Announcement) -> dict[str, Any]:
    """Every rendering with its measures, recipient counts per channel, and warnings."""
    plan, renderer = svc.plan, svc.renderer
    translations = announcement.translations or {}
    warnings: list[str] = []
    for locale in plan.locales:
        if locale != plan.default_locale and locale not in translations:
            warnings.append(
                f"no {locale} translation: {locale} subscribers get the {plan.default_locale} text"
            )
    renderings: list[dict[str, Any]] = []
    for name in announcement.audiences:
        audience = plan.audiences[name]
        if not audience.routes:
            warnings.append(
                f"audience {name} has no routes: messages say nothing about whom to contact"
            )
        channels = [c for c in announcement.channels if c in audience.channels and c in PERSONAL]
        for channel in channels:
            for locale in plan.locales:
                rendering = renderer.render(channel, announcement, [name], locale)
                renderings.append(
                    {
                        "channel": channel,
                        "audience": name,
                        "locale": locale,
                        "language": rendering.locale,
                        "content": rendering.content,
                        "measures": rendering.measures,
                    }
                )
                warnings.extend(_warnings(channel, name, locale, rendering.measures))
    public = []
    for channel in PUBLIC_RENDERINGS:
        for locale in plan.locales:
            rendering = renderer.render(channel, announcement, list(announcement.audiences), locale)
            public.append(
                {
                    "channel": channel,
                    "locale": locale,
                    "language": rendering.locale,
                    "content": rendering.content,
                    "measures": rendering.measures,
                }
            )
            if rendering.measures.get("cut"):
                warnings.append(
                    f"{channel} ({locale}): {_fitted(rendering.measures)} to fit "
                    f"{rendering.measures['limit']} characters"
                )
    return {
        "renderings": renderings,
        "public": public,
        "recipients": recipient_counts(svc, announcement),
        "warnings": list(dict.fromkeys(warnings)),
    }


def _fitted(measures: dict[str, Any]) -> str:
    """What a short text gave up to fit: "left out route; shortened body"."""
    said = []
    if measures.get("left_out"):
        said.append("left out " + ", ".join(measures["left_out"]))
    if measures.get("shortened"):
        said.append("shortened " + ", ".join(measures["shortened"]))
    return "; ".join(said) or "cut"


def _warnings(channel: str, audience: str, locale: str, measures: dict[str, Any]) -> list[str]:
    where = f"{channel} to {audience} ({locale})"
    out = []
    # By what the rendering measured (SMS segments, an email subject), not by channel name.
    if "max_segments" in measures:
        if measures.get("cut"):
            out.append(
                f"{where}: {_fitted(measures)} to fit {measures['max_segments']} SMS segments"
            )
        if measures.get("encoding") == "UCS-2":
            out.append(
                f"{where}: a character outside GSM-7 switches the SMS to UCS-2 "
                f"({UCS2_SINGLE} instead of {GSM7_SINGLE} characters per segment: "
                "about twice the cost)"
            )
    if "subject_limit" in measures and measures.get("cut"):
        out.append(f"{where}: subject cut to {measures['subject_limit']} characters")
    return out
