"""Crash safety with real faults: SIGKILL a worker, SIGKILL Redis, kill the web mid-request."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import urllib.error
from collections import Counter

import pytest
import redis
from rq import Worker
from rq.job import Job
from rq.serializers import JSONSerializer

from broadcaster.domain.tokens import create_token
from broadcaster.infra.redis_server import EmbeddedRedis, free_port
from tests.helpers import PAYMENTS_DOWN, announce, counts, subscribe
from tests.processes import http, start, wait_for, web_command
from tests.workers import Workers, worker_env

ANNOUNCEMENT = {
    "title": "Storm damage",
    "body": "Expect outages in the north until 18:00.",
    "severity": "minor",
    "status": "identified",
    "audiences": ["consumers"],
    "channels": ["sms"],
}


def test_a_killed_workers_batch_is_picked_up_within_a_minute(
    make_app, r, redis_server, providers, tokens, tmp_path
):
    sendgrid, twilio = providers
    twilio.delay = 0.1  # a slow provider: the batches are mid-way when the kill comes
    env = worker_env(
        redis_server.url, sendgrid, twilio, tmp_path / "data", BROADCASTER_TWILIO_RATE="1000"
    )
    workers = Workers(env, tmp_path).start(r, 2)
    try:
        client = make_app().test_client()
        phones = [f"+3161234{i:04d}" for i in range(2000)]
        subscribe(
            client, tokens["admin"], [{"phone": p, "audiences": ["consumers"]} for p in phones]
        )
        ann = announce(client, tokens["admin"], PAYMENTS_DOWN, channels=["sms"])["id"]
        wait_for(lambda: len(twilio.requests) >= 300, timeout=60, what="sending under way")
        victim = next(w for w in Worker.all(connection=r) if w.get_current_job_id())
        job_id = victim.get_current_job_id()
        workers.kill(victim.pid)
        killed_at = time.monotonic()

        def picked_up() -> bool:
            job = Job.fetch(job_id, connection=r, serializer=JSONSerializer)
            return bool(job.worker_name) and job.worker_name != victim.name

        wait_for(picked_up, timeout=90, interval=0.5, what="the killed worker's batch picked up")
        pickup = time.monotonic() - killed_at
        wait_for(
            lambda: counts(client, tokens["admin"], ann)["sms"]["sent"] == 2000,
            timeout=60,
            what="every SMS sent",
        )
    finally:
        workers.stop()

    assert pickup < 60, f"picked up {pickup:.0f}s after the kill"
    received = Counter(form["To"] for form in twilio.accepted())
    assert set(received) == set(phones), "somebody was never reached"
    twice = [to for to, n in received.items() if n > 1]
    # Only what was in flight at the kill may go twice: at most one SMS_CONCURRENCY step.
    assert max(received.values()) <= 2 and len(twice) <= 16, f"{len(twice)} duplicates"


def test_redis_killed_and_restarted_mid_fan_out_loses_no_accepted_announcement(
    make_app, providers, tmp_path
):
    sendgrid, twilio = providers
    twilio.delay = 0.05
    server = EmbeddedRedis(tmp_path / "redis").start()
    try:
        r = redis.Redis.from_url(server.url)
        app = make_app(REDIS_URL=server.url)
        client = app.test_client()
        admin = {"Authorization": f"Bearer {create_token(r, 'ada', 'admin')}"}
        env = worker_env(
            server.url, sendgrid, twilio, tmp_path / "data", BROADCASTER_TWILIO_RATE="1000"
        )
        workers = Workers(env, tmp_path).start(r, 2)
        try:
            phones = [f"+3161234{i:04d}" for i in range(600)]
            subscribe(client, admin, [{"phone": p, "audiences": ["consumers"]} for p in phones])
            first = announce(client, admin, PAYMENTS_DOWN, channels=["sms"])["id"]
            wait_for(lambda: len(twilio.requests) >= 100, timeout=60, what="sending under way")
            second = announce(
                client, admin, PAYMENTS_DOWN, channels=["sms"], title="Storm: update"
            )["id"]
            assert len(twilio.accepted()) < 1200, "the fan-out must still be running"
            # A crash, not a clean shutdown: the 202s above must already be on disk.
            server.process.kill()
            server.process.wait()
            time.sleep(1)
            server.start()

            def all_sent(ann: str) -> bool:
                # While Redis comes back the API may answer 503: not yet, not a failure.
                answer = client.get(f"/api/v1/announcements/{ann}", headers=admin)
                return (
                    answer.status_code == 200 and counts(client, admin, ann)["sms"]["sent"] == 600
                )

            for ann in (first, second):
                wait_for(lambda ann=ann: all_sent(ann), timeout=90, what=f"every SMS of {ann} sent")
        finally:
            workers.stop()
    finally:
        server.stop()

    bodies = {form["Body"].split(".")[0] for form in twilio.accepted()}
    assert bodies == {
        "Acme Energy: Investigating: Payments down",
        "Acme Energy: Investigating: Storm: update",
    }
    for title in bodies:
        received = Counter(f["To"] for f in twilio.accepted() if f["Body"].startswith(title))
        assert set(received) == set(phones), f"{title}: somebody was never reached"
        # Only messages in flight at the crash may go twice (two workers × 16 at a time).
        assert sum(n - 1 for n in received.values()) <= 32


class _CutAfterCommit:
    """A TCP proxy to Redis that swallows the replies once the announcement is committed.

    The web process then waits for an answer that never comes, as if it died right after
    its transaction: the announcement is stored, the client has no response.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.committed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._up, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._down, args=(upstream, client), daemon=True).start()

    def _up(self, client: socket.socket, upstream: socket.socket) -> None:
        seen = b""
        while data := _recv(client):
            seen = (seen + data)[-65536:]
            upstream.sendall(data)
            # The announcement's transaction enqueues its plan job, then EXEC.
            if b"rq:job:plan-" in seen and b"EXEC" in seen:
                self.committed.set()

    def _down(self, upstream: socket.socket, client: socket.socket) -> None:
        while data := _recv(upstream):
            if self.committed.is_set():
                continue  # the web never hears back
            client.sendall(data)

    def close(self) -> None:
        self.listener.close()


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _gunicorn(env: dict[str, str], tmp_path, name: str):  # type: ignore[no-untyped-def]
    port = free_port()
    process = start(web_command(port, "--workers", "1"), env, tmp_path, tmp_path / f"{name}.log")
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: http("GET", base + "/healthz")[0] == 200, what=f"{name} up")
    return process, base


def test_a_retry_after_the_web_died_mid_request_gets_the_original_result(
    r, redis_server, providers, tmp_path
):
    sendgrid, twilio = providers
    token = create_token(r, "lead", "admin")
    proxy = _CutAfterCommit(redis_server.port)
    env = worker_env(redis_server.url, sendgrid, twilio, tmp_path / "data")
    cut = {**env, "BROADCASTER_REDIS_URL": f"redis://127.0.0.1:{proxy.port}/0"}
    web, base = _gunicorn(cut, tmp_path, "web1")
    key = {"Idempotency-Key": "storm-2024-001"}
    outcome: list[object] = []

    def first_try() -> None:
        try:
            outcome.append(_post(base, token, key, timeout=30))
        except (OSError, urllib.error.URLError) as exc:
            outcome.append(exc)

    try:
        client = threading.Thread(target=first_try)
        client.start()
        assert proxy.committed.wait(15), "the announcement was never committed"
        os.killpg(web.pid, signal.SIGKILL)  # the web dies before it can answer
        web.wait()
        client.join(15)
        assert outcome and isinstance(outcome[0], OSError | urllib.error.URLError), outcome
        [stored] = r.zrange("bc:anns", 0, -1)

        web, base = _gunicorn(env, tmp_path, "web2")
        status, body = _post(base, token, key)
    finally:
        if web.poll() is None:
            os.killpg(web.pid, signal.SIGTERM)
            web.wait(15)
        proxy.close()

    assert status == 202, body
    assert body["id"] == stored.decode() and body["state"] == "published"
    assert r.zcard("bc:anns") == 1, "the retry broadcast a second announcement"
    assert r.exists(f"rq:job:plan-{body['id']}")


def _post(base: str, token: str, headers: dict[str, str], timeout: float = 10):  # type: ignore[no-untyped-def]
    import json
    import urllib.request

    request = urllib.request.Request(
        base + "/api/v1/announcements",
        data=json.dumps(ANNOUNCEMENT).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
