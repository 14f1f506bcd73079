"""Webhook channel: real HTTP to a receiver on 127.0.0.1 that checks signatures with verify()."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from channels.base import PermanentDeliveryError, PublicPost, TransientDeliveryError
from channels.webhook import SIGNATURE_HEADER, WebhookChannel, WebhookTarget, sign, verify

SECRET = "whsec_test_shared_secret"
KEY = "ann_1:webhook:staff-slack"
LINK = "http://127.0.0.1:8000/status"


@dataclass
class Answer:
    """A canned answer for the next request."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    stall: float = 0.0


class Receiver:
    """A threaded HTTP receiver that verifies each request's signature and records it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.answers: list[Answer] = []
        self.release = threading.Event()  # lets a stalled handler go at reset/teardown
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = dict(self.headers)
                with receiver.lock:
                    receiver.requests.append(
                        {
                            "path": self.path,
                            "headers": headers,
                            "raw": raw,
                            "verified": verify(SECRET, headers.get(SIGNATURE_HEADER, ""), raw),
                        }
                    )
                    answer = receiver.answers.pop(0) if receiver.answers else Answer(200, {}, b"ok")
                if answer.stall:
                    receiver.release.wait(answer.stall)
                self.send_response(answer.status)
                self.send_header("Content-Length", str(len(answer.body)))
                for key, value in answer.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(answer.body)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that gave up on a stalled answer is expected here

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer_next(self, *answers: Answer) -> None:
        with self.lock:
            self.answers.extend(answers)

    def reset(self) -> None:
        self.release.set()
        with self.lock:
            self.requests.clear()
            self.answers.clear()
        self.release = threading.Event()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def receiver(server: Receiver) -> Iterator[Receiver]:
    server.reset()
    yield server
    server.reset()


@pytest.fixture
def channel() -> WebhookChannel:
    return WebhookChannel({"PROVIDER_TIMEOUT": 0.5})


def make_target(receiver: Receiver, **overrides: Any) -> WebhookTarget:
    values: dict[str, Any] = {
        "name": "staff-slack",
        "url": f"{receiver.url}/hooks/broadcaster",
        "secret": SECRET,
        "allow_private": True,  # the receiver is on 127.0.0.1 (tests/test_ssrf.py: the guard)
    }
    values.update(overrides)
    return WebhookTarget(**values)


def make_post(**event_overrides: Any) -> PublicPost:
    event: dict[str, Any] = {
        "id": "ann_1",
        "incident_id": "inc_1",
        "title": "Gas leak <script>alert(1)</script> Zuid",
        "body": "Leave the building & call 112.",
        "severity": "critical",
        "status": "investigating",
        "audiences": ["consumers"],
        "reply": "We know about the gas leak in Zuid; updates at " + LINK,
    }
    event.update(event_overrides)
    return PublicPost(
        announcement_id="ann_1",
        incident_id="inc_1",
        text=f"Acme Energy: Gas leak in Zuid. Leave the building. {LINK}",
        link=LINK,
        locale="en",
        idempotency_key=KEY,
        event=event,
    )


def test_json_delivery_is_signed_and_carries_the_facts(receiver, channel):
    post = make_post()
    result = channel.deliver(make_target(receiver), post)
    assert result.provider_id == KEY and result.extra == {"status": 200}
    [request] = receiver.requests
    assert request["verified"], "the receiver's verify() accepts our signature"
    assert request["path"] == "/hooks/broadcaster"
    headers = request["headers"]
    assert headers["Content-Type"] == "application/json"
    assert re.fullmatch(r"crisis-broadcaster/\S+", headers["User-Agent"])
    assert headers["X-Broadcaster-Delivery"] == headers["Idempotency-Key"] == KEY
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", headers[SIGNATURE_HEADER])
    body = json.loads(request["raw"])
    assert body.keys() == {"type", "id", "announcement", "text", "link", "locale", "sent_at"}
    assert body["type"] == "announcement.published" and body["id"] == KEY
    assert body["announcement"] == post.event, "every fact, the agents' reply included"
    assert (body["text"], body["link"], body["locale"]) == (post.text, LINK, "en")
    sent_at = datetime.fromisoformat(body["sent_at"])
    assert sent_at.utcoffset() is not None and sent_at.utcoffset().total_seconds() == 0
    assert abs(sent_at.timestamp() - time.time()) < 60


def test_a_tampered_body_or_another_secret_fails_verify(receiver, channel):
    channel.deliver(make_target(receiver), make_post())
    [request] = receiver.requests
    raw, header = request["raw"], request["headers"][SIGNATURE_HEADER]
    assert verify(SECRET, header, raw)
    tampered = bytearray(raw)
    tampered[len(tampered) // 2] ^= 0x01
    assert not verify(SECRET, header, bytes(tampered))
    assert not verify("another-secret", header, raw)


def test_a_timestamp_outside_the_tolerance_fails_verify():
    body = b'{"id":"ann_1"}'
    now = time.time()
    assert verify(SECRET, sign(SECRET, body, int(now) - 100), body, tolerance=300)
    assert not verify(SECRET, sign(SECRET, body, int(now) - 600), body, tolerance=300)
    assert not verify(SECRET, sign(SECRET, body, int(now) + 600), body, tolerance=300)
    old = sign(SECRET, body, 1_000)
    assert verify(SECRET, old, body, now=1_200) and not verify(SECRET, old, body, now=1_400)


def test_any_of_several_v1_signatures_may_match():
    body = b'{"id":"ann_1"}'
    timestamp = int(time.time())
    current = sign(SECRET, body, timestamp).split("v1=")[1]
    previous = sign("the-previous-secret", body, timestamp).split("v1=")[1]
    assert verify(SECRET, f"t={timestamp},v1={previous},v1={current}", body)
    assert verify("the-previous-secret", f"t={timestamp},v1={previous},v1={current}", body)
    assert not verify("a-third-secret", f"t={timestamp},v1={previous},v1={current}", body)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        "t=notanumber,v1={sig}",
        "v1={sig}",
        "t={t}",
        "t={t},t={t},v1={sig}",
        "t=+{t},v1={sig}",
        "t={t},v1={sig},",
        "t={t};v1={sig}",
        "t={t},v1=é{sig}",
    ],
)
def test_a_malformed_header_fails_verify(header):
    body = b'{"id":"ann_1"}'
    timestamp = int(time.time())
    signature = sign(SECRET, body, timestamp).split("v1=")[1]
    assert not verify(SECRET, header.format(t=timestamp, sig=signature), body)


def test_slack_format_is_escaped_mrkdwn_text_only(receiver, channel):
    channel.deliver(make_target(receiver, format="slack"), make_post())
    [request] = receiver.requests
    assert request["verified"]
    body = json.loads(request["raw"])
    assert body == {
        "text": "[Critical] *Gas leak &lt;script&gt;alert(1)&lt;/script&gt; Zuid*\n"
        "Leave the building &amp; call 112.\n"
        f"{LINK}\n"
        f"Reply to customers: We know about the gas leak in Zuid; updates at {LINK}"
    }
    assert "<script>" not in body["text"]


def test_slack_format_without_a_reply_ends_with_the_link(receiver, channel):
    channel.deliver(make_target(receiver, format="slack"), make_post(reply=None, severity="info"))
    text = json.loads(receiver.requests[0]["raw"])["text"]
    assert text.startswith("[Info] *Gas leak") and text.endswith(f"\n{LINK}")
    assert "Reply to customers" not in text


def test_a_500_is_transient_and_the_retry_keeps_the_delivery_id(receiver, channel):
    target, post = make_target(receiver), make_post()
    receiver.answer_next(Answer(500, body=b"boom"))
    with pytest.raises(TransientDeliveryError, match="500") as caught:
        channel.deliver(target, post)
    assert caught.value.retry_after is None
    assert channel.deliver(target, post).provider_id == KEY
    first, second = receiver.requests
    assert first["verified"] and second["verified"]
    ids = {r["headers"]["X-Broadcaster-Delivery"] for r in receiver.requests}
    assert ids == {KEY}, "the receiver can drop the retry it has already seen"


def test_a_429_is_transient_with_retry_after(receiver, channel):
    receiver.answer_next(Answer(429, headers={"Retry-After": "7"}, body=b"slow down"))
    with pytest.raises(TransientDeliveryError) as caught:
        channel.deliver(make_target(receiver), make_post())
    assert caught.value.retry_after == 7


def test_a_503_passes_retry_after_on(receiver, channel):
    receiver.answer_next(Answer(503, headers={"Retry-After": "30"}))
    with pytest.raises(TransientDeliveryError) as caught:
        channel.deliver(make_target(receiver), make_post())
    assert caught.value.retry_after == 30


def test_a_408_is_transient(receiver, channel):
    receiver.answer_next(Answer(408))
    with pytest.raises(TransientDeliveryError, match="408"):
        channel.deliver(make_target(receiver), make_post())


def test_a_404_is_permanent_with_the_start_of_the_body(receiver, channel):
    receiver.answer_next(Answer(404, body=b"no_such_hook " + b"x" * 500))
    with pytest.raises(PermanentDeliveryError, match="404") as caught:
        channel.deliver(make_target(receiver), make_post())
    reason = caught.value.reason
    assert "no_such_hook " + "x" * 187 in reason and "x" * 188 not in reason
    assert receiver.url not in reason, "a target URL may hold a secret: kept out of reasons"


def test_a_slow_receiver_is_transient(receiver, channel):
    receiver.answer_next(Answer(200, stall=5))
    started = time.monotonic()
    with pytest.raises(TransientDeliveryError, match="unreachable"):
        channel.deliver(make_target(receiver), make_post())
    assert time.monotonic() - started < 3, "PROVIDER_TIMEOUT (0.5 s) cut it short"


def test_a_refused_connection_is_transient(channel):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    target = WebhookTarget("gone", f"http://127.0.0.1:{port}/hook", SECRET, allow_private=True)
    with pytest.raises(TransientDeliveryError, match="unreachable"):
        channel.deliver(target, make_post())


def test_a_redirect_is_permanent_and_not_followed(receiver, channel):
    elsewhere = f"{receiver.url}/elsewhere"
    receiver.answer_next(Answer(302, headers={"Location": elsewhere}))
    with pytest.raises(
        PermanentDeliveryError, match=f"target redirected to {re.escape(elsewhere)}"
    ):
        channel.deliver(make_target(receiver), make_post())
    assert [r["path"] for r in receiver.requests] == ["/hooks/broadcaster"]


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/hook", "file:///etc/passwd", "127.0.0.1:8000/hook", "http:///hook"]
)
def test_a_url_that_is_not_http_is_refused(receiver, channel, url):
    with pytest.raises(PermanentDeliveryError, match="http"):
        make_target(receiver, url=url)
    # And again at delivery, for a target built around its own check.
    target = make_target(receiver)
    object.__setattr__(target, "url", url)
    with pytest.raises(PermanentDeliveryError, match="http"):
        channel.deliver(target, make_post())
    assert receiver.requests == []


@pytest.mark.parametrize(
    ("overrides", "message"), [({"format": "xml"}, "format"), ({"secret": ""}, "secret")]
)
def test_a_bad_format_or_empty_secret_is_refused(receiver, overrides, message):
    with pytest.raises(PermanentDeliveryError, match=message):
        make_target(receiver, **overrides)


def test_audiences_choose_the_announcements_a_target_gets(receiver):
    assert make_target(receiver).wants(["consumers"])
    staff = make_target(receiver, audiences=["staff", "press"])
    assert staff.audiences == ("staff", "press") and hash(staff)
    assert staff.wants(["consumers", "press"]) and not staff.wants(["consumers"])


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body():
    expected = hmac.new(SECRET.encode(), b"1700000000." + b"{}", hashlib.sha256).hexdigest()
    assert sign(SECRET, b"{}", 1_700_000_000) == f"t=1700000000,v1={expected}"


def test_a_replay_with_a_fresh_timestamp_fails_verify():
    body = b'{"id":"ann_1"}'
    captured = sign(SECRET, body, 1_000).split("v1=")[1]
    now = int(time.time())
    assert not verify(SECRET, f"t={now},v1={captured}", body, now=now)


def test_the_channel_facts():
    channel = WebhookChannel({})
    assert (channel.name, channel.transport, channel.timeout) == ("webhook", "http", 15.0)
    assert channel.user_agent.startswith("crisis-broadcaster/")


def card_of(receiver) -> dict:
    [request] = receiver.requests
    assert request["verified"]
    body = json.loads(request["raw"])
    # The envelope Teams Workflows and incoming webhooks take.
    assert body["type"] == "message"
    [attachment] = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Status page", "url": LINK}]
    for block in card["body"]:
        assert block["type"] in ("TextBlock", "Container")
        for item in block.get("items", [block]):
            assert item["type"] == "TextBlock" and item["wrap"] is True
            assert isinstance(item["text"], str) and item["text"]
            assert None not in item.values()
    return card


def test_teams_format_is_an_adaptive_card(receiver, channel):
    channel.deliver(make_target(receiver, format="teams"), make_post())
    card = card_of(receiver)
    heading, body, reply = card["body"]
    assert heading["text"] == "[Critical] Gas leak <script>alert(1)</script> Zuid"
    assert heading["weight"] == "Bolder" and heading["color"] == "Attention"
    assert body["text"] == "Leave the building & call 112."
    assert [i["text"] for i in reply["items"]] == [
        "Reply to customers",
        f"We know about the gas leak in Zuid; updates at {LINK}",
    ]


def test_teams_brief_is_a_card_of_its_lines(receiver, channel):
    post = make_post()
    brief = PublicPost(
        announcement_id=post.announcement_id,
        incident_id=post.incident_id,
        text="Staff brief: Gas leak\n\nFacts: leave the building.\nReply (en): We know.",
        link=LINK,
        locale="en",
        idempotency_key=KEY,
        event=post.event,
        event_type="staff.brief",
    )
    channel.deliver(make_target(receiver, format="teams"), brief)
    card = card_of(receiver)
    assert [b["text"] for b in card["body"]] == [
        "Staff brief: Gas leak",
        "Facts: leave the building.",
        "Reply (en): We know.",
    ]


def test_teams_without_facts_shows_the_text(receiver, channel):
    channel.deliver(make_target(receiver, format="teams"), make_post(title="", severity="info"))
    card = card_of(receiver)
    assert [b["text"] for b in card["body"]] == [make_post().text]
