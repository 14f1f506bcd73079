"""Channel configuration: fail at start-up naming the setting; outbox without credentials."""

from __future__ import annotations

import pytest

from channels import ChannelConfigError
from tests.helpers import drain


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [
        ({"TWILIO_FROM": None, "TWILIO_MESSAGING_SERVICE_SID": None}, "BROADCASTER_TWILIO_FROM"),
        ({"TWILIO_AUTH_TOKEN": None}, "BROADCASTER_TWILIO_AUTH_TOKEN"),
        ({"TWILIO_ACCOUNT_SID": None}, "BROADCASTER_TWILIO_ACCOUNT_SID"),
        ({"EMAIL_FROM": ""}, "BROADCASTER_EMAIL_FROM"),
    ],
)
def test_missing_setting_fails_at_start_up(make_app, overrides, setting):
    with pytest.raises(ChannelConfigError, match=setting):
        make_app(**overrides)


def test_without_credentials_messages_go_to_the_outbox(make_app, tokens, providers):
    app = make_app(SENDGRID_API_KEY=None, TWILIO_ACCOUNT_SID=None, TWILIO_AUTH_TOKEN=None)
    client = app.test_client()
    client.post(
        "/api/v1/subscribers",
        headers=tokens["admin"],
        json=[{"email": "a@example.com", "phone": "+31612345001", "audiences": ["consumers"]}],
    )
    body = {
        "title": "Gas leak <b>Zuid</b>",
        "body": "Leave the building.\n\nCall 112.",
        "severity": "minor",
        "audiences": ["consumers"],
        "channels": ["email", "sms"],
    }
    ann = client.post("/api/v1/announcements", json=body, headers=tokens["admin"]).get_json()["id"]
    drain(app)
    sendgrid, twilio = providers
    assert sendgrid.requests == [] and twilio.requests == []
    records = client.get(
        f"/api/v1/announcements/{ann}/deliveries", headers=tokens["admin"]
    ).get_json()["items"]
    by_channel = {r["channel"]: r for r in records}
    assert by_channel["email"]["state"] == by_channel["sms"]["state"] == "sent"
    email = by_channel["email"]["message"]
    assert email["subject"] == "Acme Energy: Gas leak <b>Zuid</b>"
    assert "Gas leak &lt;b&gt;Zuid&lt;/b&gt;" in email["html"], (
        "announcement text is escaped in HTML"
    )
    assert "<b>Zuid</b>" not in email["html"]
    assert "<p>Leave the building.</p>" in email["html"] and "<p>Call 112.</p>" in email["html"]
    assert "Leave the building." in email["text"]
    sms = by_channel["sms"]["message"]["text"]
    assert sms.startswith(
        "Acme Energy: Investigating: Gas leak <b>Zuid</b>. Leave the building. Call 112."
    )
    assert sms.endswith("http://127.0.0.1:8000/status")
    assert by_channel["sms"]["provider_id"].startswith("outbox-")
    ready = client.get("/readyz").get_json()
    assert ready["checks"]["transports"] == {
        "email": "outbox",
        "sms": "outbox",
        "whatsapp": "outbox",
        "voice": "outbox",
        "mastodon": "outbox",
        "bluesky": "outbox",
    }


def test_long_sms_is_shortened_keeping_the_link(make_app, tokens):
    app = make_app(
        TWILIO_ACCOUNT_SID=None, TWILIO_AUTH_TOKEN=None, PUBLIC_URL="https://status.acme.example"
    )
    client = app.test_client()
    client.post(
        "/api/v1/subscribers",
        headers=tokens["admin"],
        json=[{"phone": "+31612345001", "audiences": ["consumers"]}],
    )
    body = {
        "title": "Outage",
        "body": "word " * 200,
        "severity": "minor",
        "audiences": ["consumers"],
        "channels": ["sms"],
    }
    ann = client.post("/api/v1/announcements", json=body, headers=tokens["admin"]).get_json()["id"]
    drain(app)
    [record] = client.get(
        f"/api/v1/announcements/{ann}/deliveries", headers=tokens["admin"]
    ).get_json()["items"]
    text = record["message"]["text"]
    assert len(text) <= 306, "two GSM-7 segments (the example plan's sms_max_segments)"
    # Cut at a word with a GSM-7 ellipsis; the top route and the link are always kept.
    assert "word... Technical problem: https://acme.example/chat" in text
    assert text.endswith(" https://status.acme.example/status")


def test_bad_plan_fails_at_start_up_with_file_and_key(make_app, tmp_path):
    from broadcaster.domain.plan import PlanError

    plan = tmp_path / "plan.toml"
    plan.write_text(
        '[organisation]\nname = "X"\n[channels_by_severity]\ninfo = ["pigeon"]\n'
        '[audiences.a]\n[[audiences.a.routes]]\nneed = "Help"\nchannel = "Phone"\n'
    )
    with pytest.raises(PlanError) as err:
        make_app(PLAN=str(plan))
    message = str(err.value)
    assert "plan.toml: channels_by_severity.info: unknown channel 'pigeon'" in message
    assert "plan.toml: audiences.a.routes[0].contact: missing" in message


def test_redis_url_is_required(make_app):
    from broadcaster.config import ConfigError

    with pytest.raises(ConfigError, match="BROADCASTER_REDIS_URL"):
        make_app(REDIS_URL=None)


class _ForwardProxy:
    """A plain HTTP forward proxy on 127.0.0.1 that notes each request it relays."""

    def __init__(self) -> None:
        import http.client
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import urlsplit

        relayed: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                relayed.append(self.path)  # a proxy is asked for the absolute URL
                target = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=5)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "proxy-connection"}
                upstream.request("POST", target.path, body=body, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.relayed = relayed
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_sms_goes_through_the_proxy_the_environment_names(make_app, tokens, providers, monkeypatch):
    proxy = _ForwardProxy()
    try:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        app = make_app()  # the channel reads the proxy once, when it is built
        monkeypatch.delenv("HTTP_PROXY")
        client = app.test_client()
        client.post(
            "/api/v1/subscribers",
            headers=tokens["admin"],
            json=[{"phone": "+31612345001", "audiences": ["consumers"]}],
        )
        body = {
            "title": "Payments down",
            "body": "Card payments fail; we are on it.",
            "severity": "minor",
            "audiences": ["consumers"],
            "channels": ["sms"],
        }
        answer = client.post("/api/v1/announcements", json=body, headers=tokens["admin"])
        assert answer.status_code == 202, answer.get_json()
        drain(app)
    finally:
        proxy.server.shutdown()
    _, twilio = providers
    assert [form["To"] for form in twilio.accepted()] == ["+31612345001"]
    path = f"/2010-04-01/Accounts/{twilio.ACCOUNT_SID}/Messages.json"
    assert proxy.relayed == [f"{twilio.url}{path}"], "the request did not go through the proxy"


def test_channels_never_import_broadcaster():
    """``channels/`` is a plugin layer: the app imports it, never the other way round."""
    import ast
    from pathlib import Path

    import channels

    for path in Path(channels.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not [n for n in names if n.split(".")[0] == "broadcaster"], path.name


def test_the_apps_meter_is_a_channel_meter():
    from broadcaster.infra.metrics import Meter
    from channels.base import Meter as ChannelMeter
    from channels.base import NullMeter

    assert isinstance(Meter(None), ChannelMeter)
    assert isinstance(NullMeter(), ChannelMeter)


def test_registry_keys_are_the_classes_names_and_config_defaults_their_facts():
    from broadcaster.config import from_environment
    from channels import NETWORKS, PERSONAL, PROVIDERS

    config = from_environment({})
    for name, cls in {**PERSONAL, **NETWORKS}.items():
        assert cls.name == name
        assert PROVIDERS[cls.provider] is cls
        assert config[cls.rate_setting] == cls.rate
    for cls in PERSONAL.values():
        assert config[cls.batch_setting] == cls.max_batch
        assert 1 <= cls.per_request <= cls.max_batch


@pytest.mark.parametrize(
    ("transport", "config", "rate", "sender"),
    [
        ("twilio", {"TWILIO_RATE": 0, "TWILIO_FROM": "+3197010"}, 1.0, "twilio:+3197010"),
        ("twilio", {"TWILIO_RATE": 0, "TWILIO_MESSAGING_SERVICE_SID": "MG1"}, 10.0, "twilio:MG1"),
        ("twilio", {"TWILIO_RATE": 100, "TWILIO_FROM": "+3197010"}, 100.0, "twilio:+3197010"),
        ("sendgrid", {"SENDGRID_RATE": 0, "SENDGRID_API_KEY": "SG.x"}, None, "sendgrid:"),
        ("mastodon", {"MASTODON_BASE_URL": "https://m.example"}, 1.0, "mastodon:https://m.example"),
        ("bluesky", {"BLUESKY_HANDLE": "a.bsky.social"}, 0.4, "bluesky:a.bsky.social"),
        ("outbox", {}, None, "outbox"),
    ],
)
def test_rate_and_sender_come_from_the_channel_class(transport, config, rate, sender):
    from broadcaster.delivery.ratelimit import rate_for, sender_name

    assert rate_for(transport, config) == rate
    assert sender_name(transport, config).startswith(sender)
    assert "SG.x" not in sender_name(transport, config)  # never the API key itself
