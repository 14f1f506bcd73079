"""The crisis plan: organisation, audiences and their routes, channels per severity, policy.

Loaded once at start-up from TOML; a bad plan stops the service with the file, the key and
what is wrong, so nobody discovers a typo in the middle of a crisis.
"""

from __future__ import annotations

import socket
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from broadcaster.domain.components import Component, parse_components
from broadcaster.domain.confirm_plan import ConfirmPlan, parse_confirm
from broadcaster.domain.drill_plan import DrillPlan, parse_drills
from broadcaster.domain.incidents import SEVERITIES
from broadcaster.domain.monitoring_rules import Monitoring, parse_monitoring
from broadcaster.domain.phone_numbers import parse_sms_countries
from broadcaster.domain.plan_checks import PlanChecker
from broadcaster.domain.plan_social import SocialAccount, parse_social
from broadcaster.domain.plan_text import LocalText, parse_local_text, text_in
from broadcaster.domain.plan_webhooks import parse_webhooks
from broadcaster.domain.plan_whatsapp import WhatsAppPlan, parse_whatsapp, whatsapp_uses
from broadcaster.domain.promises import parse_next_update_minutes
from broadcaster.domain.staff_plan import StaffPlan, parse_staff
from broadcaster.domain.subscription_plan import SubscriptionPlan, parse_subscriptions
from channels import CHANNELS, CONTACT_FIELD
from channels.egress import Resolver
from channels.webhook import WebhookTarget

_TOP_KEYS = (
    "organisation",
    "policy",
    "channels_by_severity",
    "audiences",
    "monitoring",
    "holding_statements",
    "webhooks",
    "staff",
    "components",
    "social",
    "subscriptions",
    "drills",
    "whatsapp",
)

BUNDLED_PLAN = Path(__file__).resolve().parents[2] / "examples" / "plan.toml"


class PlanError(Exception):
    """The plan file is unreadable or invalid; the message names file, key and reason."""


@dataclass(frozen=True)
class Route:
    """For one need: the best channel, its contact and hours."""

    # Per locale (domain/plan_text.py): locale → text; "" is the text for every locale.
    need: LocalText
    channel: LocalText
    contact: str
    hours: LocalText = field(default_factory=dict)

    def need_for(self, locale: str, default_locale: str) -> str:
        return text_in(self.need, locale, default_locale)

    def texts_in(self, locale: str, default_locale: str) -> dict[str, str]:
        """need, channel, contact and hours as one reader in ``locale`` sees them."""
        return {
            "need": text_in(self.need, locale, default_locale),
            "channel": text_in(self.channel, locale, default_locale),
            "contact": self.contact,
            "hours": text_in(self.hours, locale, default_locale),
        }


@dataclass(frozen=True)
class Audience:
    name: str
    description: LocalText  # per locale, like a route's texts
    channels: tuple[str, ...]
    routes: tuple[Route, ...]
    # Our own people: its announcements and routes never reach a public surface.
    internal: bool = False
    # The need label (default locale) of the route short texts show when the announcement
    # names no need; "" means the first route.
    primary_route: str = ""
    # confirm = {within_minutes, escalate}: its people confirm, or get the next channel.
    confirm: ConfirmPlan | None = None
    # The need label (default locale) of the route a voice call's key 2 dials; "" means
    # the first route whose contact is a phone number (rendering/voice_text.py).
    emergency_route: str = ""

    def description_in(self, locale: str, default_locale: str) -> str:
        return text_in(self.description, locale, default_locale)


@dataclass(frozen=True)
class Plan:
    organisation: str
    default_locale: str
    locales: tuple[str, ...]
    default_region: str | None
    timezone: str
    approval_required: frozenset[str]
    sms_max_segments: int
    channels_by_severity: dict[str, tuple[str, ...]]
    audiences: dict[str, Audience] = field(default_factory=dict)
    monitoring: Monitoring = field(default_factory=Monitoring)
    webhooks: tuple[WebhookTarget, ...] = ()
    source: str = ""
    # channel → channel to use when a delivery fails for good (policy.fallback)
    fallback: dict[str, str] = field(default_factory=dict)
    # Countries (ISO codes) whose numbers may subscribe to SMS; empty: any (policy.sms_countries)
    sms_countries: tuple[str, ...] = ()
    # Staff briefed before every customer-facing announcement ([staff]); None: nobody first.
    staff: StaffPlan | None = None
    # policy.next_update_minutes: the next update Compose proposes to promise (None: the
    # monitoring's update_interval_minutes; 0: propose none)
    next_update_minutes: int | None = None
    # [components.X]: the parts of the service the status page reports on, in plan order.
    components: tuple[Component, ...] = ()
    # [social.LOCALE]: a social account per language beside the environment's default ones.
    social: tuple[SocialAccount, ...] = ()
    # [subscriptions]: who may subscribe themselves on /subscribe; None: nobody.
    subscriptions: SubscriptionPlan | None = None
    # [drills]: rehearsal scenarios and the only audiences a drill may reach; None: no drills
    drills: DrillPlan | None = None
    # [whatsapp]: the approved template per language; None: no WhatsApp templates.
    whatsapp: WhatsAppPlan | None = None

    @property
    def promise_interval(self) -> int:
        """Seconds from now to the next update Compose proposes (0: propose none)."""
        if self.next_update_minutes is None:
            return self.monitoring.update_interval
        return self.next_update_minutes * 60


def parse_plan(data: dict[str, Any], source: str, resolver: Resolver | None = None) -> Plan:
    """Validate plan data; raise PlanError listing every problem.

    ``resolver`` (getaddrinfo's shape) resolves webhook hosts; tests pass their own.
    """
    check = PlanChecker(source)
    check.known_keys(data, "", _TOP_KEYS)
    org = check.table(data, "organisation")
    check.known_keys(
        org, "organisation", ("name", "default_locale", "locales", "default_region", "timezone")
    )
    timezone = org.get("timezone", "UTC")
    try:
        ZoneInfo(str(timezone))
    except (ZoneInfoNotFoundError, ValueError, OSError):
        check.fail(
            "organisation.timezone", f"unknown time zone {timezone!r} (e.g. Europe/Amsterdam)"
        )
        timezone = "UTC"
    has_org = isinstance(data.get("organisation"), dict)
    name = check.string(org, "organisation.name") if has_org else ""
    default_locale = check.string(org, "organisation.default_locale", "en") if has_org else "en"
    locales = org.get("locales", [default_locale])
    if not isinstance(locales, list) or not all(isinstance(x, str) for x in locales):
        check.fail("organisation.locales", "must be a list of locale codes")
        locales = [default_locale]
    if default_locale not in locales:
        locales = [default_locale, *locales]
    region = org.get("default_region")
    if region is not None and (not isinstance(region, str) or len(region) != 2):
        check.fail("organisation.default_region", "must be a two-letter country code")

    policy = check.table(data, "policy", required=False)
    check.known_keys(
        policy,
        "policy",
        (
            "approval_required",
            "sms_max_segments",
            "fallback",
            "sms_countries",
            "next_update_minutes",
        ),
    )
    approval = policy.get("approval_required", [])
    if not isinstance(approval, list) or any(s not in SEVERITIES for s in approval):
        check.fail("policy.approval_required", f"must be a list of {', '.join(SEVERITIES)}")
        approval = []
    segments = policy.get("sms_max_segments", 2)
    if not isinstance(segments, int) or isinstance(segments, bool) or not 1 <= segments <= 10:
        check.fail("policy.sms_max_segments", "must be a whole number from 1 to 10")
        segments = 2
    fallback = _fallback(check, policy)
    next_update, problem = parse_next_update_minutes(policy.get("next_update_minutes"))
    if problem:
        check.fail("policy.next_update_minutes", problem)
    sms_countries, problem = parse_sms_countries(policy.get("sms_countries", []))
    if problem:
        check.fail("policy.sms_countries", problem)

    by_severity_raw = check.table(data, "channels_by_severity")
    by_severity: dict[str, tuple[str, ...]] = {}
    for severity, value in by_severity_raw.items():
        if severity not in SEVERITIES:
            check.fail(f"channels_by_severity.{severity}", "unknown severity")
            continue
        by_severity[severity] = check.channel_list(value, f"channels_by_severity.{severity}")
    if by_severity_raw:
        # A severity left out would silently send nothing by default: say so now.
        for severity in SEVERITIES:
            if severity not in by_severity_raw:
                check.fail(f"channels_by_severity.{severity}", "missing (use [] for no channels)")

    def local(value: Any, key: str, required: bool) -> LocalText:
        return parse_local_text(
            check,
            value,
            key,
            tuple(locales),
            default_locale,
            required=required,
            check_locales="locales" in org,  # without a locale list, nothing to check
        )

    audiences: dict[str, Audience] = {}
    for aname, raw in check.table(data, "audiences").items():
        key = f"audiences.{aname}"
        if not isinstance(raw, dict):
            check.fail(key, "must be a table")
            continue
        check.known_keys(
            raw,
            key,
            (
                "description",
                "channels",
                "routes",
                "internal",
                "primary_route",
                "emergency_route",
                "confirm",
            ),
        )
        internal = check.boolean(raw, f"{key}.internal")
        channels = check.channel_list(raw.get("channels", list(CHANNELS)), f"{key}.channels")
        routes = []
        raw_routes = raw.get("routes", [])
        if not isinstance(raw_routes, list):
            check.fail(f"{key}.routes", "must be an array of tables ([[...routes]])")
            raw_routes = []
        for i, route in enumerate(raw_routes):
            rkey = f"{key}.routes[{i}]"
            if not isinstance(route, dict):
                check.fail(rkey, "must be a table")
                continue
            check.known_keys(route, rkey, ("need", "channel", "contact", "hours"))
            routes.append(
                Route(
                    need=local(route.get("need"), f"{rkey}.need", required=True),
                    channel=local(route.get("channel"), f"{rkey}.channel", required=True),
                    contact=check.string(route, f"{rkey}.contact"),
                    hours=local(route.get("hours"), f"{rkey}.hours", required=False),
                )
            )
        audiences[aname] = Audience(
            name=aname,
            description=local(raw.get("description"), f"{key}.description", required=False),
            channels=channels,
            routes=tuple(routes),
            internal=internal,
            primary_route=_primary_route(check, raw, key, routes, default_locale),
            confirm=parse_confirm(check, raw.get("confirm"), f"{key}.confirm"),
            emergency_route=_primary_route(
                check, raw, key, routes, default_locale, "emergency_route"
            ),
        )
    if not audiences and "audiences" in data:
        check.fail("audiences", "declare at least one audience")

    monitoring = parse_monitoring(check, data, audiences, tuple(locales), default_locale)
    webhooks = parse_webhooks(check, data, audiences, resolver or socket.getaddrinfo)
    staff = parse_staff(check, data, audiences, tuple(locales), default_locale)
    components = parse_components(check, data, tuple(locales), default_locale, monitoring.rules)
    social = parse_social(check, data, tuple(locales), default_locale)
    subscriptions = parse_subscriptions(check, data, audiences)
    drills = parse_drills(check, data, audiences, monitoring)
    raw_audiences = data["audiences"] if isinstance(data.get("audiences"), dict) else {}
    uses = whatsapp_uses(by_severity, audiences, raw_audiences, fallback)
    whatsapp = parse_whatsapp(check, data, tuple(locales), default_locale, uses)

    if check.problems:
        raise PlanError("invalid crisis plan:\n  " + "\n  ".join(check.problems))
    return Plan(
        organisation=name,
        default_locale=default_locale,
        locales=tuple(locales),
        default_region=region,
        timezone=str(timezone),
        approval_required=frozenset(approval),
        sms_max_segments=segments,
        channels_by_severity=by_severity,
        audiences=audiences,
        monitoring=monitoring,
        webhooks=webhooks,
        source=source,
        fallback=fallback,
        sms_countries=sms_countries,
        staff=staff,
        next_update_minutes=next_update,
        components=components,
        social=social,
        subscriptions=subscriptions,
        drills=drills,
        whatsapp=whatsapp,
    )


def _primary_route(
    check: PlanChecker,
    raw: dict[str, Any],
    key: str,
    routes: list[Route],
    default_locale: str,
    name: str = "primary_route",
) -> str:
    """``primary_route = "Billing"`` (or ``name``): one of the audience's need labels."""
    value = raw.get(name)
    if value is None:
        return ""
    needs = [r.need_for(default_locale, default_locale) for r in routes]
    if not isinstance(value, str) or value not in needs:
        known = ", ".join(repr(n) for n in needs) or "none: the audience has no routes"
        check.fail(f"{key}.{name}", f"must be the need of one of its routes ({known})")
        return ""
    return value


def _fallback(check: PlanChecker, policy: dict[str, Any]) -> dict[str, str]:
    """``policy.fallback = {sms = "email"}``: personal channel → another personal channel."""
    raw = policy.get("fallback", {})
    if not isinstance(raw, dict):
        check.fail("policy.fallback", 'must be a table like {sms = "email"}')
        return {}
    personal = ", ".join(CONTACT_FIELD)
    fallback = {}
    for source, target in raw.items():
        key = f"policy.fallback.{source}"
        if source not in CONTACT_FIELD:
            check.fail(key, f"only a personal channel can fall back (one of: {personal})")
        elif target not in CONTACT_FIELD:
            check.fail(key, f"must name a personal channel (one of: {personal}), not {target!r}")
        elif target == source:
            check.fail(key, "cannot fall back to itself")
        else:
            fallback[source] = target
    return fallback


def load_plan(path: str | Path | None) -> Plan:
    """Read and validate the plan at ``path`` (default: the bundled example plan)."""
    file = Path(path) if path else BUNDLED_PLAN
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise PlanError(f"{file}: file not found (BROADCASTER_PLAN)") from exc
    except UnicodeDecodeError as exc:
        raise PlanError(f"{file}: not UTF-8 text: {exc}") from exc
    except OSError as exc:
        raise PlanError(f"{file}: cannot read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise PlanError(f"{file}: not valid TOML: {exc}") from exc
    return parse_plan(data, file.name)
