"""Bodies never cause a 500: too deep, malformed, wrong type, too large → 400/415/413, one line.

An attacker sent JSON nested 1,000 deep, without a token, to every JSON route: each
answered 500 and logged a 2.7 KB traceback. These tests send that and its cousins to the
real app (real Redis) and check the one error shape, that nothing was stored, and that the
log holds one line per refusal and no traceback.
"""

from __future__ import annotations

import io
import json
import logging
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broadcaster.web import limits
from tests.conftest import PASSWORD, csrf_token
from tests.test_hostile import FIXTURES

# (path, the role that may post there).
ROUTES = [
    ("/api/v1/announcements", "helpdesk"),
    ("/api/v1/preview", "helpdesk"),
    ("/api/v1/subscribers", "admin"),
    ("/api/v1/announcements/{pending}/reject", "approver2"),
    ("/hooks/alertmanager", "monitor"),
    ("/hooks/grafana", "monitor"),
    ("/hooks/generic", "monitor"),
]
DEEP = "[" * 1000 + "]" * 1000
JSON = "application/json"


@pytest.fixture
def pending(client, tokens) -> str:
    """A major announcement waiting for approval: what the reject route is pointed at."""
    body = {
        "title": "Payments down",
        "body": "Card payments fail.",
        "severity": "major",
        "audiences": ["consumers"],
    }
    answer = client.post("/api/v1/announcements", json=body, headers=tokens["approver"])
    assert answer.get_json()["state"] == "pending_approval"
    return answer.get_json()["id"]


@pytest.fixture
def logged(caplog):
    caplog.set_level(logging.INFO)
    return caplog


def post(client, path, body, content_type=JSON, headers=None):
    data = body.encode() if isinstance(body, str) else body
    extra = {"Content-Type": content_type} if content_type else {}
    return client.post(path, data=data, headers={**(headers or {}), **extra})


def error(response, *codes):
    """The one error shape, with one of ``codes``."""
    assert response.status_code in codes, (response.status_code, response.get_data()[:300])
    body = response.get_json()
    assert body["code"] == response.status_code
    assert isinstance(body["status"], str) and body["status"]
    assert isinstance(body["message"], str) and body["message"]
    assert set(body) <= {"code", "status", "message", "errors"}
    return body


def assert_nothing_stored(client, tokens, r, pending):
    """No incident but the pending announcement's, no subscriber, still pending."""
    incidents = client.get("/api/v1/incidents", headers=tokens["admin"]).get_json()
    assert [i["id"] for i in incidents["items"]] == [
        client.get(f"/api/v1/announcements/{pending}", headers=tokens["admin"]).get_json()[
            "incident_id"
        ]
    ]
    assert client.get("/api/v1/subscribers", headers=tokens["admin"]).get_json()["total"] == 0
    state = client.get(f"/api/v1/announcements/{pending}", headers=tokens["admin"]).get_json()
    assert state["state"] == "pending_approval"


def assert_one_line_each(logged):
    assert "Traceback" not in logged.text
    assert not [rec for rec in logged.records if rec.levelno >= logging.ERROR]
    refusals = [rec.getMessage() for rec in logged.records if rec.name == "broadcaster.web.errors"]
    assert refusals and all("\n" not in line for line in refusals)


@pytest.mark.parametrize(("template", "role"), ROUTES)
def test_deep_json_is_400_with_or_without_a_token(
    client, tokens, r, pending, logged, template, role
):
    path = template.format(pending=pending)
    without = error(post(client, path, DEEP), 400, 401)
    if without["code"] == 400:
        assert "deeper than 32" in without["message"]
    with_token = error(post(client, path, DEEP, headers=tokens[role]), 400)
    assert "deeper than 32" in with_token["message"]
    # Just inside the limit parses (and is then refused for its shape, not its depth).
    inside = "[" * limits.MAX_JSON_DEPTH + "]" * limits.MAX_JSON_DEPTH
    shallow = post(client, path, inside, headers=tokens[role])
    assert shallow.status_code < 500
    assert "deeper" not in json.dumps(shallow.get_json())
    assert_nothing_stored(client, tokens, r, pending)
    assert_one_line_each(logged)


@pytest.mark.parametrize(("template", "role"), ROUTES)
@pytest.mark.parametrize(
    "body",
    [
        '{"title": "x",',
        "{bad",
        "[}",
        '{"a": NaN}',
        "1" * 5000,  # a ValueError from int(), not a JSONDecodeError
        b"\xff\xfe{}",
        "[" * 40 + "}" * 40,
    ],
)
def test_malformed_json_is_400(client, tokens, r, pending, logged, template, role, body):
    path = template.format(pending=pending)
    error(post(client, path, body, headers=tokens[role]), 400)
    error(post(client, path, body), 400, 401)
    assert_nothing_stored(client, tokens, r, pending)
    assert_one_line_each(logged)


@pytest.mark.parametrize(("template", "role"), ROUTES)
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type_is_415(
    client, tokens, r, pending, logged, template, role, content_type
):
    path = template.format(pending=pending)
    body = json.dumps({"title": "Outage", "reason": "no"})
    answer = error(post(client, path, body, content_type, tokens[role]), 415)
    assert "application/json" in answer["message"]
    error(post(client, path, body, content_type), 415, 401)
    assert_nothing_stored(client, tokens, r, pending)
    assert_one_line_each(logged)


@pytest.mark.parametrize(("template", "role"), ROUTES)
def test_oversized_is_413(make_app, tokens, r, logged, template, role):
    client = make_app(MAX_CONTENT_LENGTH=4096).test_client()
    path = template.format(pending="ann_nope")
    big = "[" + " " * 5000 + "]"
    # Authenticate first: a stranger gets 401 whatever the body, its size included.
    error(post(client, path, big), 401)
    answer = error(post(client, path, big, headers=tokens[role]), 413)
    assert "at most 4096" in answer["message"]
    # Without a declared length (chunked), Werkzeug cuts the body off while reading it.
    chunked = client.post(
        path,
        input_stream=io.BytesIO(big.encode()),
        headers={**tokens[role], "Content-Type": JSON, "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},  # as gunicorn says for chunked
    )
    error(chunked, 413)
    incidents = client.get("/api/v1/incidents", headers=tokens["admin"]).get_json()
    assert incidents["items"] == []
    assert_one_line_each(logged)


def test_a_monitors_refused_payload_is_kept(client, tokens):
    answer = post(client, "/hooks/alertmanager", DEEP, headers=tokens["monitor"])
    event_id = error(answer, 400)["errors"]["event_id"][0]
    [event] = client.get("/api/v1/hooks/events", headers=tokens["admin"]).get_json()["items"]
    assert event["id"] == event_id and "deeper than 32" in event["outcome"]


def test_depth_check():
    for depth in (0, 1, 5, limits.MAX_JSON_DEPTH):
        text = '{"a": ' * depth + '"[[[{{{\\"]]]"' + "}" * depth  # brackets in strings: none
        assert limits.parse_json(text) is not None
    mixed = '[{"a": ' * 16 + "1" + "}]" * 16  # 32 deep
    assert limits.parse_json(mixed)
    with pytest.raises(limits.MalformedJSON, match="deeper than 32"):
        limits.parse_json("[" + mixed + "]")
    with pytest.raises(limits.MalformedJSON, match="deeper than 32"):
        limits.parse_json("[" * 100_000 + "]" * 100_000)
    with pytest.raises(limits.MalformedJSON, match="deeper than 32"):
        limits.parse_json("[" * 100_000)
    with pytest.raises(limits.MalformedJSON, match="Expecting"):
        limits.parse_json("[" * 32 + "}" * 100_000)  # the wrong kind: json.loads stops there
    # Unterminated strings stay linear: each quote once restarted a scan to the end.
    for text in ('"' + "\\" * 100_001, '"' + '\\"' * 200_000, '"' * 400_001):
        started = time.perf_counter()
        with pytest.raises(limits.MalformedJSON):
            limits.parse_json(text)
        assert time.perf_counter() - started < 2


# --- anything at all, at every JSON route: never a 5xx --------------------------------------

jsonish = st.text(alphabet=st.sampled_from('[]{}",:\\ 0123456789.eE-+truefalsnNaIiy\n\x00é'))
json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=30,
).map(json.dumps)
nested = st.builds(
    lambda depth, opener, tail: opener * depth + tail + {"[": "]", '{"a":': "}"}[opener] * depth,
    st.integers(0, 3000),
    st.sampled_from(["[", '{"a":']),
    st.sampled_from(["1", "", '"x"', "[", "}"]),
)
bodies = st.one_of(st.binary(max_size=300), jsonish, json_values, nested)


@given(
    route=st.sampled_from(ROUTES),
    body=bodies,
    content_type=st.sampled_from([JSON, "application/problem+json", "text/plain", None]),
    authenticated=st.booleans(),
)
@settings(FIXTURES, max_examples=300)
def test_no_body_is_a_500(client, tokens, route, body, content_type, authenticated):
    template, role = route
    path = template.format(pending="ann_nope")
    answer = post(client, path, body, content_type, tokens[role] if authenticated else None)
    assert answer.status_code < 500, (path, body, answer.get_data()[:300])
    if answer.status_code >= 400:
        assert answer.get_json()["code"] == answer.status_code


# --- forms: admin pages and Twilio callbacks ------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", b"--x\r\nnot a part"),  # no boundary parameter
        ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data\r\n\r\n"),
        ("multipart/form-data; boundary=x", b"\xff" * 100),
        ("application/x-www-form-urlencoded", b"%%%=%zz&\xff\xfe=\x00&a" + b"&b" * 2000),
    ],
)
@pytest.mark.parametrize("path", ["/admin/signin", "/hooks/twilio/status", "/hooks/twilio/inbound"])
def test_malformed_forms_are_refused_not_500(client, logged, content_type, body, path):
    answer = client.post(path, data=body, headers={"Content-Type": content_type})
    # Twilio's hooks refuse an unsigned request (401) before they look at the form.
    assert answer.status_code in (400, 401), (answer.status_code, answer.get_data()[:300])
    assert "Traceback" not in logged.text


@pytest.mark.parametrize("path", ["/admin/signin", "/hooks/twilio/status", "/hooks/twilio/inbound"])
def test_oversized_forms_are_413(make_app, logged, path):
    client = make_app(MAX_CONTENT_LENGTH=4096).test_client()
    # A signature header makes Twilio's hooks read the form (to verify it): within the limit.
    signed = {"X-Twilio-Signature": "c2lnbmF0dXJl"}
    assert client.post(path, data={"Body": "x" * 5000}, headers=signed).status_code == 413
    parts = "".join(
        f"--x\r\nContent-Disposition: form-data; name=f{i}\r\n\r\n1\r\n" for i in range(1200)
    )
    many = (
        make_app()
        .test_client()
        .post(
            path,
            data=parts + "--x--\r\n",
            headers={"Content-Type": "multipart/form-data; boundary=x"},
        )
    )
    assert many.status_code in (401, 413)  # unsigned: Twilio's hooks never read the form
    assert "Traceback" not in logged.text


# --- signing in with a hostile next= --------------------------------------------------------


def form(client, email):
    return {"email": email, "password": PASSWORD, "csrf_token": csrf_token(client)}


@pytest.mark.parametrize(
    "target",
    [
        "/admin/%0d%0aX-Injected:%201",
        "/admin/%0aSet-Cookie:%20x=1",
        "https://evil.example/",
        "//evil.example/",
        "/%09/evil.example",
        "/\\evil.example",
        "javascript:alert(1)",
    ],
)
def test_sign_in_with_a_hostile_next_lands_on_admin(client, people, logged, target):
    answer = client.post(
        f"/admin/signin?next={target}",
        data={
            "email": people["admin"].email,
            "password": PASSWORD,
            "csrf_token": csrf_token(client),
        },
    )
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/admin/"
    assert "X-Injected" not in answer.headers and "Set-Cookie: x" not in str(answer.headers)
    assert client.get("/admin/").status_code == 200  # signed in all the same
    assert "Traceback" not in logged.text


def test_sign_in_keeps_a_plain_local_next(client, people):
    answer = client.post(
        "/admin/signin?next=/admin/approvals?page=2",
        data={
            "email": people["admin"].email,
            "password": PASSWORD,
            "csrf_token": csrf_token(client),
        },
    )
    assert answer.headers["Location"] == "/admin/approvals?page=2"
