"""Authenticate first (issue 15, point 3): no body is parsed or validated for a stranger.

Every ``/api/v1`` and ``/hooks`` route declares how it authenticates (``web/gate.py``);
without credentials, or with unknown ones, the answer is 401 whatever the body, and it
never echoes what a validator would have said about that body (the plan's audiences).
"""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from flask.testing import FlaskClient
from flask.views import MethodView

from broadcaster.web.auth import requires
from broadcaster.web.gate import GUARDED_PREFIXES, declaration, public
from tests.conftest import sign_in

# A body every validator refuses: unknown audience, wrong types, unknown fields.
INVALID = {
    "title": 7,
    "body": ["x"],
    "severity": "apocalyptic",
    "audiences": ["no-such-audience"],
    "channels": "sms",
    "reason": {"x": 1},
    "limit": "many",
}
NESTED = "[" * 5000 + "]" * 5000  # limits.py would answer 400 for this, after auth
UNKNOWN = {"Authorization": "Bearer bct_not-a-token-anyone-has"}
AUDIENCES = ("consumers", "business")  # the bundled plan's: a 401 must not name them


def assert_401(response, *, leaks: tuple[str, ...] = AUDIENCES) -> None:
    assert response.status_code == 401, (response.status_code, response.get_data(as_text=True))
    body = response.get_json()
    assert body["code"] == 401
    assert "errors" not in body  # nothing about the body was looked at
    text = response.get_data(as_text=True)
    for word in leaks:
        assert word not in text


def guarded_routes(app: Flask) -> list[tuple[str, str, str]]:
    """(path with dummy ids, method, endpoint) of every /api/v1 and /hooks route."""
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(GUARDED_PREFIXES):
            continue
        path = rule.rule
        for argument in rule.arguments:
            path = path.replace(f"<{argument}>", "x1")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            routes.append((path, method, rule.endpoint))
    return sorted(routes)


@pytest.fixture
def signed_app(make_app) -> Flask:
    """The app with every hook configured (SendGrid key, HMAC secret), so each one
    authenticates instead of answering 503."""
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return make_app(
        SENDGRID_WEBHOOK_PUBLIC_KEY=base64.b64encode(der).decode(),
        HOOKS_SECRET="generic-hook-secret-123",
        INBOUND_EMAIL_SECRET="inbound-email-secret-123",
    )


def test_every_api_and_hook_route_declares_how_it_authenticates(app):
    undeclared = [
        (method, path)
        for path, method, endpoint in guarded_routes(app)
        if declaration(app.view_functions[endpoint], method) is None
    ]
    assert undeclared == []
    assert len(guarded_routes(app)) >= 25  # the walk really saw the routes


def test_a_route_that_declares_nothing_is_refused(make_app):
    app = make_app()
    app.add_url_rule("/api/v1/forgotten", "forgotten", lambda: "secret", methods=["GET"])
    app.add_url_rule("/hooks/forgotten", "forgotten_hook", lambda: "secret", methods=["POST"])
    client = app.test_client()
    assert_401(client.get("/api/v1/forgotten"))
    assert_401(client.post("/hooks/forgotten", json={}))


def test_declarations_on_functions_classes_and_methods(make_app, tokens):
    """``public`` opens a route on purpose; a method's declaration wins over its class's."""

    @public("a test: anyone may read this")
    class Mixed(MethodView):
        def get(self) -> str:
            return "open"

        @requires("draft")
        def post(self) -> str:
            return "drafted"

    app = make_app()
    app.add_url_rule("/api/v1/mixed", view_func=Mixed.as_view("mixed"))
    app.add_url_rule("/hooks/open", "open_hook", public("a test")(lambda: "ok"), methods=["POST"])
    client = app.test_client()
    assert client.get("/api/v1/mixed").get_data(as_text=True) == "open"
    assert_401(client.post("/api/v1/mixed", json=INVALID))
    assert client.post("/api/v1/mixed", headers=tokens["monitor"]).status_code == 403
    assert client.post("/api/v1/mixed", headers=tokens["helpdesk"]).get_data() == b"drafted"
    assert client.post("/hooks/open", data=NESTED).get_data() == b"ok"


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("POST", "/api/v1/announcements", {"json": INVALID}),
        ("POST", "/api/v1/preview", {"json": INVALID}),
        ("POST", "/api/v1/announcements/ann_x/reject", {"json": INVALID}),
        ("POST", "/api/v1/announcements/ann_x/approve", {"json": INVALID}),
        ("POST", "/api/v1/subscribers/x1/opt-out", {"json": INVALID}),
        ("POST", "/api/v1/subscribers/x1/opt-in", {"json": INVALID}),
        ("POST", "/api/v1/subscribers", {"json": INVALID}),
        ("POST", "/api/v1/subscribers/import", {"data": "a,b\n1", "content_type": "text/csv"}),
        ("GET", "/api/v1/subscribers?audience=no-such-audience&per_page=-1", {}),
        ("GET", "/api/v1/audit?limit=many&before=x", {}),
        ("GET", "/api/v1/hooks/events?page=zero&per_page=1000000", {}),
        ("GET", "/api/v1/incidents?page=-3", {}),
        ("GET", "/api/v1/announcements/ann_x/deliveries?page=x", {}),
    ],
)
def test_no_token_and_an_invalid_body_is_401_not_422(client, method, path, kwargs):
    assert_401(client.open(path, method=method, **kwargs))


# The /api/v1 routes open to anyone on purpose (``@public``): self-subscription.
PUBLIC_API = {("/api/v1/subscriptions", "POST"), ("/api/v1/subscriptions/confirm", "POST")}


def public_routes(app: Flask) -> set[tuple[str, str]]:
    """(path, method) of the /api/v1 routes that declare ``@public``."""
    found = set()
    for path, method, endpoint in guarded_routes(app):
        authentication = declaration(app.view_functions[endpoint], method)
        if path.startswith("/api/v1/") and authentication and authentication.check is None:
            found.add((path, method))
    return found


def test_only_the_self_subscription_api_is_public(app):
    assert public_routes(app) == PUBLIC_API


@pytest.mark.parametrize("headers", [{}, UNKNOWN, {"Authorization": "Basic eDp5"}])
def test_every_api_route_answers_401_before_parsing(app, client, headers):
    for path, method, _ in guarded_routes(app):
        if not path.startswith("/api/v1/") or (path, method) in PUBLIC_API:
            continue
        for body in (json.dumps(INVALID), NESTED, "{not json"):
            response = client.open(
                path, method=method, data=body, content_type="application/json", headers=headers
            )
            assert_401(response)


def test_a_huge_body_without_credentials_is_401(signed_app):
    """Nothing is read: not even the size of what a stranger sends decides the answer."""
    client = signed_app.test_client()
    huge = b"x" * (3 * 1024 * 1024)
    for path in (
        "/api/v1/announcements",
        "/api/v1/subscribers/import",
        "/hooks/alertmanager",
        "/hooks/generic",
        "/hooks/twilio/status",
        "/hooks/twilio/inbound",
        "/hooks/twilio/whatsapp/status",
        "/hooks/twilio/whatsapp/inbound",
        "/hooks/sendgrid/events",
    ):
        assert_401(client.post(path, data=huge, content_type="application/json"))


def test_once_signed_the_body_limits_apply(make_app):
    """A caller that sends a signature gets its body read, within the size limit: 413."""
    client = make_app(MAX_CONTENT_LENGTH=4096).test_client()
    response = client.post(
        "/hooks/twilio/status",
        data=b"MessageStatus=" + b"x" * 10_000,
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": "c2lnbmF0dXJl"},
    )
    assert response.status_code == 413


def test_options_needs_credentials_too(client, caplog):
    """Flask answers OPTIONS itself; under /api/v1 it is refused like the rest, quietly."""
    assert_401(client.options("/api/v1/announcements"))
    assert not [r for r in caplog.records if "declares no authentication" in r.getMessage()]


@pytest.mark.parametrize("headers", [{}, UNKNOWN])
def test_every_hook_answers_401_without_credentials(signed_app, headers):
    client = signed_app.test_client()
    hooks = [(p, m) for p, m, _ in guarded_routes(signed_app) if p.startswith("/hooks/")]
    assert {p for p, _ in hooks} >= {
        "/hooks/alertmanager",
        "/hooks/grafana",
        "/hooks/generic",
        "/hooks/twilio/status",
        "/hooks/twilio/inbound",
        "/hooks/sendgrid/events",
        "/hooks/sendgrid/inbound",
    }
    for path, method in hooks:
        for body, kind in (
            (json.dumps(INVALID), "application/json"),
            (NESTED, "application/json"),
            ("MessageStatus=delivered&Body=STOP", "application/x-www-form-urlencoded"),
        ):
            response = client.open(
                path, method=method, data=body, content_type=kind, headers=headers
            )
            assert_401(response)


def test_a_wrong_hmac_or_a_foreign_signature_is_401(signed_app):
    client = signed_app.test_client()
    forged = {"X-Broadcaster-Signature": "sha256=" + "0" * 64}
    assert_401(client.post("/hooks/generic", data=NESTED, headers=forged))
    assert_401(
        client.post(
            "/hooks/twilio/inbound", data={"Body": "STOP"}, headers={"X-Twilio-Signature": "AAAA"}
        )
    )
    assert_401(
        client.post(
            "/hooks/sendgrid/events",
            data=NESTED,
            headers={
                "X-Twilio-Email-Event-Webhook-Signature": "MEUCIQ==",
                "X-Twilio-Email-Event-Webhook-Timestamp": "1",
            },
        )
    )


def test_an_unauthenticated_hook_call_is_not_recorded(client, tokens):
    """The monitoring hooks keep every payload they are sent, but only once authenticated."""
    assert_401(client.post("/hooks/alertmanager", data=NESTED, content_type="application/json"))
    events = client.get("/api/v1/hooks/events", headers=tokens["admin"]).get_json()
    assert events["total"] == 0


def test_permission_comes_before_the_body_too(client, tokens):
    """A known caller without the permission gets 403, and nothing about the body."""
    for role in ("monitor", "helpdesk"):
        response = client.post(
            "/api/v1/announcements/ann_x/reject", json=INVALID, headers=tokens[role]
        )
        assert response.status_code == 403
        assert "errors" not in response.get_json()
    response = client.post("/api/v1/announcements", json=INVALID, headers=tokens["monitor"])
    assert response.status_code == 403
    assert not any(word in response.get_data(as_text=True) for word in AUDIENCES)
    nested = client.post(
        "/api/v1/announcements",
        data=NESTED,
        content_type="application/json",
        headers=tokens["monitor"],
    )
    assert nested.status_code == 403


def test_with_credentials_the_body_is_checked_as_before(client, tokens):
    """401 first, then 403, then the body: a valid token still gets 422 with the reasons."""
    response = client.post("/api/v1/announcements", json=INVALID, headers=tokens["helpdesk"])
    assert response.status_code == 422
    assert "errors" in response.get_json()
    deep = client.post(
        "/api/v1/announcements",
        data=NESTED,
        content_type="application/json",
        headers=tokens["helpdesk"],
    )
    assert deep.status_code == 400
    listing = client.get("/api/v1/subscribers?audience=nope", headers=tokens["helpdesk"])
    assert listing.status_code == 422


def test_a_session_without_csrf_is_refused_before_the_body(client: FlaskClient, people):
    """A signed-in browser posting without the page's CSRF token: 403 before validation;
    with it, the session authenticates like a token."""
    token = sign_in(client, people["helpdesk"].email)
    response = client.post("/api/v1/announcements", json=INVALID)
    assert response.status_code == 403
    assert "CSRF" in response.get_json()["message"]
    assert not any(word in response.get_data(as_text=True) for word in AUDIENCES)
    checked = client.post("/api/v1/announcements", json=INVALID, headers={"X-CSRFToken": token})
    assert checked.status_code == 422
