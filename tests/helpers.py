"""Plain helpers the test modules share: the HTTP API as a client uses it, and real RQ workers.

Fixtures live in conftest.py; fake providers in fakes.py and fakes_social.py; worker and web
processes in workers.py and processes.py. Announcements go through the API here, never into
Redis by hand, so the helpers do not depend on how the app stores them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from rq.registry import ScheduledJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer

import worker
from broadcaster.delivery.queues import PROMISE_QUEUE, QUEUE_NAMES, queue

Headers = dict[str, str]

# The announcement the delivery tests send (fan-out, breaker, fallback, pacing, crashes).
PAYMENTS_DOWN = {
    "title": "Payments down",
    "body": "Card payments fail since 09:10. We are working on it.",
    "severity": "minor",
    "audiences": ["consumers"],
    "channels": ["email", "sms"],
}


def announce(
    client: FlaskClient, headers: Headers, body: Mapping[str, Any], /, **changes: Any
) -> dict[str, Any]:
    """POST ``body`` (with ``changes``) to the announcements API; expect 202, return the answer.

    Positional-only, so a change may itself be named ``body``."""
    response = client.post("/api/v1/announcements", json={**body, **changes}, headers=headers)
    assert response.status_code == 202, response.get_json()
    return response.get_json()


def publish(
    client: FlaskClient, tokens: dict[str, Headers], body: Mapping[str, Any], /, **changes: Any
) -> dict[str, Any]:
    """Announce as the admin; one that waits for a second approver is approved by another."""
    created = announce(client, tokens["admin"], body, **changes)
    if created["state"] == "pending_approval":
        path = f"/api/v1/announcements/{created['id']}/approve"
        approved = client.post(path, headers=tokens["approver2"])
        assert approved.status_code == 200, approved.get_json()
        assert approved.get_json()["state"] == "published"
    return created


def subscribe(client: FlaskClient, headers: Headers, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Create or update subscribers through the API; every row must be accepted."""
    report = client.post("/api/v1/subscribers", json=rows, headers=headers).get_json()
    assert not report["rejected"], report
    return report


def deliveries(client: FlaskClient, headers: Headers, announcement_id: str) -> list[dict]:
    """Every delivery record of an announcement, read page by page from the API."""
    items: list[dict] = []
    page = 1
    while True:
        body = client.get(
            f"/api/v1/announcements/{announcement_id}/deliveries?page={page}&per_page=1000",
            headers=headers,
        ).get_json()
        items += body["items"]
        if len(items) >= body["total"]:
            return items
        page += 1


def counts(client: FlaskClient, headers: Headers, announcement_id: str) -> dict[str, Any]:
    """Delivery counts per channel and state, as the announcement's API answer shows them."""
    return client.get(f"/api/v1/announcements/{announcement_id}", headers=headers).get_json()[
        "deliveries"
    ]


def work(app: Flask, **options: Any) -> None:
    """One real burst worker in ``app``'s context; ``options`` go to ``Worker.work``."""
    with app.app_context():
        worker.build_worker().work(burst=True, **options)


def drain(app: Flask, timeout: float = 30.0) -> None:
    """Run real RQ workers (burst, with scheduler) until no job is queued, running or scheduled."""
    r = app.extensions["broadcaster"].redis
    deadline = time.monotonic() + timeout
    crashes: list[str] = []

    def record(job, exc_type, exc_value, tb):  # type: ignore[no-untyped-def]
        crashes.append(f"{job.func_name}: {exc_type.__name__}: {exc_value}")
        return True

    with app.app_context():
        while True:
            w = worker.build_worker()
            w.push_exc_handler(record)
            w.work(burst=True, with_scheduler=True)
            # A job that raised is a bug in our code: delivery failures are results, not crashes.
            assert not crashes, crashes
            busy = {}
            for name in QUEUE_NAMES:
                q = queue(r, name)
                scheduled = ScheduledJobRegistry(queue=q, serializer=JSONSerializer)
                busy[name] = (
                    q.count,
                    # A promise's reminder waits for the promised time, often hours away:
                    # work to wait for only when it falls due within this drain.
                    r.zcount(scheduled.key, 0, time.time() + deadline - time.monotonic())
                    if name == PROMISE_QUEUE
                    else scheduled.count,
                    StartedJobRegistry(queue=q, serializer=JSONSerializer).count,
                )
            if not any(sum(v) for v in busy.values()):
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"jobs pending after {timeout}s (queued, scheduled, started): {busy}"
                )
            time.sleep(0.1)
