"""The crisis plan loader: the bundled plan, every kind of mistake, all problems at once."""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from broadcaster.domain.monitoring_rules import MonitoringRule
from broadcaster.domain.plan import (
    BUNDLED_PLAN,
    SEVERITIES,
    Plan,
    PlanError,
    load_plan,
    parse_plan,
)
from broadcaster.domain.plan_text import missing_translations
from channels import CHANNELS

SOURCE = "plan.toml"
KNOWN_CHANNELS = ", ".join(CHANNELS)
SEVERITY_LIST = ", ".join(SEVERITIES)
TOP_KEYS = ", ".join(
    (
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
)

# A small valid plan; each broken case below changes exactly one thing in a copy of it.
VALID: dict[str, Any] = {
    "organisation": {
        "name": "Acme Energy",
        "default_locale": "en",
        "locales": ["en", "nl"],
        "default_region": "NL",
        "timezone": "Europe/Amsterdam",
    },
    "policy": {"approval_required": ["major", "critical"], "sms_max_segments": 2},
    "channels_by_severity": {
        "info": ["email"],
        "minor": ["email"],
        "major": ["email", "sms"],
        "critical": ["email", "sms"],
    },
    "audiences": {
        "consumers": {
            "description": "Private customers",
            "channels": ["email", "sms"],
            "routes": [
                {
                    "need": {"en": "Technical problem", "nl": "Technisch probleem"},
                    "channel": "Live chat",
                    "contact": "https://acme.example/chat",
                    "hours": "24/7",
                },
                {"need": "Emergency", "channel": "Phone", "contact": "+31 20 123 4567"},
            ],
        },
        "business": {
            "description": "Business customers",
            "channels": ["email"],
            "routes": [
                {"need": "Account manager", "channel": "Phone", "contact": "+31 20 765 4321"}
            ],
        },
    },
    "monitoring": {
        "rules": [
            {
                "match": {"severity": "critical", "service": "payments"},
                "audiences": ["consumers", "business"],
                "holding_statement": "payments-outage",
            }
        ]
    },
    "holding_statements": {
        "payments-outage": {"en": {"title": "Payments", "body": "Since {started}."}},
    },
}

DROP = object()  # as a value in ``edit``: remove the key
KeyPath = tuple[str | int, ...]


def edit(*changes: tuple[KeyPath, Any]) -> Callable[[dict[str, Any]], None]:
    """Set (or with DROP remove) the value at each path, e.g. ("audiences", "x", "routes", 0)."""

    def apply(data: dict[str, Any]) -> None:
        for path, value in changes:
            parent: Any = data
            for step in path[:-1]:
                parent = parent[step]
            if value is DROP:
                del parent[path[-1]]
            else:
                parent[path[-1]] = value

    return apply


def rename(path: KeyPath, new: str) -> Callable[[dict[str, Any]], None]:
    """Rename the key at ``path`` (a typo in the plan)."""

    def apply(data: dict[str, Any]) -> None:
        parent: Any = data
        for step in path[:-1]:
            parent = parent[step]
        parent[new] = parent.pop(path[-1])

    return apply


def broken(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    data = copy.deepcopy(VALID)
    change(data)
    return data


def problems(exc: PlanError) -> list[str]:
    """The problem lines of a PlanError (after the 'invalid crisis plan:' heading)."""
    head, *lines = str(exc).splitlines()
    assert head == "invalid crisis plan:"
    return [line.strip() for line in lines]


ROUTE0 = ("audiences", "consumers", "routes", 0)
ROUTE1 = ("audiences", "consumers", "routes", 1)
RULE0 = ("monitoring", "rules", 0)

# (id, change, every expected problem line: "<file>: <key>: <reason>")
BROKEN_PLANS = [
    ("no organisation", edit((("organisation",), DROP)), ["organisation: missing"]),
    (
        "no organisation.name",
        edit((("organisation", "name"), DROP)),
        ["organisation.name: missing"],
    ),
    pytest.param(
        "empty [organisation] table",
        edit((("organisation",), {})),
        ["organisation.name: missing"],
    ),
    (
        "blank organisation.name",
        edit((("organisation", "name"), "  ")),
        ["organisation.name: must be a non-empty string"],
    ),
    (
        "route without contact",
        edit(((*ROUTE1, "contact"), DROP)),
        ["audiences.consumers.routes[1].contact: missing"],
    ),
    (
        "route without channel",
        edit(((*ROUTE0, "channel"), DROP)),
        ["audiences.consumers.routes[0].channel: missing"],
    ),
    (
        "route without need",
        edit(((*ROUTE0, "need"), DROP)),
        ["audiences.consumers.routes[0].need: missing"],
    ),
    (
        "need as an empty table",
        edit(((*ROUTE0, "need"), {})),
        ["audiences.consumers.routes[0].need: must be text or a table of locale = text"],
    ),
    (
        "need label not text",
        edit(((*ROUTE0, "need"), {"en": "Technical problem", "nl": 3})),
        ["audiences.consumers.routes[0].need: must be text or a table of locale = text"],
    ),
    (
        "unknown channel in channels_by_severity",
        edit((("channels_by_severity", "critical"), ["email", "pigeon"])),
        [f"channels_by_severity.critical: unknown channel 'pigeon' (known: {KNOWN_CHANNELS})"],
    ),
    (
        "unknown channel in an audience",
        edit((("audiences", "business", "channels"), ["pigeon"])),
        [f"audiences.business.channels: unknown channel 'pigeon' (known: {KNOWN_CHANNELS})"],
    ),
    (
        "audience channels not a list",
        edit((("audiences", "business", "channels"), "email")),
        ["audiences.business.channels: must be a list of channel names"],
    ),
    (
        "unknown severity in channels_by_severity",
        edit((("channels_by_severity", "urgent"), ["email"])),
        ["channels_by_severity.urgent: unknown severity"],
    ),
    (
        "no channels_by_severity",
        edit((("channels_by_severity",), DROP)),
        ["channels_by_severity: missing"],
    ),
    (
        "approval_required names an unknown severity",
        edit((("policy", "approval_required"), ["major", "urgent"])),
        [f"policy.approval_required: must be a list of {SEVERITY_LIST}"],
    ),
    (
        "approval_required not a list",
        edit((("policy", "approval_required"), "major")),
        [f"policy.approval_required: must be a list of {SEVERITY_LIST}"],
    ),
    *[
        (
            f"sms_max_segments = {value!r}",
            edit((("policy", "sms_max_segments"), value)),
            ["policy.sms_max_segments: must be a whole number from 1 to 10"],
        )
        for value in (0, 11, "2", True, 2.0)
    ],
    (
        "three-letter default_region",
        edit((("organisation", "default_region"), "NLD")),
        ["organisation.default_region: must be a two-letter country code"],
    ),
    (
        "unknown timezone",
        edit((("organisation", "timezone"), "Mars/Olympus")),
        ["organisation.timezone: unknown time zone 'Mars/Olympus' (e.g. Europe/Amsterdam)"],
    ),
    (
        "timezone that is not a normalized key",
        edit((("organisation", "timezone"), "../etc/passwd")),
        ["organisation.timezone: unknown time zone '../etc/passwd' (e.g. Europe/Amsterdam)"],
    ),
    pytest.param(
        "timezone that is a region, not a zone",
        edit((("organisation", "timezone"), "Europe")),
        ["organisation.timezone: unknown time zone 'Europe' (e.g. Europe/Amsterdam)"],
    ),
    (
        "typo in a top-level key",
        rename(("channels_by_severity",), "chanels_by_severity"),
        [
            f"chanels_by_severity: unknown key (expected one of: {TOP_KEYS})",
            "channels_by_severity: missing",
        ],
    ),
    (
        "unknown key in an audience",
        rename(("audiences", "business", "channels"), "chanels"),
        [
            "audiences.business.chanels: unknown key "
            "(expected one of: description, channels, routes, internal, primary_route, "
            "emergency_route, confirm)"
        ],
    ),
    (
        "unknown key in a route",
        edit(((*ROUTE1, "hour"), "24/7")),
        [
            "audiences.consumers.routes[1].hour: unknown key "
            "(expected one of: need, channel, contact, hours)"
        ],
    ),
    (
        "unknown key in organisation",
        rename(("organisation", "timezone"), "time_zone"),
        [
            "organisation.time_zone: unknown key (expected one of: "
            "name, default_locale, locales, default_region, timezone)"
        ],
    ),
    (
        "unknown key in policy",
        rename(("policy", "approval_required"), "approval"),
        [
            "policy.approval: unknown key"
            " (expected one of: approval_required, sms_max_segments, fallback, sms_countries, "
            "next_update_minutes)"
        ],
    ),
    (
        "unknown key in a monitoring rule",
        edit(((*RULE0, "audience"), ["staff"])),
        [
            "monitoring.rules[0].audience: unknown key (expected one of: "
            "match, match_re, audiences, severity, channels, holding_statement, all_clear, draft, "
            "new_incidents, need, components)"
        ],
    ),
    (
        "monitoring rule with an unknown audience",
        edit(((*RULE0, "audiences"), ["consumers", "partners"])),
        ["monitoring.rules[0].audiences: unknown audience 'partners'"],
    ),
    (
        "monitoring rule without audiences",
        edit(((*RULE0, "audiences"), [])),
        ["monitoring.rules[0].audiences: must be a non-empty list of audience names"],
    ),
    (
        "monitoring rule with an empty match",
        edit(((*RULE0, "match"), {})),
        ["monitoring.rules[0].match: must be a table of label = value"],
    ),
    (
        "monitoring rule matching non-text values",
        edit(((*RULE0, "match"), {"severity": "critical", "priority": 1})),
        ["monitoring.rules[0].match: must be a table of label = value"],
    ),
    (
        "monitoring rule with a bad severity",
        edit(((*RULE0, "severity"), "urgent")),
        [f"monitoring.rules[0].severity: must be one of {SEVERITY_LIST}"],
    ),
    (
        "monitoring rule with an unknown channel",
        edit(((*RULE0, "channels"), ["pigeon"])),
        [f"monitoring.rules[0].channels: unknown channel 'pigeon' (known: {KNOWN_CHANNELS})"],
    ),
    (
        "monitoring rule with an empty holding_statement",
        edit(((*RULE0, "holding_statement"), " ")),
        ["monitoring.rules[0].holding_statement: must be the name of a holding statement"],
    ),
    (
        "monitoring.rules not an array",
        edit((("monitoring", "rules"), {"match": {"service": "payments"}})),
        ["monitoring.rules: must be an array of tables ([[monitoring.rules]])"],
    ),
    (
        "routes not an array",
        edit((("audiences", "business", "routes"), "Phone")),
        ["audiences.business.routes: must be an array of tables ([[...routes]])"],
    ),
    (
        "audiences declared but empty",
        edit((("audiences",), {}), (("monitoring",), DROP)),
        ["audiences: declare at least one audience"],
    ),
    (
        "no audiences",
        edit((("audiences",), DROP), (("monitoring",), DROP)),
        ["audiences: missing"],
    ),
]


def named(cases: list[Any]) -> list[Any]:
    """Each case as a pytest.param whose id is its description."""
    return [
        pytest.param(*case.values, marks=case.marks, id=case.values[0])
        if hasattr(case, "marks")
        else pytest.param(*case, id=case[0])
        for case in cases
    ]


def test_the_valid_base_plan_parses() -> None:
    """Each broken case changes one thing in VALID, so VALID itself must be accepted."""
    plan = parse_plan(copy.deepcopy(VALID), SOURCE)
    assert plan.organisation == "Acme Energy"
    assert plan.source == SOURCE


@pytest.mark.parametrize(("case", "change", "expected"), named(BROKEN_PLANS))
def test_a_broken_plan_names_file_key_and_reason(
    case: str, change: Callable[[dict[str, Any]], None], expected: list[str]
) -> None:
    with pytest.raises(PlanError) as caught:
        parse_plan(broken(change), SOURCE)
    assert problems(caught.value) == [f"{SOURCE}: {line}" for line in expected], case


# Values the loader must reject with a PlanError naming the key; today it crashes or accepts them.
NOT_REJECTED = [
    pytest.param(
        "monitoring rule audiences holding a list",
        edit(((*RULE0, "audiences"), [["consumers"]])),
        "monitoring.rules[0].audiences",
        id="rule-audiences-nested-list",
    ),
    pytest.param(
        "monitoring rule draft as text",
        edit(((*RULE0, "draft"), "false")),
        "monitoring.rules[0].draft",
        id="rule-draft-text",
    ),
]


@pytest.mark.parametrize(("case", "change", "key"), NOT_REJECTED)
def test_a_bad_value_is_a_plan_error_naming_the_key(
    case: str, change: Callable[[dict[str, Any]], None], key: str
) -> None:
    with pytest.raises(PlanError) as caught:
        parse_plan(broken(change), SOURCE)
    assert any(line.startswith(f"{SOURCE}: {key}: ") for line in problems(caught.value)), case


def test_the_bundled_plan_loads() -> None:
    plan = load_plan(None)
    assert plan == load_plan(BUNDLED_PLAN)
    assert isinstance(plan, Plan)
    assert plan.source == "plan.toml"
    assert plan.organisation == "Acme Energy"
    assert plan.default_locale == "en"
    assert plan.locales == ("en", "nl", "da", "sv")
    assert plan.default_region == "NL"
    assert plan.timezone == "Europe/Amsterdam"
    assert plan.approval_required == frozenset({"major", "critical"})
    assert plan.sms_max_segments == 2
    assert set(plan.channels_by_severity) == set(SEVERITIES)
    assert plan.channels_by_severity["critical"] == ("banner", "social", "email", "sms", "webhook")
    assert list(plan.audiences) == ["consumers", "business", "staff"]
    for name, audience in plan.audiences.items():
        assert audience.name == name
        assert audience.routes, name
        assert all(route.channel and route.contact for route in audience.routes), name
    consumers = plan.audiences["consumers"]
    assert consumers.channels == ("email", "sms", "banner", "social")
    assert plan.audiences["staff"].channels == ("email", "sms", "webhook")
    assert consumers.description_in("en", "en") == "Private customers"
    assert consumers.description_in("nl", "en") == "Particuliere klanten"
    assert consumers.primary_route == "Technical problem"
    assert plan.audiences["business"].primary_route == ""
    assert [route.texts_in("en", "en")["channel"] for route in consumers.routes] == [
        "Live chat",
        "Customer portal",
        "Phone",
    ]
    chat = consumers.routes[0]
    assert chat.need["nl"] == "Technisch probleem"
    assert chat.texts_in("sv", "en") == {
        "need": "Tekniskt problem",
        "channel": "Livechatt",
        "contact": "https://acme.example/chat",
        "hours": "24/7",
    }
    # Every text the bundled plan shows customers is written in each of its languages.
    assert missing_translations(plan, plan.audiences) == []
    assert plan.monitoring.rules == (
        MonitoringRule(
            match={"severity": "critical", "service": "payments"},
            audiences=("consumers", "business"),
            holding_statement="payments-outage",
            need="Billing",
            components={"payments": "major_outage"},
        ),
        MonitoringRule(
            match={},
            match_re={"severity": "critical|major"},
            audiences=("staff",),
            channels=("email", "webhook"),
            draft=True,
        ),
    )
    assert set(plan.monitoring.statements) == {"payments-outage", "payments-ok"}
    assert plan.monitoring.min_interval == 15 * 60


PARTLY_TRANSLATED = """
[organisation]
name = "Acme"
default_locale = "en"
locales = ["en", "nl", "da"]
[channels_by_severity]
info = []
minor = []
major = []
critical = []
[audiences.consumers]
description = { en = "Private customers", nl = "Particuliere klanten" }
[[audiences.consumers.routes]]
need = { en = "Technical problem", nl = "Technisch probleem" }
channel = { en = "Live chat", da = "Livechat" }
contact = "https://acme.example/chat"
hours = { en = "Mon-Fri 9-17", nl = "ma-vr 9-17" }
[[audiences.consumers.routes]]
need = "Billing"
channel = "Portal"
contact = "https://acme.example/portal"
"""

PLAN_TEXTS = [
    # (locale, the first route as read in it, the description)
    (
        "en",
        {"need": "Technical problem", "channel": "Live chat", "hours": "Mon-Fri 9-17"},
        "Private customers",
    ),
    (
        "nl",
        {"need": "Technisch probleem", "channel": "Live chat", "hours": "ma-vr 9-17"},
        "Particuliere klanten",
    ),
    # No Danish need, hours or description: the default locale's.
    (
        "da",
        {"need": "Technical problem", "channel": "Livechat", "hours": "Mon-Fri 9-17"},
        "Private customers",
    ),
]


@pytest.mark.parametrize(("locale", "route", "description"), PLAN_TEXTS)
def test_plan_texts_per_locale_fall_back_to_the_default_locale(
    locale: str, route: dict[str, str], description: str
) -> None:
    plan = parse_plan(tomllib.loads(PARTLY_TRANSLATED), "plan.toml")
    consumers = plan.audiences["consumers"]
    assert consumers.routes[0].texts_in(locale, "en") == {
        **route,
        "contact": "https://acme.example/chat",
    }
    assert consumers.description_in(locale, "en") == description
    # A plain text is the same in every language.
    assert consumers.routes[1].texts_in(locale, "en")["channel"] == "Portal"


def test_missing_plan_translations_are_named_by_key() -> None:
    plan = parse_plan(tomllib.loads(PARTLY_TRANSLATED), "plan.toml")
    warnings = missing_translations(plan, ["consumers"])
    named = {w.split(" has no ")[0] + " " + w.split(" has no ")[1].split()[0] for w in warnings}
    assert named == {
        "audiences.consumers.description da",
        "audiences.consumers.routes[0].need da",
        "audiences.consumers.routes[0].channel nl",
        "audiences.consumers.routes[0].hours da",
    }
    assert (
        "audiences.consumers.routes[0].channel has no nl text: nl readers see the en one "
        "('Live chat')"
    ) in warnings


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("channel", '{ nl = "Livechat" }', "needs a label for the default locale 'en'"),
        ("channel", '{ en = "Chat", de = "Chat" }', "unknown locale 'de' (plan has: en, nl, da)"),
        ("hours", "24", "must be text or a table of locale = text"),
        ("hours", '{ en = "" }', "must be text or a table of locale = text"),
        ("channel", '""', "must be text or a table of locale = text"),
    ],
)
def test_bad_per_locale_texts_are_refused_with_their_key(
    field: str, value: str, problem: str
) -> None:
    route = {"need": '"Billing"', "channel": '"Portal"', "contact": '"+31 20 123 4567"'}
    route[field] = value
    lines = "\n".join(f"{key} = {text}" for key, text in route.items())
    source = PARTLY_TRANSLATED.split("[[audiences.consumers.routes]]")[0]
    source += f"[[audiences.consumers.routes]]\n{lines}\n"
    with pytest.raises(PlanError) as caught:
        parse_plan(tomllib.loads(source), "plan.toml")
    assert f"audiences.consumers.routes[0].{field}: {problem}" in str(caught.value)


def test_every_problem_in_a_file_is_reported_at_once(tmp_path: Path) -> None:
    file = tmp_path / "crisis.toml"
    file.write_text(
        """
[organisation]
locales = ["en"]
default_region = "NLD"
timezone = "Mars/Olympus"

[policy]
sms_max_segments = 0

[channels_by_severity]
info = []
minor = []
major = []
critical = ["pigeon"]

[audiences.consumers]
[[audiences.consumers.routes]]
need = "Emergency"
channel = "Phone"

[[monitoring.rules]]
match = {}
audiences = ["partners"]
""",
        encoding="utf-8",
    )
    with pytest.raises(PlanError) as caught:
        load_plan(file)
    lines = str(caught.value).splitlines()
    assert lines[0] == "invalid crisis plan:"
    assert len(lines) == 1 + 8
    assert sorted(problems(caught.value)) == sorted(
        f"crisis.toml: {line}"
        for line in [
            "organisation.name: missing",
            "organisation.default_region: must be a two-letter country code",
            "organisation.timezone: unknown time zone 'Mars/Olympus' (e.g. Europe/Amsterdam)",
            "policy.sms_max_segments: must be a whole number from 1 to 10",
            f"channels_by_severity.critical: unknown channel 'pigeon' (known: {KNOWN_CHANNELS})",
            "audiences.consumers.routes[0].contact: missing",
            "monitoring.rules[0].match: must be a table of label = value",
            "monitoring.rules[0].audiences: unknown audience 'partners'",
        ]
    )


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    file = tmp_path / "nowhere.toml"
    with pytest.raises(PlanError) as caught:
        load_plan(file)
    assert str(caught.value) == f"{file}: file not found (BROADCASTER_PLAN)"


def test_invalid_toml_names_the_file_and_the_line(tmp_path: Path) -> None:
    file = tmp_path / "plan.toml"
    file.write_text('[organisation]\nname = "Acme Energy\n', encoding="utf-8")
    with pytest.raises(PlanError) as caught:
        load_plan(file)
    message = str(caught.value)
    assert message.startswith(f"{file}: not valid TOML: ")
    assert "line 2" in message


VALID_TOML = """
[organisation]
name = "Acme Energy"
default_locale = "en"

[channels_by_severity]
info = []
minor = []
major = ["email"]
critical = ["email"]

[audiences.staff]
"""


def test_a_plan_not_in_utf8_names_the_file(tmp_path: Path) -> None:
    file = tmp_path / "plan.toml"
    file.write_bytes(VALID_TOML.replace("Acme Energy", "Strøm A/S").encode("latin-1"))
    with pytest.raises(PlanError) as caught:
        load_plan(file)
    assert str(caught.value).startswith(f"{file}: ")
    assert "utf-8" in str(caught.value).lower()


def test_a_directory_instead_of_a_plan_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(PlanError) as caught:
        load_plan(tmp_path)
    assert str(caught.value).startswith(f"{tmp_path}: ")


def test_default_locale_is_added_to_locales() -> None:
    data = copy.deepcopy(VALID)
    data["organisation"]["default_locale"] = "da"
    data["audiences"]["consumers"]["routes"][0]["need"]["da"] = "Teknisk problem"
    data["holding_statements"]["payments-outage"]["da"] = {"title": "Betalinger", "body": "Fejl."}
    plan = parse_plan(data, SOURCE)
    assert plan.default_locale == "da"
    assert plan.locales == ("da", "en", "nl")


def test_an_audience_without_channels_gets_every_channel(tmp_path: Path) -> None:
    file = tmp_path / "plan.toml"
    file.write_text(VALID_TOML, encoding="utf-8")
    plan = load_plan(file)
    assert plan.audiences["staff"].channels == tuple(CHANNELS)
    assert plan.audiences["staff"].routes == ()
    # what a plan may leave out
    assert plan.locales == ("en",)
    assert plan.timezone == "UTC"
    assert plan.default_region is None
    assert plan.approval_required == frozenset()
    assert plan.sms_max_segments == 2
    assert plan.monitoring.rules == ()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            edit((("channels_by_severity", "info"), DROP)),
            "channels_by_severity.info: missing (use [] for no channels)",
        ),
        (
            edit((("audiences", "consumers", "routes", 0, "need"), {"nl": "Technisch probleem"})),
            "audiences.consumers.routes[0].need: needs a label for the default locale 'en'",
        ),
        (
            edit((("audiences", "consumers", "routes", 0, "need"), {"en": "Tech", "dk": "Teknik"})),
            "audiences.consumers.routes[0].need: unknown locale 'dk' (plan has: en, nl)",
        ),
    ],
)
def test_gaps_that_would_silently_send_nothing_or_blank_labels(change, expected) -> None:
    data = copy.deepcopy(VALID)
    change(data)
    with pytest.raises(PlanError) as caught:
        parse_plan(data, SOURCE)
    assert problems(caught.value) == [f"{SOURCE}: {expected}"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            edit((("monitoring", "rules", 0, "holding_statement"), "nope")),
            "monitoring.rules[0].holding_statement: no [holding_statements.nope] in the plan",
        ),
        (
            edit((("monitoring", "rules", 0, "match_re"), {"service": "pay(ments"})),
            "monitoring.rules[0].match_re.service: not a regular expression: "
            "missing ), unterminated subpattern at position 3",
        ),
        (
            edit((("holding_statements", "payments-outage", "en", "body"), "At {when}.")),
            "holding_statements.payments-outage.en.body: unknown placeholder {when} (known: "
            "service, alertname, summary, started, next_update, organisation)",
        ),
        (
            edit((("holding_statements", "payments-outage"), {"nl": {"title": "T", "body": "B"}})),
            "holding_statements.payments-outage: needs a text in the default locale 'en'",
        ),
        (
            edit((("monitoring", "min_interval_minutes"), -1)),
            "monitoring.min_interval_minutes: must be a whole number of minutes (0 to 10080)",
        ),
    ],
)
def test_monitoring_rules_and_holding_statements(change, expected) -> None:
    data = copy.deepcopy(VALID)
    change(data)
    with pytest.raises(PlanError) as caught:
        parse_plan(data, SOURCE)
    assert problems(caught.value) == [f"{SOURCE}: {expected}"]
