"""``[whatsapp.templates.LOCALE]`` in the plan, and the template variables made from
announcements: clear errors naming the key, and WhatsApp's parameter rules held whatever
the text (Hypothesis)."""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broadcaster.domain import whatsapp_consent
from broadcaster.domain.plan import PlanError, parse_plan
from broadcaster.domain.plan_whatsapp import FIELDS, Template
from broadcaster.rendering import whatsapp
from tests.test_hostile import PAYLOADS
from tests.test_plan import SOURCE, VALID, problems

QUICK = settings(database=None, deadline=None)
EN_SID = "HX" + "a" * 32
TEMPLATE = {"content_sid": EN_SID, "variables": {"1": "title", "2": "body", "3": "status_url"}}


def plan_with(whatsapp_table: Any = None, channels: list[str] | None = None) -> dict[str, Any]:
    data = copy.deepcopy(VALID)
    if channels is not None:
        data["channels_by_severity"]["critical"] = channels
    if whatsapp_table is not None:
        data["whatsapp"] = whatsapp_table
    return data


def refused(data: dict[str, Any]) -> list[str]:
    with pytest.raises(PlanError) as caught:
        parse_plan(data, SOURCE)
    return problems(caught.value)


def test_a_plan_with_templates_per_language():
    nl = {**TEMPLATE, "content_sid": "HX" + "b" * 32}
    plan = parse_plan(
        plan_with({"templates": {"en": TEMPLATE, "nl": nl}}, ["email", "whatsapp"]), SOURCE
    )
    assert plan.whatsapp is not None
    assert plan.whatsapp.template_for("nl", "en").content_sid == "HX" + "b" * 32
    assert plan.whatsapp.template_for("da", "en").content_sid == EN_SID  # the fallback
    assert plan.whatsapp.templates["en"].variables == (
        ("1", "title"),
        ("2", "body"),
        ("3", "status_url"),
    )


@pytest.mark.parametrize(
    ("table", "channels", "expected"),
    [
        (
            None,
            ["email", "whatsapp"],
            "whatsapp.templates.en: missing: channels_by_severity.critical names whatsapp, "
            "which needs an approved template for the default locale ([whatsapp.templates.en])",
        ),
        (
            {"templates": {"nl": TEMPLATE}},
            None,
            "whatsapp.templates.en: missing: the default locale's template is every other "
            "language's fallback",
        ),
        (
            {"templates": {"en": {**TEMPLATE, "content_sid": "MG123"}}},
            None,
            "whatsapp.templates.en.content_sid: must be a Content SID: HX and 32 hex digits "
            "(Twilio Console → Messaging → Content Template Builder)",
        ),
        (
            {"templates": {"en": {**TEMPLATE, "variables": {"1": "title", "3": "body"}}}},
            None,
            "whatsapp.templates.en.variables: numbered 1, 2, 3… without gaps, as the "
            "template's {{1}}, {{2}}…",
        ),
        (
            {"templates": {"en": {**TEMPLATE, "variables": {"1": "password"}}}},
            None,
            "whatsapp.templates.en.variables.1: must name one of: "
            + ", ".join(FIELDS)
            + " (not 'password')",
        ),
        (
            {"templates": {"en": {**TEMPLATE, "variables": {"name": "title"}}}},
            None,
            "whatsapp.templates.en.variables.name: variables are numbered like the "
            "template's {{1}}: 1, 2, 3…",
        ),
        (
            {"templates": {"en": TEMPLATE, "fr": TEMPLATE}},
            None,
            "whatsapp.templates.fr: unknown locale 'fr' (plan has: en, nl)",
        ),
        (
            {"templates": {"en": {**TEMPLATE, "sid": "x"}}},
            None,
            "whatsapp.templates.en.sid: unknown key (expected one of: content_sid, variables)",
        ),
        ("HX123", None, "whatsapp: must be a table, not str"),
    ],
)
def test_a_broken_whatsapp_table_names_the_key(table, channels, expected):
    assert refused(plan_with(table, channels)) == [f"{SOURCE}: {expected}"]


def test_whatsapp_in_an_audience_or_the_fallback_needs_a_template():
    data = plan_with()
    data["audiences"]["consumers"]["channels"] = ["email", "whatsapp"]
    data["policy"]["fallback"] = {"whatsapp": "sms"}
    assert refused(data)[0].startswith(
        f"{SOURCE}: whatsapp.templates.en: missing: audiences.consumers.channels names whatsapp"
    )
    # An audience without a channels list takes every channel: that alone asks nothing.
    del data["audiences"]["consumers"]["channels"]
    del data["policy"]["fallback"]
    assert parse_plan(data, SOURCE).whatsapp is None


scalars = st.one_of(
    st.text(max_size=40),
    st.integers(),
    st.booleans(),
    st.none(),
    st.sampled_from(["title", "body", "HX" + "0" * 32, "en", "nl", "1"]),
)
tables = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(
                st.sampled_from(["templates", "en", "nl", "content_sid", "variables", "1"]),
                st.text(max_size=10),
            ),
            inner,
            max_size=5,
        ),
    ),
    max_leaves=25,
)


@given(tables)
@settings(QUICK, max_examples=300)
def test_hostile_whatsapp_tables_are_refused_by_key(table):
    """Whatever the table: a plan or a PlanError whose every line names a whatsapp key."""
    data = plan_with(None if table is None else table)
    try:
        plan = parse_plan(data, SOURCE)
    except PlanError as exc:
        for line in problems(exc):
            assert line.startswith(f"{SOURCE}: whatsapp"), line
        return
    if table is not None:
        assert plan.whatsapp is not None and "en" in plan.whatsapp.templates


hostile_text = st.one_of(
    st.text(max_size=3000),
    st.builds(
        lambda a, p, b: a + p + b,
        st.text(max_size=50),
        st.sampled_from(PAYLOADS),
        st.text(max_size=50),
    ),
    st.text(alphabet=st.sampled_from(["\n", "\t", " ", "\r", "\x00", "\u2028", "a", "é"])),
)


@given(
    title=hostile_text,
    body=hostile_text,
    fields=st.lists(st.sampled_from(sorted(FIELDS)), min_size=1, max_size=100),
)
@settings(QUICK, max_examples=300)
def test_template_variables_keep_whatsapps_rules(title, body, fields):
    """One line each, never empty, no control characters, within the budget together, and
    the status link whole: whatever the announcement says and the plan maps."""
    template = Template("en", EN_SID, tuple((str(i + 1), f) for i, f in enumerate(fields)))
    ctx = {
        "title": title,
        "body": body,
        "status_url": "https://status.acme.example/status",
        "organisation": "Acme Energy",
        "severity_label": "Critical",
        "status_label": "Investigating",
        "updated": "14:05",
        "next_update": "",
        "route": {"need": title[:30], "contact": "+31 20 123 4567", "hours": ""},
        "exercise": "",
    }
    values = whatsapp.variables(template, ctx)
    assert list(values) == [str(i + 1) for i in range(len(fields))]
    for number, name in template.variables:
        value = values[number]
        assert value.strip() and value == " ".join(value.split()), value
        assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in value)
        if name == "status_url":
            assert value == ctx["status_url"]
    fixed = sum(len(values[n]) for n, f in template.variables if f == "status_url")
    others = sum(len(values[n]) for n, f in template.variables if f != "status_url")
    assert others <= max(whatsapp.VARIABLES_MAX - fixed, len(fields))
    json.loads(json.dumps(values, ensure_ascii=False))  # what ContentVariables carries


@given(
    at=st.one_of(st.text(max_size=40), st.integers(), st.floats(), st.none(), st.booleans()),
    source=st.one_of(st.text(max_size=300), st.integers(), st.none(), st.lists(st.text())),
)
@settings(QUICK, max_examples=300)
def test_hostile_opt_ins_are_refused_by_field(at, source):
    """An opt-in is recorded as (time, one-line source) or refused naming its field."""
    try:
        stamp, text = whatsapp_consent.parse_opt_in(at, source)
    except whatsapp_consent.OptInError as exc:
        assert exc.field in ("whatsapp_opt_in_at", "whatsapp_opt_in_source")
        return
    assert isinstance(stamp, float) and text == " ".join(text.split()) and text
    assert len(text) <= whatsapp_consent.SOURCE_MAX


def test_a_window_about_to_close_counts_as_closed(r):
    now = time.time()
    whatsapp_consent.open_window(r, "fresh", now - 3600)
    whatsapp_consent.open_window(r, "closing", now - whatsapp_consent.WINDOW + 600)
    whatsapp_consent.open_window(r, "gone", now - whatsapp_consent.WINDOW - 1)
    assert whatsapp_consent.open_among(r, ["fresh", "closing", "gone", "never"]) == {"fresh"}
    assert 0 < r.ttl("bc:wa:window:fresh") <= whatsapp_consent.WINDOW - 3600
    assert not r.exists("bc:wa:window:gone")
