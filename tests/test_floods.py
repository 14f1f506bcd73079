"""Floods are contained: a rule opens few incidents, the rest gather; hooks have a rate per token.

The attack these tests replay: 20 alerts with distinct group keys sent 160 SMS in under a
second. Now a rule opens at most ``new_incidents_per_rule`` incidents per window (3 per 10
minutes by default); every further alert group joins one pending "several alerts" draft
that counts and lists them. Real redis-server, real RQ workers, the real Twilio SDK
against the fake Twilio.
"""

from __future__ import annotations

import copy
import re
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broadcaster.delivery.ratelimit import Limiter
from broadcaster.domain.alert_floods import NewIncidentLimit
from broadcaster.domain.plan import BUNDLED_PLAN, PlanError, parse_plan
from broadcaster.domain.tokens import create_token
from broadcaster.infra.redis_server import free_port
from tests.alertmanager import BINARY, Alertmanager, stop
from tests.alertmanager import alert as am_alert
from tests.conftest import TWILIO_FROM
from tests.fakes import FakeTwilio
from tests.helpers import drain
from tests.processes import clean_env, http, start, wait_for, web_command
from tests.test_monitoring import PEOPLE, alertmanager, texts
from tests.test_plan import SOURCE, VALID, problems

Headers = dict[str, str]
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def people(client: FlaskClient, tokens: dict[str, Headers]) -> None:
    """Three people the payments rule texts (consumers + business), and staff, who get the
    agent brief of each announcement first (``texts`` leaves them out)."""
    answer = client.post("/api/v1/subscribers", json=PEOPLE, headers=tokens["admin"])
    assert answer.get_json()["created"] == 4


def alert(key: str, status: str = "firing", **labels: str) -> dict[str, Any]:
    """An Alertmanager payload for the payments rule, one alert group per ``key``."""
    payload = alertmanager(status=status, group=f'{{}}:{{alertname="{key}"}}', **labels)
    payload["alerts"][0]["fingerprint"] = key
    payload["alerts"][0]["annotations"]["summary"] = f"Payments failing on {key}"
    payload["commonAnnotations"]["summary"] = f"Payments failing on {key}"
    return payload


def send(client: FlaskClient, headers: Headers, payload: dict[str, Any]) -> dict[str, Any]:
    answer = client.post("/hooks/alertmanager", json=payload, headers=headers)
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def pending(client: FlaskClient, headers: Headers, per_page: int = 100) -> dict[str, Any]:
    answer = client.get(f"/api/v1/announcements/pending?per_page={per_page}", headers=headers)
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def plan_with(tmp_path, **settings: object) -> str:
    """The bundled plan with these ``[monitoring]`` settings changed."""
    text = BUNDLED_PLAN.read_text()
    for key, value in settings.items():
        text, found = re.subn(rf"^{key} = .*$", f"{key} = {value}", text, flags=re.MULTILINE)
        assert found == 1, key
    path = tmp_path / "plan.toml"
    path.write_text(text)
    return str(path)


def test_twenty_alerts_with_distinct_keys_open_three_incidents_and_one_draft(
    app, client, tokens, people, providers
):
    _, twilio = providers
    payloads = [alert(f"pay-{i:02d}") for i in range(20)]

    def deliver(payload: dict[str, Any]) -> dict[str, Any]:
        return send(app.test_client(), tokens["monitor"], payload)

    with ThreadPoolExecutor(max_workers=20) as pool:  # all at once, as the attack did
        results = list(pool.map(deliver, payloads))
    drain(app)

    outcomes = Counter(r["outcome"].split(":")[0] for r in results)
    assert outcomes == {"opened": 3, "gathered": 17}, outcomes
    assert {r["state"] for r in results if r["outcome"] == "opened"} == {"published"}
    # Three incidents texted their three people; nothing else reached a phone.
    assert sum(texts(twilio).values()) == 3 * 3
    gathered = [r for r in results if r["outcome"].startswith("gathered")]
    assert len({r["announcement_id"] for r in gathered}) == 1, "one draft, amended"
    assert max(r["gathered"] for r in gathered) == 17

    waiting = pending(client, tokens["admin"])
    assert waiting["total"] == 1
    [draft] = waiting["items"]
    assert draft["state"] == "pending_approval" and draft["author"] == "monitoring:gathered"
    assert draft["title"] == "Several alerts (17) from monitoring"
    assert draft["body"].startswith("Monitoring sent 17 alerts for rule 1: ")
    assert (
        "beyond the 3 new incidents a rule may open by itself in 10 minutes: "
        "17 still firing, 0 resolved." in draft["body"]
    )
    assert sum(f"Payments failing on pay-{i:02d}" in draft["body"] for i in range(20)) == 17
    incidents = client.get("/api/v1/incidents", headers=tokens["admin"]).get_json()
    assert incidents["total"] == 4  # three opened, one for the draft


def test_the_draft_is_amended_as_alerts_come_and_go(app, client, tokens, people, providers):
    for i in range(3):
        assert send(client, tokens["monitor"], alert(f"k{i}"))["outcome"] == "opened"
    first = send(client, tokens["monitor"], alert("k3"))
    second = send(client, tokens["monitor"], alert("k4"))
    assert second["announcement_id"] == first["announcement_id"]
    assert second["gathered"] == 2

    # A repeat of a gathered group changes nothing; its resolve is noted on the same draft.
    assert send(client, tokens["monitor"], alert("k4"))["outcome"] == "repeat: nothing sent"
    resolved = send(client, tokens["monitor"], alert("k3", status="resolved"))
    assert resolved["announcement_id"] == first["announcement_id"]
    [draft] = pending(client, tokens["admin"])["items"]
    assert "Monitoring sent 2 alerts for" in draft["body"]
    assert ": 1 still firing, 1 resolved." in draft["body"]
    assert "- resolved · Payments failing on k3" in draft["body"]

    incident = client.get(
        f"/api/v1/incidents/{draft['incident_id']}", headers=tokens["admin"]
    ).get_json()
    assert [a["id"] for a in incident["timeline"]] == [draft["id"]]
    # Every event it gathered is on the record: k3, k4, k4's repeat, k3's resolve.
    assert [e["status"] for e in incident["monitoring"]] == ["firing"] * 3 + ["resolved"]
    actions = client.get(
        f"/api/v1/audit?incident_id={draft['incident_id']}", headers=tokens["admin"]
    ).get_json()["items"]
    assert Counter(e["action"] for e in actions)["announcement.amended"] == 2
    drain(app)
    assert sum(texts(providers[1]).values()) == 3 * 3  # only the three opened incidents texted


def test_once_the_draft_is_decided_the_next_alert_starts_a_new_one(
    app, client, tokens, people, providers
):
    for i in range(4):
        send(client, tokens["monitor"], alert(f"d{i}"))
    [draft] = pending(client, tokens["admin"])["items"]
    rejected = client.post(
        f"/api/v1/announcements/{draft['id']}/reject",
        json={"reason": "We write this one ourselves."},
        headers=tokens["approver"],
    )
    assert rejected.status_code == 200

    later = send(client, tokens["monitor"], alert("d4"))
    assert later["announcement_id"] != draft["id"] and later["gathered"] == 1
    [fresh] = pending(client, tokens["admin"])["items"]
    assert fresh["id"] == later["announcement_id"]
    assert fresh["incident_id"] == draft["incident_id"], "the same flood, the same incident"
    assert "d4" in fresh["body"] and "d3" not in fresh["body"]
    drain(app)
    assert sum(texts(providers[1]).values()) == 3 * 3


def test_approving_while_alerts_arrive_never_turns_the_draft_back(app, client, tokens, providers):
    for i in range(4):
        send(client, tokens["monitor"], alert(f"c{i}"))
    [draft] = pending(client, tokens["admin"])["items"]

    def deliver(key: str) -> dict[str, Any]:
        return send(app.test_client(), tokens["monitor"], alert(key))

    def approve() -> int:
        path = f"/api/v1/announcements/{draft['id']}/approve"
        return app.test_client().post(path, headers=tokens["approver"]).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        approved = pool.submit(approve)
        results = list(pool.map(deliver, [f"c{i}" for i in range(4, 16)]))
    assert approved.result() == 200
    decided = client.get(f"/api/v1/announcements/{draft['id']}", headers=tokens["admin"])
    assert decided.get_json()["state"] == "published", "an amendment never undoes a decision"
    waiting = pending(client, tokens["admin"])
    assert waiting["total"] <= 1
    drafts = {r["announcement_id"] for r in results}
    assert drafts <= {draft["id"], *(i["id"] for i in waiting["items"])}
    drain(app)


def test_after_the_window_the_rule_opens_incidents_again(make_app, tokens, tmp_path, providers):
    # A window of 0.6 s and a rule limit of 1: the test waits for a window, not ten minutes.
    plan = plan_with(tmp_path, new_incidents_window_minutes=0.01)
    plan_text = (
        open(plan)
        .read()
        .replace(
            'holding_statement = "payments-outage"   # pre-approved: published at once',
            'holding_statement = "payments-outage"\nnew_incidents = 1',
            1,
        )
    )
    open(plan, "w").write(plan_text)
    client = make_app(PLAN=plan).test_client()
    assert send(client, tokens["monitor"], alert("w0"))["outcome"] == "opened"
    assert send(client, tokens["monitor"], alert("w1"))["outcome"].startswith("gathered")
    time.sleep(0.7)
    assert send(client, tokens["monitor"], alert("w2"))["outcome"] == "opened"
    # A gathered group that resolved counts as new when it fires again.
    send(client, tokens["monitor"], alert("w1", status="resolved"))
    assert send(client, tokens["monitor"], alert("w1"))["outcome"].startswith("gathered")


def test_a_limit_of_zero_gathers_every_alert(make_app, tokens, tmp_path, providers):
    client = make_app(PLAN=plan_with(tmp_path, new_incidents_per_rule=0)).test_client()
    results = [send(client, tokens["monitor"], alert(f"z{i}")) for i in range(3)]
    assert [r["gathered"] for r in results] == [1, 2, 3]
    assert pending(client, tokens["admin"])["total"] == 1


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(keys=st.lists(st.sampled_from([f"g{i}" for i in range(8)]), max_size=12))
def test_any_alert_sequence_opens_at_most_three_and_one_draft_counts_the_rest(
    app, r, keys: list[str]
) -> None:
    r.flushall()
    headers = {"Authorization": f"Bearer {create_token(r, 'prometheus', 'monitor')}"}
    reader = {"Authorization": f"Bearer {create_token(r, 'ada', 'admin')}"}
    client = app.test_client()
    outcomes = [send(client, headers, alert(key))["outcome"] for key in keys]
    distinct = len(set(keys))
    assert outcomes.count("opened") == min(distinct, 3)
    waiting = pending(client, reader)
    assert waiting["total"] == (1 if distinct > 3 else 0)
    if distinct > 3:
        assert waiting["items"][0]["title"] == f"Several alerts ({distinct - 3}) from monitoring"


@settings(max_examples=25, deadline=None)
@given(limit=st.integers(0, 6), tries=st.integers(0, 12), threads=st.integers(1, 6))
def test_the_rule_count_never_grants_more_than_its_limit(
    redis_server, limit: int, tries: int, threads: int
) -> None:
    r = redis.Redis.from_url(redis_server.url)
    counter = NewIncidentLimit(r, window=600)
    rule = uuid.uuid4().hex  # a fresh rule per example
    granted: list[bool] = []
    lock = threading.Lock()

    def take(_: int) -> None:
        result = counter.take(rule, limit)
        with lock:
            granted.append(result)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(take, range(tries)))
    assert sum(granted) == min(tries, limit)


def test_the_rule_count_frees_slots_as_the_window_slides(r) -> None:
    counter = NewIncidentLimit(r, window=0.3)
    assert [counter.take("slide", 2) for _ in range(3)] == [True, True, False]
    time.sleep(0.35)
    assert counter.take("slide", 2) is True


# The per-token rate on the hooks.


def test_a_token_over_its_rate_gets_429_with_retry_after_and_others_do_not(
    make_app, tokens, r, providers
):
    client = make_app(HOOKS_RATE_LIMIT=3, HOOKS_RATE_WINDOW=60).test_client()
    other = {"Authorization": f"Bearer {create_token(r, 'grafana', 'monitor')}"}
    payload = alertmanager(severity="info", service="wiki")  # matches no rule: cheap
    for _ in range(3):
        assert (
            client.post("/hooks/alertmanager", json=payload, headers=tokens["monitor"]).status_code
            == 200
        )
    refused = client.post("/hooks/alertmanager", json=payload, headers=tokens["monitor"])
    assert refused.status_code == 429
    assert refused.is_json
    body = refused.get_json()
    assert body["code"] == 429 and body["status"] == "Too Many Requests"
    assert "at most 3 per 60 s" in body["message"]
    # One request per 20 s comes back: the caller is told when, in whole seconds.
    assert 1 <= int(refused.headers["Retry-After"]) <= 20
    # Refused before any work: the three accepted deliveries are all that was recorded.
    assert r.llen("bc:hooks:events") == 3
    # Another token, and another hook with the same token, are counted on their own / same.
    assert client.post("/hooks/alertmanager", json=payload, headers=other).status_code == 200
    assert client.post("/hooks/grafana", json=payload, headers=tokens["monitor"]).status_code == 429
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'broadcaster_hooks_throttled_total{hook="alertmanager"} 1.0' in metrics
    assert 'broadcaster_hooks_throttled_total{hook="grafana"} 1.0' in metrics


def test_a_throttled_token_may_send_again_after_retry_after(make_app, tokens, providers):
    client = make_app(HOOKS_RATE_LIMIT=2, HOOKS_RATE_WINDOW=1).test_client()
    payload = alertmanager(severity="info", service="wiki")
    codes = [
        client.post("/hooks/alertmanager", json=payload, headers=tokens["monitor"]).status_code
        for _ in range(3)
    ]
    assert codes == [200, 200, 429]
    time.sleep(0.6)  # a refill of one request takes 0.5 s at 2 per second
    again = client.post("/hooks/alertmanager", json=payload, headers=tokens["monitor"])
    assert again.status_code == 200


def test_unauthenticated_requests_are_401_not_counted_against_a_token(make_app, tokens, providers):
    client = make_app(HOOKS_RATE_LIMIT=1, HOOKS_RATE_WINDOW=60).test_client()
    payload = alertmanager(severity="info", service="wiki")
    for _ in range(5):
        forged = {"Authorization": "Bearer bct_forged"}
        assert client.post("/hooks/alertmanager", json=payload, headers=forged).status_code == 401
    ok = client.post("/hooks/alertmanager", json=payload, headers=tokens["monitor"])
    assert ok.status_code == 200


@settings(max_examples=25, deadline=None)
@given(capacity=st.integers(1, 8), tries=st.integers(0, 20))
def test_a_refused_request_does_not_dig_the_bucket_deeper(
    redis_server, capacity: int, tries: int
) -> None:
    r = redis.Redis.from_url(redis_server.url)
    # One request per 1,000 s: within the test, only the burst is available.
    bucket = Limiter(r, f"hooks:test:{uuid.uuid4().hex}", rate=capacity / 1000, capacity=capacity)
    waits = [bucket.try_take() for _ in range(tries)]
    assert sum(w == 0 for w in waits) == min(tries, capacity)
    # Refusals do not borrow from the future: the wait stays about one refill, never grows.
    refused = [w for w in waits if w > 0]
    assert all(w <= 1000 / capacity + 1 for w in refused)


# The plan keys.


@pytest.mark.parametrize(
    ("monitoring", "expected"),
    [
        (
            {"new_incidents_per_rule": -1},
            "monitoring.new_incidents_per_rule: must be a whole number from 0 to 1000",
        ),
        (
            {"new_incidents_per_rule": "3"},
            "monitoring.new_incidents_per_rule: must be a whole number from 0 to 1000",
        ),
        (
            {"new_incidents_window_minutes": 0},
            "monitoring.new_incidents_window_minutes: must be a number of minutes above 0 "
            "(at most 10080)",
        ),
        (
            {"rules": [{**VALID["monitoring"]["rules"][0], "new_incidents": True}]},
            "monitoring.rules[0].new_incidents: must be a whole number from 0 to 1000",
        ),
    ],
)
def test_bad_flood_limits_stop_the_start(monitoring: dict[str, Any], expected: str) -> None:
    data = copy.deepcopy(VALID)
    data["monitoring"].update(monitoring)
    with pytest.raises(PlanError) as caught:
        parse_plan(data, SOURCE)
    assert problems(caught.value) == [f"{SOURCE}: {expected}"]


def test_flood_limits_default_to_three_per_ten_minutes_and_may_be_set_per_rule() -> None:
    plan = parse_plan(copy.deepcopy(VALID), SOURCE)
    [rule] = plan.monitoring.rules
    assert plan.monitoring.limit_for(rule) == 3
    assert plan.monitoring.new_incidents_window == 600
    data = copy.deepcopy(VALID)
    data["monitoring"]["rules"][0]["new_incidents"] = 5
    data["monitoring"]["new_incidents_window_minutes"] = 2.5
    plan = parse_plan(data, SOURCE)
    assert plan.monitoring.limit_for(plan.monitoring.rules[0]) == 5
    assert plan.monitoring.new_incidents_window == 150


# A real Alertmanager: the defaults must let its grouped notifications through.


@pytest.mark.skipif(BINARY is None, reason="Prometheus Alertmanager is not installed")
def test_a_real_alertmanager_flood_passes_the_default_rate_and_gathers(
    r, redis_server, providers, tmp_path
):
    _, twilio = providers
    admin = create_token(r, "ada", "admin")
    monitor = create_token(r, "alertmanager", "monitor")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = clean_env(
        BROADCASTER_REDIS_URL=redis_server.url,
        BROADCASTER_DATA_DIR=str(tmp_path / "data"),
        BROADCASTER_PLAN=str(BUNDLED_PLAN),  # the defaults: 3 per rule per 10 min, 120/min
        BROADCASTER_TWILIO_ACCOUNT_SID=FakeTwilio.ACCOUNT_SID,
        BROADCASTER_TWILIO_AUTH_TOKEN=FakeTwilio.AUTH_TOKEN,
        BROADCASTER_TWILIO_FROM=TWILIO_FROM,
        BROADCASTER_TWILIO_BASE_URL=twilio.url,
        BROADCASTER_RETRY_BACKOFF="0",
    )
    web = worker = alertmanager = None
    try:
        web = start(
            web_command(port, "--workers", "1", "--threads", "4"),
            env,
            tmp_path,
            tmp_path / "web.log",
        )
        worker = start(
            [sys.executable, str(ROOT / "worker.py")], env, tmp_path, tmp_path / "worker.log"
        )
        wait_for(lambda: http("GET", base + "/healthz")[0] == 200, what="web server")
        people = [
            {"phone": p, "audiences": ["consumers"]} for p in ("+31612345001", "+31612345002")
        ]
        assert http("POST", base + "/api/v1/subscribers", token=admin, body=people)[0] == 200
        alertmanager = Alertmanager(tmp_path / "am", base + "/hooks/alertmanager", monitor).start()
        now = time.time()
        # 20 alert groups (group_by alertname, service) at once: 20 notifications together.
        alertmanager.post(
            *(
                am_alert(
                    {"alertname": f"Pay{i:02d}", "severity": "critical", "service": "payments"},
                    f"Payments failing on node {i}",
                    now,
                    now + 300,
                )
                for i in range(20)
            )
        )

        def events() -> list[dict[str, Any]]:
            items = http("GET", base + "/api/v1/hooks/events?per_page=1000", token=admin)[1]
            return items["items"]

        wait_for(lambda: len(events()) >= 20, what="20 notifications", timeout=30)
        outcomes = Counter(e["outcome"].split(":")[0] for e in events())
        assert outcomes == {"opened": 3, "gathered": 17}, outcomes
        assert "429" not in alertmanager.log_tail(100_000), "the default rate refused nothing"
        status, waiting = http("GET", base + "/api/v1/announcements/pending", token=admin)
        assert status == 200 and waiting["total"] == 1
        assert waiting["items"][0]["title"] == "Several alerts (17) from monitoring"
        wait_for(lambda: len(twilio.accepted()) >= 3 * 2, what="three incidents texted")
        time.sleep(1)  # anything more would have arrived by now
        assert len(twilio.accepted()) == 3 * 2
    finally:
        if alertmanager:
            alertmanager.stop()
        stop(worker)
        stop(web)
