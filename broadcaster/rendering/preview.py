"""Preview: exactly what every audience will get, on every channel, in every language.

Renders channel × audience × locale with the same code the workers use, measures each
rendering against its channel's limit, counts recipients, and warns about anything a
sender should know before pressing publish. It never sends or records a delivery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from broadcaster.domain import all_clear, visibility
from broadcaster.domain.announcement import Announcement
from broadcaster.domain.plan_social import place_locale
from broadcaster.domain.plan_text import missing_translations
from broadcaster.rendering import i18n
from broadcaster.rendering.segments import GSM7_SINGLE, UCS2_SINGLE
from channels import NETWORKS, PERSONAL

if TYPE_CHECKING:
    from broadcaster.services import Services  # the composition root; types only

PUBLIC_RENDERINGS = ("banner", *NETWORKS)  # shown whatever the channels: a preview
SURFACE_LABELS = {
    "status": "Status page, status.json and the feeds",
    "banner": "Website banner",
    "social": "Social: {name}",
    "webhook": "Webhook {name}",
}


def recipient_counts(svc: Services, announcement: Announcement) -> dict[str, dict[str, int]]:
    """Per channel: how many people would get it, and how many are skipped (opted out).

    The plan job's own choice (a resolution: the people the incident reached)."""
    seen: dict[str, set[str]] = {}
    skipped: dict[str, set[str]] = {}
    for send, skip in all_clear.choices(svc.redis, svc.subscribers, svc.plan, announcement):
        for channel, ids in send.items():
            seen.setdefault(channel, set()).update(ids)
        for channel, ids in skip.items():
            skipped.setdefault(channel, set()).update(ids)
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
            if any(account.locale == locale for account in plan.social):
                warnings.append(
                    f"no {locale} translation: the {locale} social accounts post the "
                    f"{plan.default_locale} text"
                )
        if locale != i18n.DEFAULT_LOCALE and i18n.resolve(locale) == i18n.DEFAULT_LOCALE:
            warnings.append(
                f'no {locale} catalogue for the fixed words ("Next update by", "Hours"): '
                f"{locale} readers see them in English"
            )
    # The plan's own texts (route channel and hours, audience descriptions) per locale.
    warnings += missing_translations(plan, announcement.audiences)
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
    reach = surfaces(svc, announcement)
    internal = visibility.stays_inside(plan, announcement)
    if announcement.exercise:
        warnings.append("exercise (a drill): reaches only the drill audiences, marked EXERCISE")
    if internal:
        warnings.append(
            "internal audiences only: not on the status page, the feeds, the banner, "
            "social networks or public webhooks"
        )
    public = []
    # What the public would see: nothing of an internal announcement, and of a mixed one
    # only its public audiences (their routes, not the internal ones).
    shown_to = visibility.public_audiences(plan, announcement.audiences)
    for channel in () if internal else PUBLIC_RENDERINGS:
        for locale in plan.locales:
            rendering = renderer.render(channel, announcement, shown_to, locale)
            shown: dict[str, Any] = {
                "channel": channel,
                "locale": locale,
                "language": rendering.locale,
                "content": rendering.content,
                "measures": rendering.measures,
            }
            if channel in NETWORKS:
                # The social accounts that post this text: the default one, or [social.LOCALE].
                shown["places"] = [
                    place
                    for place, network in svc.networks.items()
                    if network.name == channel
                    and place_locale(place, plan.default_locale) == locale
                ]
            public.append(shown)
            if rendering.measures.get("cut"):
                warnings.append(
                    f"{channel} ({locale}): {_fitted(rendering.measures)} to fit "
                    f"{rendering.measures['limit']} characters"
                )
    return {
        "renderings": renderings,
        "public": public,
        "recipients": recipient_counts(svc, announcement),
        "visibility": "internal" if internal else "public",
        "surfaces": reach,
        "warnings": list(dict.fromkeys(warnings)),
    }


def surfaces(svc: Services, announcement: Announcement) -> list[dict[str, Any]]:
    """Each public surface and webhook target: whether this announcement reaches it, and why.

    ``public`` says whether the surface is seen by anyone (status page, feeds, banner,
    social networks, public webhook targets) or only by us (internal webhook targets).
    """
    plan = svc.plan
    internal = visibility.stays_inside(plan, announcement)
    kept_in = "an exercise (drill)" if announcement.exercise else "every audience is internal"

    def item(surface: str, public: bool, reaches: bool, why: str) -> dict[str, Any]:
        kind, _, name = surface.partition(":")
        network, _, locale = name.partition(":")  # a [social.LOCALE] account: mastodon:nl
        shown = f"{network} ({locale})" if kind == "social" and locale else name
        label = SURFACE_LABELS.get(kind, kind).format(name=shown)
        return {
            "surface": surface,
            "label": label,
            "public": public,
            "reaches": reaches,
            "why": why,
        }

    found = [
        item("status", True, not internal, kept_in if internal else "every public announcement"),
        item(
            "banner",
            True,
            not internal and announcement.reaches("banner"),
            kept_in if internal else _channel_why(announcement, "banner"),
        ),
    ]
    for place in svc.networks:
        why = kept_in if internal else _channel_why(announcement, "social")
        locale = place_locale(place, plan.default_locale)
        if not internal and locale not in (plan.default_locale, *(announcement.translations or {})):
            why += f"; no {locale} translation: posts the {plan.default_locale} text"
        found.append(
            item(f"social:{place}", True, not internal and announcement.reaches("social"), why)
        )
    for target in plan.webhooks:
        if not announcement.reaches("webhook"):
            why = _channel_why(announcement, "webhook")
        elif not target.wants(announcement.audiences):
            why = f"only for {', '.join(target.audiences)}"
        elif internal and not target.internal:
            why = kept_in
        else:
            why = "internal target" if target.internal else "public target"
        found.append(
            item(
                f"webhook:{target.name}",
                not target.internal,
                visibility.reaches_target(plan, target, announcement)
                and announcement.reaches("webhook"),
                why,
            )
        )
    return found


def _channel_why(announcement: Announcement, channel: str) -> str:
    if announcement.reaches(channel):
        return f"{channel} is one of the channels"
    return f"{channel} is not one of the channels"


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
    if measures.get("template_fallback"):
        out.append(
            f"{where}: no WhatsApp template for {locale}: outside the 24-hour window they get "
            f"the {measures['template']} template"
        )
    if "template" in measures and measures["template"] is None:
        out.append(f"{where}: no WhatsApp template: only people who wrote within 24 hours")
    if "spoken_limit" in measures:  # a voice call
        if measures.get("cut"):
            out.append(
                f"{where}: {_fitted(measures)} to fit {measures['spoken_limit']} spoken characters"
            )
        if not measures.get("emergency_route"):
            out.append(
                f"{where}: no route with a phone number, so the call offers no "
                '"press 2 to be connected to us"'
            )
    if "subject_limit" in measures and measures.get("cut"):
        out.append(f"{where}: subject cut to {measures['subject_limit']} characters")
    return out
