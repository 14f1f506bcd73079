"""Security headers (issue 15, point 7): CSP without 'unsafe-inline', nosniff, a
Referrer-Policy, no framing of admin pages, no-store on personal data, HSTS on https."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from broadcaster.rendering.messages import SEVERITY_COLOURS
from tests.conftest import sign_in
from tests.helpers import publish

STATIC = Path(__file__).resolve().parent.parent / "broadcaster" / "static"
ANNOUNCEMENT = {
    "title": "Card payments fail",
    "body": "Card payments in shops fail since 09:10.\n\nCash still works.",
    "severity": "critical",
    "status": "investigating",
    "audiences": ["consumers"],
    "channels": ["banner"],
}
ADMIN_PAGES = (
    "/admin/",
    "/admin/compose",
    "/admin/incidents",
    "/admin/approvals",
    "/admin/subscribers",
    "/admin/monitoring",
    "/admin/audit",
    "/admin/users",
)
# Inline code a strict CSP would block: <style>, style="", <script> without src, on*="".
INLINE = re.compile(r"<style|\sstyle=|<script(?![^>]*\ssrc=)|\son[a-z]+=", re.IGNORECASE)


def csp(response) -> dict[str, str]:
    """The Content-Security-Policy as {directive: sources}."""
    header = response.headers.get("Content-Security-Policy", "")
    assert header, f"no CSP on {response.request.path}"
    assert "unsafe-inline" not in header and "unsafe-eval" not in header
    parts = (part.strip().split(" ", 1) for part in header.split(";") if part.strip())
    return {name: rest[0] if rest else "" for name, *rest in parts}


def assert_basics(response) -> None:
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] in ("same-origin", "strict-origin-when-cross-origin")


def assert_private(response) -> None:
    assert_basics(response)
    assert response.headers["Cache-Control"] == "no-store"


@pytest.fixture
def published(client: FlaskClient, tokens) -> dict:
    return publish(client, tokens, ANNOUNCEMENT)


def test_admin_pages_have_a_strict_csp_no_framing_and_no_caching(client, people, published):
    assert_private(client.get("/admin/signin"))
    assert csp(client.get("/admin/signin"))["frame-ancestors"] == "'none'"
    sign_in(client, people["admin"].email)
    pages = [*ADMIN_PAGES, f"/admin/incidents/{published['incident_id']}"]
    for path in pages:
        response = client.get(path)
        assert response.status_code == 200, path
        assert_private(response)
        policy = csp(response)
        assert policy["frame-ancestors"] == "'none'"
        assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'"
        assert response.headers["X-Frame-Options"] == "DENY"
        html = response.get_data(as_text=True)
        assert not INLINE.search(html), (path, INLINE.search(html).group(0))


def test_admin_error_pages_are_private_too(client, people):
    sign_in(client, people["helpdesk"].email)
    refused = client.get("/admin/users")
    assert refused.status_code == 403
    assert_private(refused)
    assert csp(refused)["frame-ancestors"] == "'none'"


def test_the_status_page_has_a_strict_csp_and_stays_cacheable(client, published):
    response = client.get("/status?lang=en")
    assert response.status_code == 200
    assert_basics(response)
    policy = csp(response)
    assert policy["default-src"] == "'none'" and policy["style-src"] == "'self'"
    assert "script-src" not in policy  # no scripts at all
    assert response.headers["Cache-Control"].startswith("public, max-age=")
    html = response.get_data(as_text=True)
    assert "Card payments fail" in html
    assert 'class="incident severity-critical"' in html
    assert not INLINE.search(html), INLINE.search(html).group(0)
    stylesheet = re.search(r'<link rel="stylesheet" href="([^"]+)"', html).group(1)
    css = client.get(stylesheet)
    assert css.status_code == 200 and css.mimetype == "text/css"
    assert css.headers.get("Cache-Control") != "no-store"


def test_status_css_has_the_severity_colours_of_the_messages():
    """The colours moved from a style attribute to status.css: they must not drift apart."""
    css = (STATIC / "public" / "status.css").read_text()
    for severity, colour in SEVERITY_COLOURS.items():
        assert f".severity-{severity} {{ --colour: {colour} }}" in css


def test_the_unsubscribe_page_is_private_and_cannot_be_framed(client):
    response = client.get("/unsubscribe/not-a-token")
    assert response.status_code == 400
    assert_private(response)
    policy = csp(response)
    assert policy["frame-ancestors"] == "'none'" and policy["form-action"] == "'self'"
    assert not INLINE.search(response.get_data(as_text=True))


def test_api_answers_with_personal_data_are_not_stored(client, tokens, published):
    client.post(
        "/api/v1/subscribers",
        json=[{"email": "ann@example.com", "audiences": ["consumers"]}],
        headers=tokens["admin"],
    )
    for path in (
        "/api/v1/subscribers",
        "/api/v1/audit",
        f"/api/v1/announcements/{published['id']}",
        f"/api/v1/announcements/{published['id']}/deliveries",
        f"/api/v1/incidents/{published['incident_id']}",
        "/api/v1/hooks/events",
    ):
        response = client.get(path, headers=tokens["admin"])
        assert response.status_code == 200, path
        assert_private(response)
        assert csp(response) == {"default-src": "'none'", "frame-ancestors": "'none'"}
    refused = client.get("/api/v1/subscribers")
    assert refused.status_code == 401
    assert_private(refused)


def test_hook_answers_are_not_stored(client, tokens):
    response = client.post("/hooks/alertmanager", json={}, headers=tokens["monitor"])
    assert response.status_code == 400
    assert_private(response)


def test_public_answers_stay_cacheable_and_embeddable(client, published):
    for path in ("/banner.json?audience=consumers", "/banner.js", "/status.json", "/status.atom"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert_basics(response)
        assert response.headers["Cache-Control"].startswith("public, max-age="), path
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert "X-Frame-Options" not in response.headers


def test_the_microcache_replays_the_headers(make_app):
    client = make_app(BANNER_PROCESS_CACHE=30).test_client()
    first, again = client.get("/status"), client.get("/status")
    for response in (first, again):
        assert csp(response)["default-src"] == "'none'"
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_hsts_only_when_the_public_url_is_https(make_app):
    plain = make_app().test_client()
    for path in ("/status", "/admin/signin", "/api/v1/audiences", "/healthz"):
        assert "Strict-Transport-Security" not in plain.get(path).headers
    secure = make_app(PUBLIC_URL="https://status.acme.example").test_client()
    for path in ("/status", "/admin/signin", "/api/v1/audiences", "/healthz"):
        hsts = secure.get(path).headers.get("Strict-Transport-Security", "")
        assert re.fullmatch(r"max-age=\d{7,}", hsts), (path, hsts)
