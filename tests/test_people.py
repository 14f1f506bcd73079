"""People: `broadcaster user create`, argon2 hashes, sessions and CSRF.

Sign-in throttling has its own module, test_signin_throttle.py.
"""

from __future__ import annotations

import subprocess

import pytest

from broadcaster.domain import audit
from broadcaster.domain.users import authenticate, create_user
from tests.conftest import PASSWORD
from tests.conftest import csrf_token as csrf
from tests.processes import broadcaster_command, clean_env


def sign_in(client, email, password=PASSWORD, **kwargs):
    """Post the sign-in form and return the answer, whatever it is (failures are tested)."""
    token = csrf(client)
    return client.post(
        "/admin/signin",
        data={"email": email, "password": password, "csrf_token": token},
        **kwargs,
    )


@pytest.fixture
def ann(r):
    return create_user(r, "ann@acme.example", "Ann", "admin", PASSWORD)


def run_cli(args, redis_server, tmp_path, stdin):
    return subprocess.run(
        [*broadcaster_command(), *args],
        env=clean_env(BROADCASTER_REDIS_URL=redis_server.url, BROADCASTER_DATA_DIR=str(tmp_path)),
        cwd=tmp_path,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_user_create_reads_the_password_from_stdin_and_stores_only_a_hash(
    r, redis_server, tmp_path
):
    args = ["user", "create", "--email", "Lead@Acme.example", "--role", "admin", "--name", "Lea"]
    result = run_cli(args, redis_server, tmp_path, PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    assert "Created admin lead@acme.example" in result.stdout
    user = authenticate(r, "lead@acme.example", PASSWORD)
    assert user is not None and (user.name, user.role) == ("Lea", "admin")
    stored = r.hgetall("bc:user:lead@acme.example")
    assert stored[b"hash"].startswith(b"$argon2id$")
    assert PASSWORD.encode() not in b"".join(stored.values())
    made = audit.entries(r, action="user.created")[0]
    assert made["actor"].startswith("cli:") and made["details"]["role"] == "admin"


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--email", "x@acme.example", "--role", "admin"], "short\n", "at least 12 characters"),
        (["--email", "not an email", "--role", "admin"], PASSWORD + "\n", "email:"),
        (["--email", "x@acme.example", "--role", "root"], PASSWORD + "\n", "'root' is not one of"),
        (["--email", "ann@acme.example", "--role", "helpdesk"], PASSWORD + "\n", "already exists"),
    ],
)
def test_user_create_says_what_is_wrong(r, redis_server, tmp_path, ann, args, stdin, message):
    result = run_cli(["user", "create", *args], redis_server, tmp_path, stdin)
    assert result.returncode != 0
    assert message in result.stderr
    assert authenticate(r, "ann@acme.example", PASSWORD).role == "admin", "first user untouched"


def test_sign_in_and_out_with_a_server_side_session(client, r, ann):
    assert client.get("/admin/").status_code == 302
    answer = sign_in(client, "ANN@acme.example")
    assert answer.status_code == 302 and answer.headers["Location"] == "/admin/"
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    assert client.get("/admin/").status_code == 200
    stolen = client.get_cookie("broadcaster_session").value

    client.post("/admin/signout", data={"csrf_token": csrf(client, "/admin/")})
    assert client.get("/admin/").status_code == 302
    # The old cookie is worthless once signed out: the session is gone from Redis too.
    client.set_cookie("broadcaster_session", stolen)
    assert client.get("/admin/").status_code == 302
    assert [e["action"] for e in reversed(audit.entries(r, actor="ann@acme.example"))] == [
        "signin.succeeded",
        "signout",
    ]


def test_session_cookie_is_secure_when_the_public_url_is_https(make_app, r, ann):
    client = make_app(PUBLIC_URL="https://status.acme.example").test_client()
    answer = sign_in(client, "ann@acme.example")
    assert "Secure" in answer.headers["Set-Cookie"]


def test_sign_in_form_without_csrf_token_is_refused(client, r, ann):
    client.get("/admin/signin")
    answer = client.post("/admin/signin", data={"email": ann.email, "password": PASSWORD})
    assert answer.status_code == 400
    assert "CSRF token is missing" in answer.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302, "not signed in"


def test_wrong_password_is_refused_and_audited(client, r, ann):
    answer = sign_in(client, ann.email, "wrong password!")
    assert answer.status_code == 401
    assert "Wrong email or password" in answer.get_data(as_text=True)
    failed = audit.entries(r, action="signin.failed")
    assert [(e["actor"], e["ip"]) for e in failed] == [("ann@acme.example", "127.0.0.1")]


def test_after_sign_in_only_local_redirects(client, r, ann):
    token = csrf(client)
    answer = client.post(
        "/admin/signin?next=https://evil.example/phish",
        data={"email": ann.email, "password": PASSWORD, "csrf_token": token},
    )
    assert answer.headers["Location"] == "/admin/"


def test_the_api_takes_the_session_but_wants_the_csrf_header_to_write(client, r, ann):
    sign_in(client, ann.email)
    body = {"title": "Slow logins", "body": "We are looking into it.", "severity": "minor"}
    body["audiences"] = ["consumers"]
    assert client.get("/api/v1/incidents").status_code == 200
    refused = client.post("/api/v1/announcements", json=body)
    assert refused.status_code == 403 and "CSRF" in refused.get_json()["message"]
    assert r.zcard("bc:anns") == 0
    token = csrf(client, "/admin/")
    accepted = client.post("/api/v1/announcements", json=body, headers={"X-CSRFToken": token})
    assert accepted.status_code == 202
    created = audit.entries(r, action="announcement.created")[0]
    assert created["actor"] == "ann@acme.example"


def test_a_person_cannot_approve_their_own_announcement_through_the_api(client, r, ann, tokens):
    sign_in(client, ann.email)
    token = csrf(client, "/admin/")
    body = {"title": "Gas leak", "body": "Stay away from Main St.", "severity": "critical"}
    body["audiences"] = ["consumers"]
    ann_id = client.post(
        "/api/v1/announcements", json=body, headers={"X-CSRFToken": token}
    ).get_json()["id"]
    own = client.post(f"/api/v1/announcements/{ann_id}/approve", headers={"X-CSRFToken": token})
    assert own.status_code == 403 and "author" in own.get_json()["message"]
    other = client.application.test_client().post(
        f"/api/v1/announcements/{ann_id}/approve", headers=tokens["approver"]
    )
    assert other.status_code == 200 and other.get_json()["approved_by"] == "arne"
