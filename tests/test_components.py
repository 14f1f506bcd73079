"""Components: the plan declares them, announcements and monitoring rules set their states,
the status page shows each one's state now, its 90-day history and the overall indicator.

The history is a pure function over the logged events (``domain/component_history.py``),
so most of it is tested here with scripted times; the rest goes through the real API,
the real hooks and the real status page.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broadcaster.domain import component_history as history
from broadcaster.domain.components import STATES
from broadcaster.domain.plan import PlanError, load_plan, parse_plan
from tests.helpers import publish
from tests.test_monitoring import alertmanager, hook

T0 = datetime(2026, 11, 1, 0, 0, tzinfo=UTC).timestamp()  # a day starts here (UTC)
HOUR = 3600.0
DAY = 86400.0


def event(at, incident, ann, states=None, resolved=False, **extra):
    return {
        "at": at,
        "incident": incident,
        "announcement": ann,
        "audiences": ["consumers"],
        "states": states or {},
        "resolved": resolved,
        "titles": {"": f"title of {incident}"},
        **extra,
    }


SCRIPT = [
    # day 0: payments degraded 10:00, major 12:00, resolved 15:00
    event(T0 + 10 * HOUR, "inc_a", "a1", {"payments": "degraded_performance"}),
    event(T0 + 12 * HOUR, "inc_a", "a2", {"payments": "major_outage"}),
    event(T0 + 15 * HOUR, "inc_a", "a3", resolved=True),
    # day 2, 23:00 → day 3, 02:00: portal partial outage across midnight
    event(T0 + 2 * DAY + 23 * HOUR, "inc_b", "b1", {"portal": "partial_outage"}),
    event(T0 + 3 * DAY + 2 * HOUR, "inc_b", "b2", resolved=True),
    # day 4: two incidents on payments at once; the worse one wins until it resolves
    event(T0 + 4 * DAY + 8 * HOUR, "inc_c", "c1", {"payments": "degraded_performance"}),
    event(T0 + 4 * DAY + 9 * HOUR, "inc_d", "d1", {"payments": "major_outage"}),
    event(T0 + 4 * DAY + 10 * HOUR, "inc_d", "d2", resolved=True),
]
NOW = T0 + 5 * DAY + 12 * HOUR


def test_history_per_day_is_the_worst_state_with_that_days_incidents():
    snapshots = history.replay(SCRIPT)
    payments = history.daily(snapshots, "payments", NOW, "UTC", days=6)
    assert [d["date"] for d in payments] == [f"2026-11-0{n}" for n in range(1, 7)]
    assert [d["state"] for d in payments] == [
        "major_outage",
        "operational",
        "operational",
        "operational",
        "major_outage",
        "degraded_performance",  # inc_c never resolved: still degraded today
    ]
    assert payments[0]["incidents"] == ["inc_a"]
    assert payments[4]["incidents"] == ["inc_c", "inc_d"]
    portal = history.daily(snapshots, "portal", NOW, "UTC", days=6)
    # Across midnight: both days show the outage and the incident.
    assert [d["state"] for d in portal][2:4] == ["partial_outage", "partial_outage"]
    assert portal[3]["incidents"] == ["inc_b"]
    assert portal[4]["state"] == "operational" and portal[4]["incidents"] == []


def test_current_state_and_since_when():
    snapshots = history.replay(SCRIPT)
    assert history.current(snapshots, "payments") == (
        "degraded_performance",
        T0 + 4 * DAY + 10 * HOUR,  # back to inc_c's state when inc_d resolved
    )
    assert history.current(snapshots, "portal") == ("operational", T0 + 3 * DAY + 2 * HOUR)
    assert history.current(snapshots, "website") == ("operational", None)


def test_days_follow_the_plans_time_zone():
    # 23:00 UTC on 1 November is already 2 November in Amsterdam.
    snapshots = history.replay([event(T0 + 23 * HOUR, "i", "x", {"payments": "major_outage"})])
    days = history.daily(snapshots, "payments", T0 + 23.5 * HOUR, "Europe/Amsterdam", days=2)
    assert days == [
        {"date": "2026-11-01", "state": "operational", "incidents": []},
        {"date": "2026-11-02", "state": "major_outage", "incidents": ["i"]},
    ]


def test_withdrawn_announcement_stops_counting_and_reopen_sets_states_again():
    script = [
        event(T0 + 1 * HOUR, "i", "x1", {"payments": "major_outage"}),
        {"at": T0 + 2 * HOUR, "incident": "i", "withdraws": "x1"},
        event(T0 + 3 * HOUR, "j", "y1", {"portal": "degraded_performance"}),
        event(T0 + 4 * HOUR, "j", "y2", resolved=True),
        event(T0 + 5 * HOUR, "j", "y3"),  # reopened: its states stand again
    ]
    snapshots = history.replay(script)
    assert history.current(snapshots, "payments") == ("operational", T0 + 2 * HOUR)
    assert history.current(snapshots, "portal") == ("degraded_performance", T0 + 5 * HOUR)
    assert [s.states for s in snapshots] == [
        {"payments": "major_outage"},
        {},
        {"portal": "degraded_performance"},
        {},
        {"portal": "degraded_performance"},
    ]


def test_explicit_operational_clears_a_component_before_the_resolution():
    script = [
        event(T0, "i", "x1", {"payments": "major_outage", "portal": "partial_outage"}),
        event(T0 + HOUR, "i", "x2", {"payments": "operational"}),
    ]
    assert history.replay(script)[-1].states == {"portal": "partial_outage"}


@pytest.mark.parametrize(
    ("states", "impacts", "expected"),
    [
        ([], [], ("none", "All Systems Operational")),
        (["operational"], ["none"], ("none", "All Systems Operational")),
        (["under_maintenance"], [], ("minor", "Service Under Maintenance")),
        (["degraded_performance", "operational"], [], ("minor", "Partially Degraded Service")),
        (["partial_outage", "degraded_performance"], [], ("major", "Partial System Outage")),
        (["major_outage", "partial_outage"], ["minor"], ("critical", "Major System Outage")),
        (["operational"], ["major"], ("major", "Partial System Outage")),
        (["degraded_performance"], ["critical"], ("critical", "Major System Outage")),
        (["operational"], ["minor"], ("minor", "Minor Service Outage")),
    ],
)
def test_overall_indicator(states, impacts, expected):
    found = history.indicator(states, impacts)
    assert (found["indicator"], found["description"]) == expected


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0, 10 * DAY),
            st.sampled_from(["i1", "i2", "i3"]),
            st.dictionaries(st.sampled_from(["payments", "portal"]), st.sampled_from(STATES)),
            st.booleans(),
        ),
        max_size=30,
    )
)
def test_history_holds_together_for_any_script(items):
    """Whatever the script: a day's state is at least as bad as the state in force at its
    end, and a day naming no incident is operational."""
    script = [
        event(T0 + at, inc, f"a{n}", states, resolved)
        for n, (at, inc, states, resolved) in enumerate(items)
    ]
    snapshots = history.replay(script)
    rank = {s: i for i, s in enumerate(STATES)}
    days = history.daily(snapshots, "payments", T0 + 10 * DAY, "UTC", days=11)
    for day in days:
        assert (day["state"] == "operational") == (not day["incidents"])
    end_state = snapshots[-1].states.get("payments", "operational") if snapshots else "operational"
    assert rank[days[-1]["state"]] >= rank[end_state]


# The plan ------------------------------------------------------------------------------

PLAN = {
    "organisation": {"name": "Acme", "default_locale": "en", "locales": ["en", "nl"]},
    "channels_by_severity": {s: [] for s in ("info", "minor", "major", "critical")},
    "audiences": {"consumers": {"description": "Customers"}},
}


def plan_with(**extra):
    return parse_plan({**PLAN, **extra}, "plan.toml")


def test_plan_declares_components_with_names_per_locale_or_plain():
    plan = plan_with(
        components={
            "payments": {"name": {"en": "Payments", "nl": "Betalingen"}, "group": "Money"},
            "website": {"name": "Website"},
        }
    )
    payments, website = plan.components
    assert payments.name_for("nl", "en") == "Betalingen"
    assert payments.group_for("en", "en") == "Money" and payments.position == 1
    assert website.name_for("nl", "en") == "Website" and website.group is None


@pytest.mark.parametrize(
    ("components", "rules", "expected"),
    [
        ({"Pay ments": {"name": "x"}}, [], "components.Pay ments: the id must be"),
        ({"payments": {}}, [], "components.payments.name: missing"),
        ({"payments": "Payments"}, [], "components.payments: must be a table"),
        ({"payments": {"name": {"nl": "Betalingen"}}}, [], "needs a label for the default locale"),
        ({"payments": {"name": {"en": "P", "fr": "P"}}}, [], "unknown locale 'fr'"),
        (
            {"payments": {"name": "P", "colour": "red"}},
            [],
            "components.payments.colour: unknown key",
        ),
        ({"payments": {"name": "P", "group": 3}}, [], "components.payments.group: must be text"),
        (
            {"payments": {"name": "P"}},
            [
                {
                    "match": {"a": "b"},
                    "audiences": ["consumers"],
                    "components": {"cards": "major_outage"},
                }
            ],
            "monitoring.rules[0].components: unknown component 'cards'",
        ),
        (
            {"payments": {"name": "P"}},
            [{"match": {"a": "b"}, "audiences": ["consumers"], "components": {"payments": "down"}}],
            "monitoring.rules[0].components: component 'payments': unknown state 'down'",
        ),
    ],
)
def test_bad_components_fail_at_load_with_key_and_reason(components, rules, expected):
    with pytest.raises(PlanError) as caught:
        plan_with(components=components, monitoring={"rules": rules})
    assert expected in str(caught.value)


def test_bundled_plan_declares_components():
    plan = load_plan(None)
    assert [c.id for c in plan.components] == ["payments", "portal", "website"]
    assert plan.monitoring.rules[0].components == {"payments": "major_outage"}


# Through the API and the status page -----------------------------------------------------

OUTAGE = {
    "title": "Payments fail",
    "body": "Card payments fail since 14:05.",
    "severity": "minor",
    "status": "investigating",
    "audiences": ["consumers"],
    "channels": ["banner"],
    "components": {"payments": "major_outage", "portal": "degraded_performance"},
}


def components_of(client, lang="en"):
    data = client.get(f"/status.json?lang={lang}").get_json()
    found = {c["id"]: c for g in data["components"] for c in g["components"]}
    return data, found


def test_announcement_sets_states_and_resolution_returns_them_to_operational(client, tokens):
    data, found = components_of(client)
    assert data["status"] == {"indicator": "none", "description": "All Systems Operational"}
    assert {c["state"] for c in found.values()} == {"operational"}

    created = publish(client, tokens, OUTAGE)
    data, found = components_of(client, "nl")
    assert found["payments"]["state"] == "major_outage"
    assert found["payments"]["name"] == "Betalingen"
    assert found["portal"]["state"] == "degraded_performance"
    assert found["website"]["state"] == "operational"
    assert data["status"]["indicator"] == "critical"
    today = found["payments"]["days"][-1]
    assert len(found["payments"]["days"]) == 90
    assert today["state"] == "major_outage" and today["incidents"] == [created["incident_id"]]
    assert today["titles"] == ["Payments fail"]
    # The update says which states it set.
    assert data["open"][0]["updates"][0]["components"] == OUTAGE["components"]

    publish(
        client,
        tokens,
        OUTAGE,
        status="resolved",
        incident_id=created["incident_id"],
        components={},
        title="Payments work again",
    )
    data, found = components_of(client)
    assert {c["state"] for c in found.values()} == {"operational"}
    assert data["status"]["indicator"] == "none"
    # The day keeps its worst state and names the incident by its latest title.
    assert found["payments"]["days"][-1]["state"] == "major_outage"
    assert found["payments"]["days"][-1]["titles"] == ["Payments work again"]


@pytest.mark.parametrize(
    ("components", "message"),
    [
        ({"cards": "major_outage"}, "unknown component 'cards'"),
        ({"payments": "down"}, "component 'payments': unknown state 'down'"),
    ],
)
def test_unknown_component_or_state_is_a_422_naming_it(client, tokens, components, message):
    response = client.post(
        "/api/v1/announcements", json={**OUTAGE, "components": components}, headers=tokens["admin"]
    )
    assert response.status_code == 422
    assert any(message in m for m in response.get_json()["errors"]["components"])


def test_internal_announcements_change_nothing_the_public_sees(client, tokens):
    internal = {**OUTAGE, "audiences": ["staff"], "channels": ["email"]}
    publish(client, tokens, internal)
    data, found = components_of(client)
    assert {c["state"] for c in found.values()} == {"operational"}
    assert data["status"]["indicator"] == "none"
    assert all(not d["incidents"] for c in found.values() for d in c["days"])
    page = client.get("/status").get_data(as_text=True)
    assert "Payments fail" not in page

    # An internal follow-up resolving a public incident leaves the public state as it was.
    created = publish(client, tokens, OUTAGE)
    publish(
        client,
        tokens,
        internal,
        status="resolved",
        incident_id=created["incident_id"],
        components={},
    )
    _, found = components_of(client)
    assert found["payments"]["state"] == "major_outage"


def test_withdrawal_takes_its_states_back(client, tokens):
    created = publish(client, tokens, OUTAGE)
    response = client.post(
        f"/api/v1/announcements/{created['id']}/withdraw",
        json={"reason": "Sent for the wrong service."},
        headers=tokens["admin"],
    )
    assert response.status_code == 200, response.get_json()
    _, found = components_of(client)
    assert found["payments"]["state"] == "operational"


def test_monitoring_rule_sets_states_until_the_alert_resolves(client, tokens):
    assert hook(client, tokens, alertmanager()).status_code == 200
    data, found = components_of(client)
    assert found["payments"]["state"] == "major_outage"
    assert data["status"]["indicator"] == "critical"
    resolved = hook(client, tokens, alertmanager(status="resolved"))
    assert resolved.status_code == 200, resolved.get_json()
    # The bundled plan's rule has no all-clear: the resolution waits for a person.
    pending = resolved.get_json()
    if pending.get("state") == "pending_approval":
        approved = client.post(
            f"/api/v1/announcements/{pending['announcement_id']}/approve",
            headers=tokens["approver2"],
        )
        assert approved.status_code == 200, approved.get_json()
    _, found = components_of(client)
    assert found["payments"]["state"] == "operational"


def test_status_page_shows_states_and_the_90_day_bar_without_inline_script(client, tokens):
    created = publish(client, tokens, OUTAGE)
    response = client.get("/status?lang=en")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    payments = page[page.index('id="component-payments"') :]
    payments = payments[: payments.index("</ol>")]
    assert 'data-state="major_outage"' in payments and "Major outage" in payments
    assert payments.count('class="day ') == 90
    marks = re.findall(r'<li class="day state-([a-z_]+)" data-date="([0-9-]+)"', payments)
    assert [state for state, _ in marks] == ["operational"] * 89 + ["major_outage"]
    # The day with the incident opens to name it; the title attribute names it on hover.
    assert "<details>" in payments and "Payments fail" in payments
    assert created["incident_id"]
    assert 'data-indicator="critical"' in page
    assert "<script" not in page and " style=" not in page


def test_status_page_names_states_in_the_readers_language(client, tokens):
    publish(client, tokens, OUTAGE)
    page = client.get("/status?lang=nl").get_data(as_text=True)
    assert "<h2>Onderdelen</h2>" in page
    assert 'Betalingen</strong> <span class="state">Grote storing</span>' in page
    assert "De afgelopen 90 dagen" in page
    quiet = client.get("/status?lang=sv")
    assert quiet.status_code == 200 and "Större avbrott" in quiet.get_data(as_text=True)


# The app is shared across examples on purpose: each posts a new announcement.
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    components=st.one_of(
        st.dictionaries(st.text(max_size=70), st.text(max_size=70), max_size=4),
        st.dictionaries(st.sampled_from(["payments", "portal"]), st.sampled_from(STATES)),
        st.lists(st.text(max_size=5), max_size=2),
        st.text(max_size=10),
        st.integers(),
        st.none(),
    )
)
def test_any_components_value_is_accepted_or_refused_never_a_500(app, tokens, components):
    client = app.test_client()
    response = client.post(
        "/api/v1/announcements", json={**OUTAGE, "components": components}, headers=tokens["admin"]
    )
    assert response.status_code in (202, 422), response.get_data(as_text=True)
    if response.status_code == 202:
        stored = client.get(
            f"/api/v1/announcements/{response.get_json()['id']}", headers=tokens["admin"]
        )
        assert set(stored.get_json()["components"]) <= {"payments", "portal", "website"}
    else:
        assert "components" in response.get_json()["errors"]
    assert client.get("/status.json").status_code == 200
