"""End to end with real processes: gunicorn web, ``python worker.py``, CLI, fake providers."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from rq import Worker

from broadcaster.delivery import queues
from broadcaster.infra.redis_server import free_port
from tests.conftest import TWILIO_FROM
from tests.fakes import FakeSendGrid, FakeTwilio
from tests.processes import broadcaster_command, clean_env, http, start, wait_for, web_command

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def service_env(r, redis_server, providers, tmp_path):
    sendgrid, twilio = providers
    return clean_env(
        BROADCASTER_REDIS_URL=redis_server.url,
        BROADCASTER_DATA_DIR=str(tmp_path / "data"),
        BROADCASTER_SENDGRID_API_KEY=FakeSendGrid.API_KEY,
        BROADCASTER_SENDGRID_BASE_URL=sendgrid.url,
        BROADCASTER_EMAIL_FROM="alerts@acme.example",
        BROADCASTER_TWILIO_ACCOUNT_SID=FakeTwilio.ACCOUNT_SID,
        BROADCASTER_TWILIO_AUTH_TOKEN=FakeTwilio.AUTH_TOKEN,
        BROADCASTER_TWILIO_FROM=TWILIO_FROM,
        BROADCASTER_TWILIO_BASE_URL=twilio.url,
        BROADCASTER_RETRY_BACKOFF="0",
        BROADCASTER_TWILIO_RATE="100",  # pacing is tested in test_ratelimit.py
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_token_subscribers_announcement_worker(service_env, providers, r, tmp_path):
    sendgrid, twilio = providers
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web = start(
        web_command(port, "--workers", "1", "--threads", "4"),
        service_env,
        tmp_path,
        tmp_path / "web.log",
    )
    worker = None
    try:
        token = (
            subprocess.run(
                [*broadcaster_command(), "token", "create", "--name", "lead", "--role", "admin"],
                env=service_env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        csv_file = tmp_path / "people.csv"
        rows = ["external_id,email,phone,locale,audiences,channels"]
        rows += [f"p{i},p{i}@example.com,+316123450{i:02d},,consumers," for i in range(30)]
        rows += [f"b{i},b{i}@example.com,,,business," for i in range(5)]
        csv_file.write_text("\n".join(rows) + "\n")
        subprocess.run(
            [*broadcaster_command(), "subscribers", "import", str(csv_file)],
            env=service_env,
            cwd=tmp_path,
            check=True,
            capture_output=True,
        )

        # The approver exists before the announcement: a newer account may not approve it.
        approver = (
            subprocess.run(
                [*broadcaster_command(), "token", "create", "--name", "duty", "--role", "approver"],
                env=service_env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        wait_for(lambda: http("GET", base + "/healthz")[0] == 200, what="web server")
        assert http("GET", base + "/readyz")[0] == 503, "no worker yet: not ready"
        status, accepted = http(
            "POST",
            base + "/api/v1/announcements",
            token=token,
            body={
                "title": "Storm damage",
                "body": "Expect outages in the north until 18:00.",
                "severity": "critical",
                "status": "identified",
                "audiences": ["consumers", "business"],
                "channels": ["email", "sms"],
            },
        )
        assert status == 202, accepted
        assert accepted["state"] == "pending_approval", (
            "critical needs a second person in the example plan"
        )
        ann = accepted["id"]
        assert http("POST", f"{base}/api/v1/announcements/{ann}/approve", token=approver)[0] == 200

        worker = start(
            [sys.executable, str(ROOT / "worker.py")],
            service_env,
            tmp_path,
            tmp_path / "worker.log",
        )

        def all_sent():
            counts = http("GET", f"{base}/api/v1/announcements/{ann}", token=token)[1]["deliveries"]
            return counts if counts["email"]["sent"] == 35 and counts["sms"]["sent"] == 30 else None

        counts = wait_for(all_sent, timeout=60, what="every delivery sent")
        assert counts["email"]["failed"] == counts["sms"]["failed"] == 0
        assert wait_for(lambda: http("GET", base + "/readyz")[0] == 200, what="worker seen")
        assert Counter(a for a, _ in sendgrid.accepted()) == Counter(
            {f"p{i}@example.com": 1 for i in range(30)} | {f"b{i}@example.com": 1 for i in range(5)}
        )
        assert Counter(f["To"] for f in twilio.accepted()) == Counter(
            {f"+316123450{i:02d}": 1 for i in range(30)}
        )

        # The same batches again, as after a crash: the running worker sends nothing more.
        ids = [
            s["id"]
            for s in http("GET", f"{base}/api/v1/subscribers?per_page=1000", token=token)[1][
                "items"
            ]
        ]
        queues.enqueue_batch(r, ann, "email", ids)
        queues.enqueue_batch(r, ann, "sms", ids)
        wait_for(
            lambda: queues.queue(r, "sms").count == 0 and queues.queue(r, "email").count == 0,
            what="re-run batches picked up",
        )
        wait_for(
            lambda: not any(w.get_current_job_id() for w in Worker.all(connection=r)),
            what="re-run batches done",
        )
        assert len(sendgrid.accepted()) == 35 and len(twilio.accepted()) == 30
    finally:
        stop(web)
        if worker:
            stop(worker)
    assert worker.returncode == 0, (tmp_path / "worker.log").read_text()[-2000:]
