"""Subscribers who chose components hear only of announcements that touch them.

``touches`` is the one rule (domain/component_choice.py), applied in ``channels_for``,
where the fan-out, staff first and the all-clear choose each person's channels.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from broadcaster.domain.announcement import Announcement
from broadcaster.domain.component_choice import check_choice, known_components, touches
from broadcaster.domain.plan import load_plan
from broadcaster.domain.subscribers import SubscriberStore, channels_for
from tests.helpers import PAYMENTS_DOWN, publish

PLAN = load_plan(None)

if "components" in {f.name for f in dataclasses.fields(Announcement)}:
    WithComponents = Announcement
else:

    @dataclass(frozen=True)
    class WithComponents(Announcement):  # type: ignore[no-redef]
        """The announcement as the components work gives it (a ``components`` field)."""

        components: dict[str, str] = field(default_factory=dict)


def announcement(components: dict[str, str] | None = None) -> Announcement:
    base = dict(
        id="ann_1",
        incident_id="inc_1",
        title="Payments down",
        body="Card payments fail.",
        severity="minor",
        status="investigating",
        audiences=["consumers"],
        channels=["email", "sms"],
        author="ada",
        state="published",
        created_at=time.time(),
    )
    if components is None:
        return Announcement(**base)
    return WithComponents(**base, components=components)


PERSON = {
    "id": "p1",
    "email": "mia@example.com",
    "phone": None,
    "audiences": ["consumers"],
    "channels": None,
    "opt_outs": [],
}


@pytest.mark.parametrize(
    ("states", "chosen", "expected"),
    [
        ({"payments": "major_outage"}, ["payments"], True),
        ({"payments": "major_outage", "website": "degraded_performance"}, ["website"], True),
        ({"payments": "major_outage"}, ["website"], False),
        ({"payments": "major_outage"}, None, True),  # chose nothing: everything
        ({"payments": "major_outage"}, [], True),
        ({}, ["website"], True),  # a general announcement reaches everyone
        (None, ["website"], True),  # a model without the field: touches everything
    ],
)
def test_touches(states, chosen, expected):
    assert touches(states, chosen) is expected


def test_channels_for_skips_people_whose_components_it_does_not_touch():
    payments = announcement({"payments": "major_outage"})
    assert channels_for({**PERSON, "components": ["payments"]}, payments, PLAN) == (["email"], [])
    assert channels_for({**PERSON, "components": ["website"]}, payments, PLAN) == ([], [])
    assert channels_for({**PERSON, "components": None}, payments, PLAN) == (["email"], [])
    general = announcement()
    assert channels_for({**PERSON, "components": ["website"]}, general, PLAN) == (["email"], [])


def test_a_choice_is_checked_against_the_plans_components():
    plan = SimpleNamespace(components=(SimpleNamespace(id="payments"), SimpleNamespace(id="web")))
    assert known_components(plan) == ("payments", "web")
    assert check_choice(plan, ["web", "payments", "web"]) == (["web", "payments"], None)
    assert check_choice(plan, None) == ([], None)
    assert check_choice(plan, ["mail"])[1].startswith("unknown component 'mail'")
    assert check_choice(plan, "web")[1] == "must be a list of component ids"
    assert check_choice(plan, [1])[1] == "must be a list of component ids"
    # The bundled plan's [components]; a plan without them has nothing to choose from.
    assert known_components(PLAN) == ("payments", "portal", "website")
    assert check_choice(PLAN, ["portal"]) == (["portal"], None)
    bare = SimpleNamespace(components=())
    assert check_choice(bare, []) == ([], None)
    assert "declares no components" in check_choice(bare, ["payments"])[1]


def test_stored_choices_survive_an_import_and_a_general_announcement_reaches_them(
    app, client, tokens, run_jobs, sendgrid, r
):
    store = SubscriberStore(r)
    chooser, _ = store.upsert(
        {
            "email": "chooser@example.com",
            "locale": "en",
            "audiences": ["consumers"],
            "channels": ["email"],
            "components": ["payments"],
        }
    )
    # An import that knows nothing of components keeps the choice; [] clears it.
    store.upsert({"email": "chooser@example.com", "locale": "nl", "audiences": ["consumers"]})
    assert store.get(chooser)["components"] == ["payments"]
    publish(client, tokens, PAYMENTS_DOWN, channels=["email"])  # names no components
    run_jobs()
    assert [to for to, _ in sendgrid.accepted()] == ["chooser@example.com"]
    store.upsert(
        {
            "email": "chooser@example.com",
            "audiences": ["consumers"],
            "locale": "en",
            "components": [],
        }
    )
    assert store.get(chooser)["components"] is None


def test_only_announcements_touching_their_components_reach_self_subscribers(
    app, client, tokens, run_jobs, sendgrid
):
    """Chosen on /subscribe's API, confirmed by link; announcements carry ``components``."""
    choices = {
        "pay@example.com": ["payments"],
        "web@example.com": ["website"],
        "all@example.com": [],
    }
    for address, chosen in choices.items():
        answer = client.post("/api/v1/subscriptions", json={"email": address, "components": chosen})
        assert answer.status_code == 202
    run_jobs()
    for address in choices:
        mine = next(
            p
            for _, payload in sendgrid.accepted()
            for p in payload["personalizations"]
            if p["to"][0]["email"] == address
        )
        link = mine["substitutions"]["-confirm_url-"].removeprefix("http://127.0.0.1:8000")
        assert client.post(link).status_code == 200
    people = client.get("/api/v1/subscribers", headers=tokens["admin"]).get_json()["items"]
    assert {p["email"]: p["components"] for p in people} == {
        "pay@example.com": ["payments"],
        "web@example.com": ["website"],
        "all@example.com": None,
    }

    sendgrid.reset()
    publish(
        client, tokens, PAYMENTS_DOWN, channels=["email"], components={"payments": "major_outage"}
    )
    run_jobs()
    assert sorted(to for to, _ in sendgrid.accepted()) == ["all@example.com", "pay@example.com"]

    sendgrid.reset()
    publish(client, tokens, PAYMENTS_DOWN, channels=["email"], title="General notice")
    run_jobs()  # no components: a general announcement reaches everyone
    assert sorted(to for to, _ in sendgrid.accepted()) == sorted(choices)
