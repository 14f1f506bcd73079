"""Logs as the app writes them: JSON or text, with ids, without contacts or secrets."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest
from twilio.request_validator import RequestValidator

from broadcaster.config import ConfigError
from broadcaster.infra import logs
from tests.fakes import FakeSendGrid, FakeTwilio
from tests.helpers import drain

PHONE = "+31612345678"
EMAIL = "jane.doe@example.com"


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    """Where the app's log handler writes during the test (stderr again afterwards)."""
    stream = io.StringIO()
    yield stream
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "_broadcaster", 0))
    handler.setStream(sys.stderr)


def json_lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_json_logs_carry_ids_and_mask_contacts(make_app, tokens, output):
    app = make_app(LOG_FORMAT="json")
    logs.configure(app.config, stream=output)
    client = app.test_client()
    client.post(
        "/api/v1/subscribers",
        json=[{"phone": PHONE, "email": EMAIL, "audiences": ["consumers"]}],
        headers=tokens["admin"],
    )
    body = {
        "title": "Outage",
        "body": "We are on it.",
        "severity": "minor",
        "audiences": ["consumers"],
        "channels": ["sms", "email"],
    }
    ann = client.post("/api/v1/announcements", json=body, headers=tokens["admin"]).get_json()
    drain(app)
    form = {"MessageSid": "SMlog1", "From": PHONE, "To": "+3197010000000", "Body": "Help?"}
    url = "http://127.0.0.1:8000/hooks/twilio/inbound"
    signature = RequestValidator(FakeTwilio.AUTH_TOKEN).compute_signature(url, form)
    client.post("/hooks/twilio/inbound", data=form, headers={"X-Twilio-Signature": signature})

    records = json_lines(output)
    assert records, "nothing was logged"
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    planned = next(r for r in records if r["message"].startswith("planned"))
    # A worker job's records name the announcement it works on, and its incident.
    assert planned["announcement_id"] == ann["id"]
    assert planned["incident_id"] == ann["incident_id"]
    reply = next(r for r in records if "customer reply" in r["message"])
    assert reply["message"] == "customer reply by SMS from +316…678"
    assert reply["announcement_id"] == ann["id"] and reply["incident_id"] == ann["incident_id"]
    raw = output.getvalue()
    assert PHONE not in raw and EMAIL not in raw


def test_contacts_masked_at_info_secrets_removed_everywhere(make_app, output):
    app = make_app(LOG_LEVEL="DEBUG")
    logs.configure(app.config, stream=output)
    log = logging.getLogger("broadcaster.test")
    log.info("texting %s and mailing %s", PHONE, EMAIL)
    log.info("spaced number +31 6 1234 5678 in free text")
    log.debug("debug keeps %s for troubleshooting", PHONE)
    log.warning("provider said no to key %s", FakeSendGrid.API_KEY + "-and-more")
    log.warning("twilio token %s", app.config["TWILIO_AUTH_TOKEN"])
    log.info("header Authorization: Bearer bct_abcdefghijklmnop and Basic QUM6c2VjcmV0")
    log.info("GET /unsubscribe/eyJzIjoiMTIzIn0.ZkX1Ag.abcdef HTTP/1.1")
    log.info("sent", extra={"to": PHONE})
    try:
        raise ValueError(f"The 'To' number {PHONE} is not a valid phone number.")
    except ValueError:
        log.exception("send failed")

    text = output.getvalue()
    assert "texting +316…678 and mailing j…@example.com" in text
    assert "spaced number +316…678 in free text" in text
    assert f"debug keeps {PHONE}" in text  # DEBUG is for people fixing things
    assert FakeSendGrid.API_KEY not in text and FakeTwilio.AUTH_TOKEN not in text
    assert text.count("[redacted]") >= 5
    assert "bct_abcdefghijklmnop" not in text and "QUM6c2VjcmV0" not in text
    assert "eyJzIjoiMTIzIn0" not in text
    traceback = text[text.index("send failed") :]
    assert "ValueError: The 'To' number +316…678 is not" in traceback
    assert text.count(PHONE) == 1  # only the DEBUG line


def test_text_format_appends_ids(make_app, output):
    app = make_app()
    logs.configure(app.config, stream=output)
    with logs.bind(announcement_id="ann_x", incident_id="inc_y"):
        logging.getLogger("broadcaster.test").warning("retrying")
    line = output.getvalue().strip()
    assert line.endswith(
        "WARNING broadcaster.test: retrying [announcement_id=ann_x incident_id=inc_y]"
    )


def test_unknown_log_format_fails_at_start_up(make_app):
    with pytest.raises(ConfigError, match="BROADCASTER_LOG_FORMAT"):
        make_app(LOG_FORMAT="xml")


def test_gunicorn_logs_in_json_too_when_asked(redis_server, tmp_path):
    # A log shipper reading the web process's output must get JSON only, gunicorn's own
    # lines (booting, signals, exits) included.
    import signal

    from broadcaster.infra.redis_server import free_port
    from tests.processes import clean_env, http, start, wait_for, web_command

    port = free_port()
    env = clean_env(
        BROADCASTER_DATA_DIR=str(tmp_path / "var"),
        BROADCASTER_REDIS_URL=redis_server.url,
        BROADCASTER_LOG_FORMAT="json",
    )
    log = tmp_path / "web.log"
    web = start(web_command(port), env, tmp_path, log)
    try:
        wait_for(lambda: http("GET", f"http://127.0.0.1:{port}/healthz")[0] == 200, what="web up")
    finally:
        web.send_signal(signal.SIGTERM)
        web.wait(30)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    gunicorn = [line["message"] for line in lines if line["logger"] == "gunicorn.error"]
    assert any(m.startswith("Booting worker with pid") for m in gunicorn), gunicorn
    assert "Shutting down: Master" in gunicorn
    assert f"Listening at: http://127.0.0.1:{port} (a socket per worker: reuse_port)" in gunicorn
