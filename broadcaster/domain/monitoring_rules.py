"""The monitoring part of the crisis plan: rules, holding statements and timing.

```toml
[monitoring]
update_interval_minutes = 30   # "next update by" in holding statements
reopen_window_minutes = 30     # an alert firing again within this reopens the incident
min_interval_minutes = 15      # email/SMS updates at most once per interval (not the all-clear)
new_incidents_per_rule = 3     # a rule opens at most this many incidents per window by itself;
new_incidents_window_minutes = 10  # beyond, its alerts gather in one "several alerts" draft

[[monitoring.rules]]
match = { severity = "critical" }          # exact label values
match_re = { service = "payments|cards" }  # regular expressions (whole value)
audiences = ["consumers"]
holding_statement = "payments-outage"      # pre-approved: published at once
all_clear = "payments-ok"                  # on resolve; without it a draft waits for a human

[holding_statements.payments-outage]
en = { title = "Problems with {service}", body = "We are investigating since {started}." }
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from broadcaster.domain.components import parse_states
from broadcaster.domain.incidents import SEVERITIES, STATUSES

PLACEHOLDERS = ("service", "alertname", "summary", "started", "next_update", "organisation")


@dataclass(frozen=True)
class MonitoringRule:
    """Which alerts open which kind of announcement."""

    match: dict[str, str]
    audiences: tuple[str, ...]
    match_re: dict[str, str] = field(default_factory=dict)
    severity: str | None = None
    channels: tuple[str, ...] | None = None
    holding_statement: str | None = None  # pre-approved: published at once
    all_clear: str | None = None  # published on resolve; otherwise a draft waits for a human
    draft: bool = False
    new_incidents: int | None = None  # this rule's own limit per window, else the plan's
    # The need the alert is about (a route's need label, default locale): short texts show
    # that route, e.g. the customer portal for a payments outage rather than the live chat.
    need: str | None = None
    # Component states its alert sets (``components = {payments = "major_outage"}``); the
    # alert's resolution returns them to operational.
    components: dict[str, str] = field(default_factory=dict)

    def matches(self, labels: dict[str, str]) -> bool:
        """True when every exact and regex matcher holds for these labels."""
        if any(labels.get(k) != v for k, v in self.match.items()):
            return False
        return all(re.fullmatch(p, labels.get(k, "")) for k, p in self.match_re.items())


@dataclass(frozen=True)
class HoldingStatement:
    """A pre-approved text per locale, filled in from the alert's labels and annotations."""

    name: str
    texts: dict[str, tuple[str, str]]  # locale → (title, body)
    status: str = "investigating"


@dataclass(frozen=True)
class Monitoring:
    rules: tuple[MonitoringRule, ...] = ()
    statements: dict[str, HoldingStatement] = field(default_factory=dict)
    update_interval: int = 30 * 60
    reopen_window: int = 30 * 60
    min_interval: int = 15 * 60
    # Floods: a rule opens at most this many incidents per window (seconds) by itself.
    new_incidents_per_rule: int = 3
    new_incidents_window: float = 10 * 60

    def limit_for(self, rule: MonitoringRule) -> int:
        """How many new incidents ``rule`` may open per window."""
        return self.new_incidents_per_rule if rule.new_incidents is None else rule.new_incidents

    def rule_for(self, labels: dict[str, str]) -> MonitoringRule | None:
        """The first rule that matches, in plan order."""
        return next((rule for rule in self.rules if rule.matches(labels)), None)

    def describe(self, rule: MonitoringRule) -> str:
        """How people see a rule: "rule 2: severity=critical service~pay.* → consumers; …"."""
        parts = [f"{k}={v}" for k, v in rule.match.items()]
        parts += [f"{k}~{v}" for k, v in rule.match_re.items()]
        what = (
            f"holding statement {rule.holding_statement}"
            if rule.holding_statement and not rule.draft
            else "a draft for approval"
        )
        number = self.rules.index(rule) + 1
        return f"rule {number}: {' '.join(parts) or 'any'} → {', '.join(rule.audiences)}; {what}"


def _minutes(check: Any, table: dict[str, Any], key: str, default: int) -> int:
    value = table.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 7 * 24 * 60:
        check.fail(f"monitoring.{key}", "must be a whole number of minutes (0 to 10080)")
        return default * 60
    return value * 60


def _count(check: Any, value: Any, where: str, default: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 1000:
        check.fail(where, "must be a whole number from 0 to 1000")
        return default
    return value


def _window(check: Any, table: dict[str, Any], key: str, default: float) -> float:
    # A fraction of a minute is allowed: a test plan (or a drill) can use a window of seconds.
    value = table.get(key, default)
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not 0 < value <= 7 * 24 * 60
    ):
        check.fail(f"monitoring.{key}", "must be a number of minutes above 0 (at most 10080)")
        return default * 60
    return float(value) * 60


def parse_monitoring(
    check: Any,
    data: dict[str, Any],
    audiences: dict[str, Any],
    locales: tuple[str, ...],
    default_locale: str,
) -> Monitoring:
    """Validate ``[monitoring]`` and ``[holding_statements]``, reporting through ``check``."""
    statements = _statements(check, data, locales, default_locale, STATUSES)
    monitoring = check.table(data, "monitoring", required=False)
    check.known_keys(
        monitoring,
        "monitoring",
        (
            "rules",
            "update_interval_minutes",
            "reopen_window_minutes",
            "min_interval_minutes",
            "new_incidents_per_rule",
            "new_incidents_window_minutes",
        ),
    )
    raw_rules = monitoring.get("rules", [])
    if not isinstance(raw_rules, list):
        check.fail("monitoring.rules", "must be an array of tables ([[monitoring.rules]])")
        raw_rules = []
    rules = []
    for i, raw in enumerate(raw_rules):
        key = f"monitoring.rules[{i}]"
        if not isinstance(raw, dict):
            check.fail(key, "must be a table")
            continue
        check.known_keys(
            raw,
            key,
            (
                "match",
                "match_re",
                "audiences",
                "severity",
                "channels",
                "holding_statement",
                "all_clear",
                "draft",
                "new_incidents",
                "need",
                "components",
            ),
        )
        match = raw.get("match", {})
        match_re = raw.get("match_re", {})
        for name, table in (("match", match), ("match_re", match_re)):
            if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
                check.fail(f"{key}.{name}", "must be a table of label = value")
        if not isinstance(match, dict) or not isinstance(match_re, dict) or not (match or match_re):
            check.fail(f"{key}.match", "must be a table of label = value")
            match, match_re = {}, {}
        for label, pattern in list(match_re.items()):
            try:
                re.compile(str(pattern))
            except re.error as exc:
                check.fail(f"{key}.match_re.{label}", f"not a regular expression: {exc}")
                match_re.pop(label)
        names = raw.get("audiences")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            check.fail(f"{key}.audiences", "must be a non-empty list of audience names")
            names = []
        for name in names:
            if name not in audiences:
                check.fail(f"{key}.audiences", f"unknown audience {name!r}")
        severity = raw.get("severity")
        if severity is not None and severity not in SEVERITIES:
            check.fail(f"{key}.severity", f"must be one of {', '.join(SEVERITIES)}")
        draft = raw.get("draft", False)
        if not isinstance(draft, bool):
            check.fail(f"{key}.draft", "must be true or false")
            draft = False
        named = {}
        for field_name in ("holding_statement", "all_clear"):
            value = raw.get(field_name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                check.fail(f"{key}.{field_name}", "must be the name of a holding statement")
                value = None
            elif value is not None and statements is not None and value not in statements:
                check.fail(f"{key}.{field_name}", f"no [holding_statements.{value}] in the plan")
            named[field_name] = value
        channels = raw.get("channels")
        new_incidents = (
            _count(check, raw["new_incidents"], f"{key}.new_incidents", 0)
            if "new_incidents" in raw
            else None
        )
        need = _need(check, raw.get("need"), f"{key}.need", names, audiences, default_locale)
        states, problem = parse_states(raw.get("components"))
        if problem:
            check.fail(f"{key}.components", problem)
        rules.append(
            MonitoringRule(
                match=dict(match) if isinstance(match, dict) else {},
                match_re=dict(match_re) if isinstance(match_re, dict) else {},
                audiences=tuple(names),
                severity=severity,
                channels=check.channel_list(channels, f"{key}.channels")
                if channels is not None
                else None,
                holding_statement=named["holding_statement"],
                all_clear=named["all_clear"],
                draft=draft,
                new_incidents=new_incidents,
                need=need,
                components=states,
            )
        )
    return Monitoring(
        rules=tuple(rules),
        statements=statements or {},
        update_interval=_minutes(check, monitoring, "update_interval_minutes", 30),
        reopen_window=_minutes(check, monitoring, "reopen_window_minutes", 30),
        min_interval=_minutes(check, monitoring, "min_interval_minutes", 15),
        new_incidents_per_rule=_count(
            check,
            monitoring.get("new_incidents_per_rule", 3),
            "monitoring.new_incidents_per_rule",
            3,
        ),
        new_incidents_window=_window(check, monitoring, "new_incidents_window_minutes", 10),
    )


def _need(
    check: Any,
    value: Any,
    key: str,
    names: list[str],
    audiences: dict[str, Any],
    default_locale: str,
) -> str | None:
    """A rule's ``need``: the default-locale need label of a route of one of its audiences."""
    if value is None:
        return None
    needs = [
        route.need_for(default_locale, default_locale)
        for name in names
        if name in audiences
        for route in audiences[name].routes
    ]
    if not isinstance(value, str) or value not in needs:
        known = ", ".join(repr(n) for n in dict.fromkeys(needs)) or "none"
        check.fail(key, f"must be the need of one of its audiences' routes ({known})")
        return None
    return value


def _statements(
    check: Any,
    data: dict[str, Any],
    locales: tuple[str, ...],
    default_locale: str,
    statuses: tuple[str, ...],
) -> dict[str, HoldingStatement] | None:
    raw_all = data.get("holding_statements", {})
    if not isinstance(raw_all, dict):
        check.fail("holding_statements", "must be a table of [holding_statements.NAME]")
        return None
    out = {}
    for name, raw in raw_all.items():
        key = f"holding_statements.{name}"
        if not isinstance(raw, dict):
            check.fail(key, "must be a table")
            continue
        status = raw.get("status", "investigating")
        if status not in statuses:
            check.fail(f"{key}.status", f"must be one of {', '.join(statuses)}")
        texts = {}
        for locale, text in raw.items():
            if locale == "status":
                continue
            if locale not in locales:
                check.fail(f"{key}.{locale}", f"unknown locale (plan has: {', '.join(locales)})")
                continue
            if not isinstance(text, dict) or not all(
                isinstance(text.get(k), str) and text[k].strip() for k in ("title", "body")
            ):
                check.fail(f"{key}.{locale}", 'must be { title = "…", body = "…" }')
                continue
            for part in ("title", "body"):
                unknown = [p for p in re.findall(r"{(\w*)}", text[part]) if p not in PLACEHOLDERS]
                if unknown:
                    check.fail(
                        f"{key}.{locale}.{part}",
                        f"unknown placeholder {{{unknown[0]}}} (known: {', '.join(PLACEHOLDERS)})",
                    )
            texts[locale] = (text["title"], text["body"])
        if default_locale not in texts:
            check.fail(key, f"needs a text in the default locale {default_locale!r}")
        out[name] = HoldingStatement(name=name, texts=texts, status=str(status))
    return out
