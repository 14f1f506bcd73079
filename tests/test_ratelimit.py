"""Provider rate limits shared by real worker processes, against fakes that throttle."""

from __future__ import annotations

from collections import Counter

from rq import Worker

from tests.helpers import PAYMENTS_DOWN, announce, counts, deliveries, subscribe
from tests.processes import wait_for
from tests.workers import Workers, worker_env

RATE = 25  # messages per second: a short test, and room for a loaded CI machine's jitter


def test_three_workers_together_keep_to_the_twilio_rate(
    make_app, r, redis_server, providers, tokens, tmp_path
):
    sendgrid, twilio = providers
    # A Twilio that answers 429 beyond the rate; a burst of 5 (0.2 s) absorbs scheduling jitter.
    twilio.throttle(RATE, burst=5)
    env = worker_env(
        redis_server.url,
        sendgrid,
        twilio,
        tmp_path / "data",
        BROADCASTER_TWILIO_RATE=str(RATE),
        BROADCASTER_SMS_BATCH_SIZE="15",  # ten batches, for three workers to share
    )
    workers = Workers(env, tmp_path).start(r, 3)
    try:
        client = make_app().test_client()
        phones = [f"+3161234{i:04d}" for i in range(150)]
        subscribe(
            client, tokens["admin"], [{"phone": p, "audiences": ["consumers"]} for p in phones]
        )
        ann = announce(client, tokens["admin"], PAYMENTS_DOWN, channels=["sms"])["id"]
        wait_for(
            lambda: counts(client, tokens["admin"], ann)["sms"]["sent"] == 150,
            timeout=30,
            what="every SMS sent",
        )
        busy = [w.successful_job_count for w in Worker.all(connection=r)]
    finally:
        workers.stop()

    assert len(busy) == 3 and all(busy), f"not all three workers sent: {busy}"
    statuses = Counter(req["status"] for req in twilio.requests)
    assert statuses == {201: 150}, f"the provider had to throttle: {statuses}"
    assert Counter(f["To"] for f in twilio.accepted()) == Counter(phones)
    arrivals = sorted(req["arrived"] for req in twilio.requests)
    observed = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    assert RATE * 0.95 <= observed <= RATE * 1.05, f"{observed:.1f}/s for a limit of {RATE}/s"


def test_a_429_pauses_that_provider_only_and_the_batch_resumes(
    make_app, r, redis_server, providers, tokens, tmp_path
):
    sendgrid, twilio = providers
    sendgrid.delay = 0.4  # email keeps a worker busy while Twilio is paused
    twilio.fail_next(
        429, headers={"Retry-After": "3"}, body={"code": 20429, "message": "Too Many Requests"}
    )
    env = worker_env(
        redis_server.url,
        sendgrid,
        twilio,
        tmp_path / "data",
        BROADCASTER_TWILIO_RATE="1000",
        BROADCASTER_SMS_CONCURRENCY="1",  # the 429 is the first answer, then one at a time
        BROADCASTER_EMAIL_BATCH_SIZE="2",
    )
    workers = Workers(env, tmp_path).start(r, 2)
    try:
        client = make_app().test_client()
        rows = [
            {"email": f"p{i}@example.com", "phone": f"+3161234{i:04d}", "audiences": ["consumers"]}
            for i in range(20)
        ]
        subscribe(client, tokens["admin"], rows)
        ann = announce(client, tokens["admin"], PAYMENTS_DOWN)["id"]
        wait_for(
            lambda: (
                counts(client, tokens["admin"], ann)["sms"]["sent"] == 20
                and counts(client, tokens["admin"], ann)["email"]["sent"] == 20
            ),
            timeout=30,
            what="every SMS and email sent",
        )
    finally:
        workers.stop()

    first, *rest = twilio.requests
    assert first["status"] == 429 and all(req["status"] == 201 for req in rest)
    # Nobody sent to Twilio during its pause, though the SMS batch was still running.
    resumed = min(req["arrived"] for req in rest)
    assert resumed - first["arrived"] >= 2.9, f"resumed {resumed - first['arrived']:.2f}s later"
    # SendGrid kept being served while Twilio was paused.
    during = [req for req in sendgrid.requests if first["at"] < req["at"] < resumed]
    assert during, "email waited for Twilio's pause"
    # The batch resumed where it stopped: everyone once, nobody twice.
    assert Counter(f["To"] for f in twilio.accepted()) == Counter(row["phone"] for row in rows)


def test_a_429_mid_step_holds_the_rest_of_that_step_and_the_next(
    make_app, r, redis_server, providers, tokens, tmp_path
):
    sendgrid, twilio = providers
    # Steps of 8 (concurrency 16, two steps in flight), paced at 20/s: a step spans 0.35 s,
    # so its later messages are still waiting for their slots when the first gets a 429.
    twilio.fail_next(
        429, headers={"Retry-After": "2"}, body={"code": 20429, "message": "Too Many Requests"}
    )
    env = worker_env(
        redis_server.url, sendgrid, twilio, tmp_path / "data", BROADCASTER_TWILIO_RATE="20"
    )
    workers = Workers(env, tmp_path).start(r, 1)
    try:
        client = make_app().test_client()
        phones = [f"+3161234{i:04d}" for i in range(24)]
        subscribe(
            client, tokens["admin"], [{"phone": p, "audiences": ["consumers"]} for p in phones]
        )
        ann = announce(client, tokens["admin"], PAYMENTS_DOWN, channels=["sms"])["id"]
        wait_for(
            lambda: counts(client, tokens["admin"], ann)["sms"]["sent"] == 24,
            timeout=30,
            what="every SMS sent",
        )
    finally:
        workers.stop()

    first, *rest = twilio.requests
    assert first["status"] == 429 and all(req["status"] == 201 for req in rest)
    # The messages already paced into slots after the 429 were held, not sent into it.
    resumed = min(req["arrived"] for req in rest)
    assert resumed - first["arrived"] >= 1.9, f"resumed {resumed - first['arrived']:.2f}s later"
    assert Counter(f["To"] for f in twilio.accepted()) == Counter(phones)
    # Only the throttled one spent an attempt; the held ones were never sent.
    records = deliveries(client, tokens["admin"], ann)
    assert sorted(d["attempts"] for d in records) == [1] * 23 + [2]
