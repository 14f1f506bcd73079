"""The all-clear reaches everyone alerted: by the channel they got it, whatever the pacing.

A resolution (status ``resolved``, from monitoring's all-clear or from a person) goes by
email/SMS to exactly the people the incident reached by that channel — minus anyone who
opted out since — and to nobody else by those channels.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broadcaster.domain.plan import BUNDLED_PLAN
from tests.fakes import FakeSendGrid, FakeTwilio
from tests.helpers import announce, deliveries, drain, subscribe
from tests.test_monitoring import alertmanager, hook

ANN = {"external_id": "ann", "email": "ann@example.com", "phone": "+31612345001"}
BOB = {"external_id": "bob", "phone": "+31612345002"}  # business, SMS only
CAT = {"external_id": "cat", "email": "cat@example.com"}  # email only
DAN = {"external_id": "dan", "email": "dan@example.com", "phone": "+31612345004"}  # chose email
STAFF = {"external_id": "sue", "email": "sue@example.com", "phone": "+31612345005"}
PEOPLE = [
    {**ANN, "audiences": ["consumers"]},
    {**BOB, "audiences": ["business"]},
    {**CAT, "audiences": ["consumers"]},
    {**DAN, "audiences": ["consumers"], "channels": ["email"]},
    {**STAFF, "audiences": ["staff"]},  # not an audience of the payments rule
]


@pytest.fixture
def all_clear_app(make_app: Any, tmp_path: Path) -> Flask:
    """The bundled plan with the payments rule's all-clear switched on."""
    plan = tmp_path / "plan.toml"
    plan.write_text(
        BUNDLED_PLAN.read_text().replace('# all_clear = "payments-ok"', 'all_clear = "payments-ok"')
    )
    return make_app(PLAN=str(plan))


@pytest.fixture
def ac_client(all_clear_app: Flask) -> FlaskClient:
    return all_clear_app.test_client()


class Heard:
    """Which customers the fake providers accepted messages for, from a point on.

    Staff (sue) get the agent brief of every announcement customers hear, the all-clear
    included, before the customers (the plan's ``[staff]``): counted apart (``staff``).
    """

    def __init__(self, providers: tuple[FakeSendGrid, FakeTwilio]) -> None:
        self.sendgrid, self.twilio = providers
        self.mark()

    def mark(self) -> None:
        self._emails = len(self.sendgrid.accepted())
        self._texts = len(self.twilio.accepted())

    def emails(self) -> set[str]:
        return {to for to, _ in self.sendgrid.accepted()[self._emails :]} - {STAFF["email"]}

    def texts(self) -> set[str]:
        return {form["To"] for form in self.twilio.accepted()[self._texts :]} - {STAFF["phone"]}

    def staff(self) -> set[str]:
        """Staff contacts that had a message (the brief) since the mark."""
        emails = {to for to, _ in self.sendgrid.accepted()[self._emails :]}
        texts = {form["To"] for form in self.twilio.accepted()[self._texts :]}
        return (emails | texts) & {STAFF["email"], STAFF["phone"]}


def ids(client: FlaskClient, tokens: dict[str, dict[str, str]]) -> dict[str, str]:
    """external_id → subscriber id."""
    page = client.get("/api/v1/subscribers?per_page=100", headers=tokens["admin"]).get_json()
    return {p["external_id"]: p["id"] for p in page["items"]}


def opt_out(client: FlaskClient, tokens: dict[str, dict[str, str]], sid: str, *channels: str):
    answer = client.post(
        f"/api/v1/subscribers/{sid}/opt-out",
        json={"channels": list(channels)},
        headers=tokens["admin"],
    )
    assert answer.status_code == 200, answer.get_json()


def test_all_clear_within_min_interval_reaches_everyone_alerted_by_the_same_channels(
    all_clear_app, ac_client, tokens, providers
):
    subscribe(ac_client, tokens["admin"], PEOPLE)
    heard = Heard(providers)
    alert = hook(ac_client, tokens, alertmanager()).get_json()
    assert alert["state"] == "published" and {"email", "sms"} <= set(alert["channels"])
    drain(all_clear_app)
    emailed, texted = heard.emails(), heard.texts()
    assert emailed == {"ann@example.com", "cat@example.com", "dan@example.com"}
    assert texted == {"+31612345001", "+31612345002"}

    heard.mark()  # well within min_interval (15 minutes) of the alert
    resolved = hook(ac_client, tokens, alertmanager(status="resolved")).get_json()
    assert resolved["outcome"] == "resolved" and resolved["state"] == "published"
    assert {"email", "sms"} <= set(resolved["channels"])
    drain(all_clear_app)
    assert heard.emails() == emailed
    assert heard.texts() == texted, "dan chose email; cat has no phone; sue was never alerted"
    mails = {to: payload for to, payload in providers[0].accepted()}
    assert mails["cat@example.com"]["subject"].endswith("Payments work again")
    assert ac_client.get("/banner.json").get_json()["banners"][0]["all_clear"] is True


def test_an_update_within_min_interval_is_still_paced(all_clear_app, ac_client, tokens, providers):
    subscribe(ac_client, tokens["admin"], PEOPLE)
    hook(ac_client, tokens, alertmanager())
    hook(ac_client, tokens, alertmanager(status="resolved"))
    drain(all_clear_app)
    heard = Heard(providers)
    reopened = hook(ac_client, tokens, alertmanager()).get_json()
    assert reopened["outcome"] == "reopened"
    assert not {"email", "sms"} & set(reopened["channels"]) and "banner" in reopened["channels"]
    drain(all_clear_app)
    assert heard.emails() == set() and heard.texts() == set()


def test_people_never_alerted_get_no_email_or_sms_all_clear(
    all_clear_app, ac_client, tokens, providers
):
    subscribe(ac_client, tokens["admin"], PEOPLE)
    hook(ac_client, tokens, alertmanager())
    drain(all_clear_app)
    late = {"external_id": "eve", "email": "eve@example.com", "phone": "+31612345009"}
    subscribe(ac_client, tokens["admin"], [{**late, "audiences": ["consumers", "business"]}])
    heard = Heard(providers)
    resolved = hook(ac_client, tokens, alertmanager(status="resolved")).get_json()
    drain(all_clear_app)
    assert "eve@example.com" not in heard.emails() and "+31612345009" not in heard.texts()
    assert heard.emails() and heard.texts(), "the people alerted did get it"
    records = deliveries(ac_client, tokens["admin"], resolved["announcement_id"])
    assert ids(ac_client, tokens)["eve"] not in {d["subscriber_id"] for d in records}
    # eve still sees it where everyone does.
    [banner] = ac_client.get("/banner.json?audience=consumers").get_json()["banners"]
    assert banner["title"] == "Payments work again"


def test_opt_out_since_the_alert_wins(all_clear_app, ac_client, tokens, providers):
    subscribe(ac_client, tokens["admin"], PEOPLE)
    hook(ac_client, tokens, alertmanager())
    drain(all_clear_app)
    who = ids(ac_client, tokens)
    opt_out(ac_client, tokens, who["ann"], "sms")
    opt_out(ac_client, tokens, who["cat"], "email", "sms")
    heard = Heard(providers)
    resolved = hook(ac_client, tokens, alertmanager(status="resolved")).get_json()
    drain(all_clear_app)
    assert heard.texts() == {"+31612345002"}
    assert heard.emails() == {"ann@example.com", "dan@example.com"}
    records = {
        (d["channel"], d["subscriber_id"]): d
        for d in deliveries(ac_client, tokens["admin"], resolved["announcement_id"])
    }
    for key in (("sms", who["ann"]), ("email", who["cat"])):
        assert records[key]["state"] == "skipped" and records[key]["error"] == "opted out"


def test_only_the_channel_they_got_it_by(all_clear_app, ac_client, tokens, providers, twilio):
    """dan chose email; frank's number is invalid, so his alert fell back to email."""
    frank = {"external_id": "frank", "email": "frank@example.com", "phone": "+31612345006"}
    subscribe(ac_client, tokens["admin"], [*PEOPLE, {**frank, "audiences": ["consumers"]}])
    twilio.invalid_numbers.add("+31612345006")
    heard = Heard(providers)
    hook(ac_client, tokens, alertmanager())
    drain(all_clear_app)
    assert "frank@example.com" in heard.emails() and "dan@example.com" in heard.emails()
    twilio.invalid_numbers.clear()  # frank's number works now: he still gets email only
    heard.mark()
    hook(ac_client, tokens, alertmanager(status="resolved"))
    drain(all_clear_app)
    assert {"frank@example.com", "dan@example.com"} <= heard.emails()
    assert heard.texts() == {"+31612345001", "+31612345002"}


def test_a_human_resolution_follows_the_same_rule(all_clear_app, ac_client, tokens, providers):
    subscribe(ac_client, tokens["admin"], PEOPLE)
    heard = Heard(providers)
    alert = hook(ac_client, tokens, alertmanager()).get_json()
    drain(all_clear_app)
    emailed, texted = heard.emails(), heard.texts()
    late = {"external_id": "eve", "email": "eve@example.com", "phone": "+31612345009"}
    subscribe(ac_client, tokens["admin"], [{**late, "audiences": ["consumers"]}])
    heard.mark()
    # Only consumers, only the banner picked, a minor severity (no second person needed):
    # the all-clear still reaches business bob by SMS, and every email reader by email.
    written = announce(
        ac_client,
        tokens["admin"],
        {
            "title": "Payments are fine again",
            "body": "Card payments work normally since 10:05.",
            "severity": "minor",
            "status": "resolved",
            "audiences": ["consumers"],
            "channels": ["banner"],
            "incident_id": alert["incident_id"],
        },
    )
    assert written["state"] == "published"
    got = ac_client.get(f"/api/v1/announcements/{written['id']}", headers=tokens["admin"])
    assert got.get_json()["channels"] == ["banner", "email", "sms"]
    drain(all_clear_app)
    assert heard.emails() == emailed and heard.texts() == texted


def test_a_pending_resolution_previews_the_people_alerted(
    all_clear_app, ac_client, tokens, providers
):
    subscribe(ac_client, tokens["admin"], PEOPLE)
    alert = hook(ac_client, tokens, alertmanager()).get_json()
    drain(all_clear_app)
    who = ids(ac_client, tokens)
    opt_out(ac_client, tokens, who["bob"], "sms")
    pending = announce(
        ac_client,
        tokens["helpdesk"],
        {
            "title": "Payments are fine again",
            "body": "Card payments work normally.",
            "severity": "critical",
            "status": "resolved",
            "audiences": ["consumers", "business"],
            "incident_id": alert["incident_id"],
        },
    )
    assert pending["state"] == "pending_approval"
    preview = ac_client.get(pending["links"]["preview"], headers=tokens["helpdesk"]).get_json()
    assert preview["recipients"]["email"] == {"recipients": 3, "skipped": 0}
    assert preview["recipients"]["sms"] == {"recipients": 1, "skipped": 1}


def test_an_incident_that_never_emailed_or_texted_sends_neither_on_resolution(
    all_clear_app, ac_client, tokens, providers
):
    subscribe(ac_client, tokens["admin"], PEOPLE)
    heard = Heard(providers)
    first = announce(
        ac_client,
        tokens["admin"],
        {
            "title": "Slow payments",
            "body": "Payments are slow.",
            "severity": "minor",
            "audiences": ["consumers", "business"],
            "channels": ["banner"],
        },
    )
    drain(all_clear_app)
    resolution = announce(
        ac_client,
        tokens["admin"],
        {
            "title": "Payments are fast again",
            "body": "Payments are fast again.",
            "severity": "minor",
            "status": "resolved",
            "audiences": ["consumers", "business"],
            "channels": ["banner", "email", "sms"],
            "incident_id": first["incident_id"],
        },
    )
    got = ac_client.get(f"/api/v1/announcements/{resolution['id']}", headers=tokens["admin"])
    assert got.get_json()["channels"] == ["banner"]
    drain(all_clear_app)
    assert heard.emails() == set() and heard.texts() == set()
    assert deliveries(ac_client, tokens["admin"], resolution["id"]) == []


def test_people_alerted_after_the_all_clear_was_planned_still_get_it(
    all_clear_app, ac_client, tokens, providers, twilio
):
    """A big alert is still going out when monitoring resolves: plan jobs run before batches
    (queue order), so the all-clear is planned before anyone was reached. Each person gets
    the alert, then the all-clear."""
    subscribe(ac_client, tokens["admin"], PEOPLE)
    hook(ac_client, tokens, alertmanager())
    resolved = hook(ac_client, tokens, alertmanager(status="resolved")).get_json()
    assert {"email", "sms"} <= set(resolved["channels"])
    drain(all_clear_app)
    bodies: dict[str, list[str]] = {}
    for form in twilio.accepted():
        if form["To"] == STAFF["phone"]:
            continue  # sue has the agent brief of each, first (the plan's [staff])
        bodies.setdefault(form["To"], []).append(form["Body"])
    assert set(bodies) == {"+31612345001", "+31612345002"}
    for messages in bodies.values():
        assert len(messages) == 2
        assert "Problems with payments" in messages[0] and "work again" in messages[1]
    emails = [to for to, _ in providers[0].accepted() if to != STAFF["email"]]
    assert sorted(emails) == sorted(2 * ["ann@example.com", "cat@example.com", "dan@example.com"])


_people = st.lists(
    st.fixed_dictionaries(
        {
            "email": st.booleans(),
            "phone": st.booleans(),
            "chose": st.sampled_from([None, ["email"], ["sms"], ["email", "sms"]]),
            "audience": st.sampled_from(["consumers", "business", "staff"]),
            "opt_out": st.sampled_from([[], ["email"], ["sms"], ["email", "sms"]]),
            "joins_late": st.booleans(),
        }
    ),
    min_size=1,
    max_size=6,
)
_serial = itertools.count(1)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(people=_people, audiences=st.sampled_from([["consumers"], ["consumers", "business"]]))
def test_all_clear_set_is_the_alerted_set_minus_opt_outs(
    app, client, tokens, providers, people, audiences
):
    """Random people, preferences and opt-outs: alert by email+SMS, resolve at once."""
    heard = Heard(providers)
    rows, late_rows = [], []
    for person in people:
        n = next(_serial)
        row: dict[str, Any] = {"external_id": f"h{n}", "audiences": [person["audience"]]}
        if person["email"] or not person["phone"]:
            row["email"] = f"h{n}@example.com"
        if person["phone"]:
            row["phone"] = f"+3161{n:07d}"
        if person["chose"]:
            row["channels"] = person["chose"]
        (late_rows if person["joins_late"] else rows).append(row)
    if rows:
        subscribe(client, tokens["admin"], rows)
    alert = announce(
        client,
        tokens["admin"],
        {
            "title": "Payments down",
            "body": "Card payments fail.",
            "severity": "minor",
            "audiences": audiences,
            "channels": ["banner", "email", "sms"],
        },
    )
    drain(app)
    emailed, texted = heard.emails(), heard.texts()
    if late_rows:
        subscribe(client, tokens["admin"], late_rows)
    who = ids(client, tokens)
    opted: dict[str, set[str]] = {"email": set(), "sms": set()}
    for row, person in _paired(people, rows, late_rows):
        if person["opt_out"]:
            opt_out(client, tokens, who[row["external_id"]], *person["opt_out"])
            for channel in person["opt_out"]:
                opted[channel].add(row.get("email" if channel == "email" else "phone"))
    heard.mark()
    announce(
        client,
        tokens["admin"],
        {
            "title": "Payments work again",
            "body": "Card payments work normally.",
            "severity": "minor",
            "status": "resolved",
            "audiences": audiences,
            "channels": ["banner"],
            "incident_id": alert["incident_id"],
        },
    )
    drain(app)
    # Staff-audience people get the agent brief of the alert and of the all-clear (the
    # plan's [staff]), never the customers' message: left out on both sides.
    staff = {
        row[field]
        for row in rows + late_rows
        if row["audiences"] == ["staff"]
        for field in ("email", "phone")
        if field in row
    }
    assert heard.emails() - staff == emailed - staff - opted["email"]
    assert heard.texts() - staff == texted - staff - opted["sms"]


def _paired(
    people: list[dict[str, Any]], rows: list[dict[str, Any]], late_rows: list[dict[str, Any]]
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(row, person) in the order the people were drawn."""
    early, late = iter(rows), iter(late_rows)
    return [(next(late) if p["joins_late"] else next(early), p) for p in people]


def test_an_incident_alerted_before_reached_sets_were_kept_adopts_its_ledgers(
    all_clear_app, ac_client, tokens, providers, r
):
    """An incident open across the upgrade: its sets are built once from the ledgers."""
    from broadcaster.domain import all_clear

    subscribe(ac_client, tokens["admin"], PEOPLE)
    heard = Heard(providers)
    alert = hook(ac_client, tokens, alertmanager()).get_json()
    drain(all_clear_app)
    emailed, texted = heard.emails(), heard.texts()
    incident = alert["incident_id"]
    # As an earlier version left it: ledgers, but no reached sets and no marker.
    r.delete(*(all_clear.reached_key(incident, c) for c in ("email", "sms")))
    r.delete(all_clear.adopted_key(incident))
    heard.mark()
    hook(ac_client, tokens, alertmanager(status="resolved"))
    drain(all_clear_app)
    assert heard.emails() == emailed and heard.texts() == texted


def test_staff_are_briefed_on_the_all_clear_but_never_counted_as_reached(
    all_clear_app, ac_client, tokens, providers, r
):
    """Staff first and the all-clear together: staff get the brief of the alert and of the
    all-clear, before the customers; a brief never puts anyone in the reached sets."""
    from broadcaster.domain import all_clear

    subscribe(ac_client, tokens["admin"], PEOPLE)
    heard = Heard(providers)
    alert = hook(ac_client, tokens, alertmanager()).get_json()
    drain(all_clear_app)
    assert heard.staff() == {STAFF["email"], STAFF["phone"]}
    sue = ids(ac_client, tokens)["sue"]
    for channel in ("email", "sms"):
        reached = all_clear.reached_key(alert["incident_id"], channel)
        assert r.scard(reached) > 0 and not r.sismember(reached, sue)
    heard.mark()
    hook(ac_client, tokens, alertmanager(status="resolved"))
    drain(all_clear_app)
    assert heard.staff() == {STAFF["email"], STAFF["phone"]}, "the all-clear's brief"
    assert heard.texts() == {ANN["phone"], BOB["phone"]}
