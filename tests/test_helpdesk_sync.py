"""The brief as saved replies in Zendesk and Freshdesk (issue 19 points 1 and 2)."""

from __future__ import annotations

import pytest

from broadcaster.app import create_app
from channels.base import ChannelConfigError
from tests.fakes_helpdesk import (
    FRESHDESK_KEY,
    ZENDESK_EMAIL,
    ZENDESK_TOKEN,
    FakeZendesk,
)
from tests.helpers import PAYMENTS_DOWN, announce, drain
from tests.processes import wait_for
from tests.workers import Workers, worker_env

LOCALES = ("en", "nl", "da", "sv")
OUTAGE = {
    **PAYMENTS_DOWN,
    "channels": ["banner"],
    "translations": {"nl": {"title": "Betalingen storing", "body": "Kaartbetalingen mislukken."}},
}


@pytest.fixture
def app(make_app, zendesk, freshdesk):
    return make_app(
        ZENDESK_URL=zendesk.url,
        ZENDESK_EMAIL=ZENDESK_EMAIL,
        ZENDESK_API_TOKEN=ZENDESK_TOKEN,
        FRESHDESK_URL=freshdesk.url,
        FRESHDESK_API_KEY=FRESHDESK_KEY,
        HELPDESK_DEACTIVATE_AFTER=0,
        PROVIDER_TIMEOUT=1,
    )


def macro_texts(zendesk: FakeZendesk) -> dict[str, str]:
    return {
        m["title"].rsplit("(", 1)[1].rstrip(")"): m["actions"][0]["value"]
        for m in zendesk.macros.values()
    }


def test_one_reply_per_language_created_once_and_updated_in_place(
    app, client, tokens, zendesk, freshdesk
):
    first = announce(client, tokens["approver"], OUTAGE)
    drain(app)
    assert sorted(macro_texts(zendesk)) == sorted(LOCALES)
    titles = {m["title"] for m in zendesk.macros.values()}
    assert "Incident: Payments down — reply (nl)" in titles
    texts = macro_texts(zendesk)
    assert "Kaartbetalingen mislukken." in texts["nl"] and "Facturen" not in texts["en"]
    assert "Card payments fail since 09:10." in texts["en"]
    assert "Livechat, https://acme.example/chat (24/7)" in texts["nl"]
    [folder] = freshdesk.folders.values()
    assert folder["name"] == "Incidents" and len(freshdesk.responses) == 4

    for n, body in enumerate(("Cause found.", "Fix deployed.", "Monitoring."), 1):
        announce(
            client,
            tokens["approver"],
            OUTAGE,
            incident_id=first["incident_id"],
            body=body,
            translations={},
            status="identified",
        )
        drain(app)
        assert len(zendesk.macros) == 4 and len(freshdesk.responses) == 4, n
        assert body in macro_texts(zendesk)["en"]
    creates = [w for w in zendesk.writes() if w[0] == "POST"]
    assert len(creates) == 4, "created once per language, then only updated"
    assert all(m["active"] for m in zendesk.macros.values())

    # The resolution: the all-clear reply, then (HELPDESK_DEACTIVATE_AFTER=0) deactivated.
    announce(
        client,
        tokens["approver"],
        OUTAGE,
        incident_id=first["incident_id"],
        body="Payments work again.",
        translations={},
        status="resolved",
    )
    drain(app)
    assert all(not m["active"] for m in zendesk.macros.values())
    assert all("Payments work again." in t for t in macro_texts(zendesk).values())
    assert all(r["title"].startswith("[ended] ") for r in freshdesk.responses.values())
    assert len(zendesk.macros) == 4 and len(freshdesk.responses) == 4
    incident = client.get(
        f"/api/v1/incidents/{first['incident_id']}", headers=tokens["admin"]
    ).get_json()
    assert incident["helpdesks"]["zendesk"]["outcome"].startswith("ok")
    assert set(incident["helpdesks"]["freshdesk"]["replies"]) == set(LOCALES)


def test_a_429_is_retried_after_its_wait_without_duplicates(app, client, tokens, zendesk):
    zendesk.fail_next(429, retry_after="1")
    announce(client, tokens["approver"], OUTAGE)
    drain(app)
    assert len(zendesk.macros) == 4
    assert [r for r in zendesk.requests if r["method"] == "POST"][0]["path"] == (
        "/api/v2/macros.json"
    )
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "broadcaster_helpdesk_syncs_total{" in metrics or "helpdesk_syncs" in metrics


def test_a_lost_answer_never_makes_a_second_reply(app, client, tokens, zendesk):
    # Zendesk makes the first macro, but its answer comes after we gave up (timeout 1 s):
    # the retry finds it by its title instead of making another.
    zendesk.stall_next(2.5)
    announce(client, tokens["approver"], OUTAGE)
    drain(app)
    assert len(zendesk.macros) == 4
    assert len([w for w in zendesk.writes() if w[0] == "POST"]) == 4


def test_a_failure_shows_on_the_incident_page(make_app, tokens, zendesk, signed_in, people):
    app = make_app(
        ZENDESK_URL=zendesk.url,
        ZENDESK_EMAIL=ZENDESK_EMAIL,
        ZENDESK_API_TOKEN="a-revoked-token",
    )
    client = app.test_client()
    first = announce(client, tokens["approver"], OUTAGE)
    drain(app)
    assert zendesk.macros == {}
    signed_in(client, people["admin"].email)
    page = client.get(f"/admin/incidents/{first['incident_id']}").get_data(as_text=True)
    assert "Helpdesk replies" in page and "failed: zendesk: HTTP 401" in page


def test_half_a_helpdesk_configuration_stops_start_up(redis_server, tmp_path):
    with pytest.raises(ChannelConfigError, match="zendesk: set BROADCASTER_ZENDESK_URL"):
        create_app(
            {
                "REDIS_URL": redis_server.url,
                "DATA_DIR": str(tmp_path),
                "ZENDESK_URL": "https://acme.zendesk.com",
            }
        )


def test_a_worker_killed_mid_sync_leaves_no_duplicate(
    make_app, r, redis_server, providers, tokens, tmp_path, zendesk
):
    """SIGKILL the worker while Zendesk holds its answer to the first create: the macro
    exists, we never heard its id. The job's next run finds it by title."""
    sendgrid, twilio = providers
    settings = {
        "ZENDESK_URL": zendesk.url,
        "ZENDESK_EMAIL": ZENDESK_EMAIL,
        "ZENDESK_API_TOKEN": ZENDESK_TOKEN,
    }
    env = worker_env(
        redis_server.url,
        sendgrid,
        twilio,
        tmp_path / "data",
        **{f"BROADCASTER_{k}": v for k, v in settings.items()},
    )
    workers = Workers(env, tmp_path).start(r, 1)
    try:
        zendesk.stall_next(60)
        client = make_app(**settings).test_client()
        incident_id = announce(client, tokens["approver"], OUTAGE)["incident_id"]
        wait_for(lambda: len(zendesk.macros) == 1, timeout=30, what="the first macro made")
        workers.kill(workers.processes[0].pid)
        workers.start(r, 1)

        def every_id_known() -> bool:
            ids = r.hgetall(f"bc:helpdesk:zendesk:{incident_id}")
            return len(ids) == 4 and b"creating" not in ids.values()

        wait_for(every_id_known, timeout=180, interval=1, what="the sync finished elsewhere")
    finally:
        workers.stop()
    creates = [w for w in zendesk.writes() if w[0] == "POST"]
    assert len(creates) == 4 and len(zendesk.macros) == 4, "no macro made twice"


def test_a_drill_makes_no_saved_reply(app, client, tokens, zendesk, freshdesk):
    """Agents answer real customers with these replies: a drill's words never become one."""
    started = client.post("/api/v1/drills", json={"scenario": "payments"}, headers=tokens["admin"])
    assert started.status_code == 201
    ended = client.post(f"/api/v1/drills/{started.get_json()['id']}/end", headers=tokens["admin"])
    assert ended.status_code == 200
    drain(app)
    assert zendesk.macros == {} and zendesk.requests == []
    assert freshdesk.requests == []
