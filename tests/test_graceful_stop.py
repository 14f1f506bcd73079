"""Graceful stop in seconds: SIGTERM in the middle of a paced batch (500 SMS at 1/s).

The worker stops within 10 s, gives back what it did not send and requeues it at the front
of the queue; the next worker sends the rest, and everybody gets exactly one SMS.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections import Counter

from rq import SimpleWorker
from rq.serializers import JSONSerializer

from broadcaster.delivery.queues import queue
from broadcaster.infra.redis_server import free_port
from tests.helpers import PAYMENTS_DOWN, announce, counts, subscribe
from tests.processes import alive, broadcaster_command, descendants, http, start, wait_for
from tests.workers import Workers, worker_env

PACED = {"BROADCASTER_TWILIO_RATE": "1"}  # one SMS a second: the batch runs 8 minutes
FAST = {"BROADCASTER_TWILIO_RATE": "1000"}


def _stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> float:
    """Send ``sig`` to the process group (as systemd or a container runtime do); seconds
    until the process exited."""
    began = time.monotonic()
    os.killpg(process.pid, sig)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    return time.monotonic() - began


def test_sigterm_mid_batch_stops_the_worker_in_seconds_and_the_rest_goes_first(
    make_app, r, redis_server, providers, tokens, tmp_path
):
    sendgrid, twilio = providers
    app = make_app()
    client = app.test_client()
    consumers = [f"+3161234{i:04d}" for i in range(500)]
    business = [f"+3161299{i:04d}" for i in range(5)]
    subscribe(
        client,
        tokens["admin"],
        [{"phone": p, "audiences": ["consumers"]} for p in consumers]
        + [{"phone": p, "audiences": ["business"]} for p in business],
    )
    env = worker_env(redis_server.url, sendgrid, twilio, tmp_path / "data", **PACED)
    (tmp_path / "paced").mkdir()
    paced = Workers(env, tmp_path / "paced").start(r, 1)
    try:
        big = announce(client, tokens["admin"], PAYMENTS_DOWN, channels=["sms"])["id"]
        wait_for(lambda: len(twilio.accepted()) >= 3, timeout=60, what="the paced batch under way")
        # Queued behind the big batch: it must not overtake the big batch's rest.
        small = announce(
            client,
            tokens["admin"],
            PAYMENTS_DOWN,
            channels=["sms"],
            audiences=["business"],
            title="Business customers",
        )["id"]
        # Its plan job waits behind the busy worker: plan it here, so its batch is queued.
        with app.app_context():
            SimpleWorker([queue(r, "plan")], connection=r, serializer=JSONSerializer).work(
                burst=True
            )
        assert queue(r, "sms").count == 1, "the small batch waits in the SMS queue"
        took = _stop(paced.processes[0])
    finally:
        paced.stop()

    assert took < 10, f"the worker took {took:.1f}s to stop"
    sent_before = len(twilio.accepted())
    assert sent_before < 100, "the batch must have been stopped, not finished"
    state = counts(client, tokens["admin"], big)["sms"]
    # Progress recorded: what went out is sent, the rest is queued again, nothing held.
    assert state["sent"] == sent_before and state["sending"] == 0
    assert state["queued"] == 500 - sent_before
    sms = queue(r, "sms")
    first = sms.fetch_job(sms.job_ids[0])
    announcement_id, channel, rest = first.args[:3]
    assert announcement_id == big and channel == "sms" and len(rest) == 500 - sent_before
    assert first.func_name == "broadcaster.delivery.fanout.batch_job"

    # A new worker (not paced, so the test is quick) sends the rest, the big batch first.
    env = worker_env(redis_server.url, sendgrid, twilio, tmp_path / "data", **FAST)
    (tmp_path / "fresh").mkdir()
    fresh = Workers(env, tmp_path / "fresh").start(r, 1)
    try:
        for ann, total in ((big, 500), (small, 5)):
            wait_for(
                lambda ann=ann, total=total: (
                    counts(client, tokens["admin"], ann)["sms"]["sent"] == total
                ),
                timeout=60,
                what=f"every SMS of {ann} sent",
            )
    finally:
        fresh.stop()
    received = Counter(form["To"] for form in twilio.accepted())
    assert received == Counter(consumers + business), "everyone exactly one SMS"
    after_stop = [form["To"] for form in twilio.accepted()][sent_before:]
    assert set(after_stop[:10]) <= set(consumers), "the stopped batch's rest went first"


def test_up_stops_everything_within_15s_mid_batch(r, redis_server, providers, tmp_path):
    sendgrid, twilio = providers
    env = worker_env(redis_server.url, sendgrid, twilio, tmp_path / "var", **PACED)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "up.log"
    up = start(
        [*broadcaster_command(), "up", "--port", str(port), "--workers", "2"], env, tmp_path, log
    )
    try:
        wait_for(lambda: http("GET", base + "/readyz")[0] == 200, timeout=60, what="service ready")
        token = re.search(r"Admin API token \(shown once, keep it\): (\S+)", log.read_text())
        assert token, log.read_text()
        phones = [f"+3161234{i:04d}" for i in range(200)]
        status, _ = http(
            "POST",
            base + "/api/v1/subscribers",
            token=token.group(1),
            body=[{"phone": p, "audiences": ["consumers"]} for p in phones],
        )
        assert status == 200
        status, accepted = http(
            "POST",
            base + "/api/v1/announcements",
            token=token.group(1),
            body={**PAYMENTS_DOWN, "channels": ["sms"]},
        )
        assert status == 202, accepted
        wait_for(lambda: len(twilio.accepted()) >= 3, timeout=60, what="the paced batch under way")
        children = descendants(up.pid)
        took = _stop(up, signal.SIGTERM)
        wait_for(lambda: not any(alive(pid) for pid in children), timeout=5, what="children gone")
    finally:
        if up.poll() is None:
            up.kill()
    assert took < 15, f"broadcaster up took {took:.1f}s to stop"
    assert up.returncode == 0, log.read_text()[-3000:]

    sent_before = len(twilio.accepted())
    fast = worker_env(redis_server.url, sendgrid, twilio, tmp_path / "var", **FAST)
    workers = Workers(fast, tmp_path).start(r, 1)
    try:
        wait_for(lambda: len(twilio.accepted()) >= len(phones), timeout=90, what="the rest sent")
        time.sleep(1)  # nothing more may come
    except AssertionError:
        print(log.read_text()[-5000:], workers.logs(), queue(r, "sms").job_ids)
        raise
    finally:
        workers.stop()
    assert sent_before < len(phones)
    assert Counter(form["To"] for form in twilio.accepted()) == Counter(phones)
