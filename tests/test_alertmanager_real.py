"""A real Prometheus Alertmanager notifying the real service (gunicorn + ``worker.py``).

Alertmanager's own webhook (payload v4, Bearer ``monitor`` token) opens an incident with
the example plan's pre-approved holding statement, which texts consumers at the fake
Twilio; repeats send nothing more; the resolve leaves a draft for a human to approve.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from rq import Worker

from broadcaster.delivery import queues
from broadcaster.domain.tokens import create_token
from broadcaster.infra.redis_server import free_port
from tests.alertmanager import BINARY, GROUP_INTERVAL, Alertmanager, alert, rfc3339, stop
from tests.conftest import TWILIO_FROM
from tests.fakes import FakeSendGrid, FakeTwilio
from tests.processes import clean_env, http, start, wait_for, web_command

if BINARY is None:
    pytest.skip(
        "Prometheus Alertmanager is not installed (apt-get install prometheus-alertmanager)",
        allow_module_level=True,
    )

ROOT = Path(__file__).resolve().parent.parent
PHONES = [f"+3161234500{i}" for i in range(3)]
PAYMENTS = {"alertname": "PaymentsDown", "severity": "critical", "service": "payments"}


def test_alertmanager_opens_incident_texts_consumers_and_drafts_resolution(
    r, redis_server, providers, tmp_path
):
    sendgrid, twilio = providers
    admin = create_token(r, "ada", "admin")
    monitor = create_token(r, "alertmanager", "monitor")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = clean_env(
        BROADCASTER_REDIS_URL=redis_server.url,
        BROADCASTER_DATA_DIR=str(tmp_path / "data"),
        BROADCASTER_PLAN=str(ROOT / "examples" / "plan.toml"),
        BROADCASTER_SENDGRID_API_KEY=FakeSendGrid.API_KEY,
        BROADCASTER_SENDGRID_BASE_URL=sendgrid.url,
        BROADCASTER_EMAIL_FROM="alerts@acme.example",
        BROADCASTER_TWILIO_ACCOUNT_SID=FakeTwilio.ACCOUNT_SID,
        BROADCASTER_TWILIO_AUTH_TOKEN=FakeTwilio.AUTH_TOKEN,
        BROADCASTER_TWILIO_FROM=TWILIO_FROM,
        BROADCASTER_TWILIO_BASE_URL=twilio.url,
        BROADCASTER_RETRY_BACKOFF="0",
    )
    web = worker = alertmanager = None

    def logs() -> str:
        parts = [(tmp_path / n) for n in ("web.log", "worker.log")]
        out = [
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in parts if p.exists()
        ]
        if alertmanager:
            out.append(f"--- alertmanager.log\n{alertmanager.log_tail()}")
        return "\n".join(out)

    def wait(predicate, what: str, timeout: float = 30) -> Any:  # type: ignore[no-untyped-def]
        try:
            return wait_for(predicate, timeout=timeout, what=what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{logs()}") from None

    def get(path: str) -> Any:
        status, body = http("GET", base + path, token=admin)
        assert status == 200, (path, status, body)
        return body

    def texts() -> Counter[str]:
        return Counter(form["To"] for form in twilio.accepted())

    def hook_events() -> list[dict[str, Any]]:
        """What the service received from Alertmanager, oldest first."""
        items = get("/api/v1/hooks/events?per_page=1000")["items"]
        return [e for e in reversed(items) if e["source"] == "alertmanager"]

    def worker_idle() -> bool:
        return all(queues.queue(r, name).count == 0 for name in queues.QUEUE_NAMES) and not any(
            w.get_current_job_id() for w in Worker.all(connection=r)
        )

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
        wait(lambda: http("GET", base + "/healthz")[0] == 200, "web server")
        status, report = http(
            "POST",
            base + "/api/v1/subscribers",
            token=admin,
            body=[
                {"external_id": f"c{i}", "phone": phone, "audiences": ["consumers"]}
                for i, phone in enumerate(PHONES)
            ],
        )
        assert status == 200 and report["created"] == 3, report

        alertmanager = Alertmanager(
            tmp_path / "alertmanager", base + "/hooks/alertmanager", monitor
        ).start()
        started = time.time()
        payments = alert(PAYMENTS, "Payments are failing", started, started + 300)
        alertmanager.post(payments)

        # Firing: the pre-approved holding statement goes out at once, one SMS per consumer.
        wait(lambda: len(twilio.accepted()) >= len(PHONES), "one SMS per consumer")
        assert texts() == Counter(PHONES)
        incidents = get("/api/v1/incidents")
        assert incidents["total"] == 1, incidents
        incident_id = incidents["items"][0]["id"]
        [holding] = get(f"/api/v1/incidents/{incident_id}")["timeline"]
        assert holding["state"] == "published", holding
        assert holding["title"] == "Problems with payments"
        assert sorted(holding["audiences"]) == ["business", "consumers"]
        assert "sms" in holding["channels"]
        [opened] = hook_events()
        assert opened["outcome"] == "opened" and opened["incident_id"] == incident_id, opened
        assert opened["status"] == "firing"

        # The same alert again, as Prometheus re-sends it every evaluation: nothing more.
        alertmanager.post(payments)
        time.sleep(2 * GROUP_INTERVAL + 1)
        assert len(hook_events()) == 1, "Alertmanager deduplicates an unchanged group"
        assert texts() == Counter(PHONES)

        # A second alert in the same group: Alertmanager notifies again, same incident, no SMS.
        second = alert(
            {**PAYMENTS, "instance": "b"}, "Payments are failing", started, started + 300
        )
        alertmanager.post(second)
        wait(lambda: len(hook_events()) == 2, "the grown group delivered")
        added = hook_events()[-1]
        assert added["status"] == "firing" and added["incident_id"] == incident_id, added
        assert "announcement_id" not in added, added
        assert len(get(f"/api/v1/incidents/{incident_id}")["timeline"]) == 1

        # Resolved: a draft resolution for a human to approve; nothing sent.
        alertmanager.post(*({**a, "endsAt": rfc3339(time.time())} for a in (payments, second)))

        def draft() -> dict[str, Any] | None:
            timeline = get(f"/api/v1/incidents/{incident_id}")["timeline"]
            return next((a for a in timeline if a["state"] == "pending_approval"), None)

        resolution = wait(draft, "the resolution draft")
        assert resolution["status"] == "resolved", resolution
        assert resolution["published_at"] is None
        resolved = hook_events()[-1]
        assert resolved["status"] == "resolved" and resolved["outcome"] == "resolved", resolved
        assert len(hook_events()) == 3
        assert get("/api/v1/incidents")["total"] == 1
        wait(worker_idle, "the worker idle")
        time.sleep(1)
        assert texts() == Counter(PHONES)
        assert sendgrid.accepted() == [], "the consumers have no email address"
    finally:
        if alertmanager:
            alertmanager.stop()
        stop(worker)
        stop(web)
    assert worker.returncode == 0, (tmp_path / "worker.log").read_text()[-2000:]
