"""Fixtures: a real redis-server, real RQ workers, fake providers for the real SDKs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from broadcaster import create_app
from broadcaster.domain.tokens import create_token
from broadcaster.infra.redis_server import EmbeddedRedis
from tests.fakes import FakeSendGrid, FakeTwilio
from tests.fakes_helpdesk import FakeFreshdesk, FakeZendesk
from tests.fakes_social import FakeBluesky, FakeMastodon
from tests.helpers import drain

TWILIO_FROM = "+3197010000000"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def r(redis_server: EmbeddedRedis) -> redis.Redis:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    return client


@pytest.fixture(scope="session")
def sendgrid() -> Iterator[FakeSendGrid]:
    fake = FakeSendGrid()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def twilio() -> Iterator[FakeTwilio]:
    fake = FakeTwilio()
    yield fake
    fake.stop()


@pytest.fixture
def providers(
    sendgrid: FakeSendGrid, twilio: FakeTwilio
) -> Iterator[tuple[FakeSendGrid, FakeTwilio]]:
    sendgrid.reset()
    twilio.reset()
    sendgrid.rejected_addresses.clear()
    twilio.invalid_numbers.clear()
    yield sendgrid, twilio
    # Whatever a test did, the SDKs must have spoken the providers' wire format.
    assert sendgrid.violations == []
    assert twilio.violations == []


def provider_settings(sendgrid: FakeSendGrid, twilio: FakeTwilio) -> dict[str, Any]:
    return {
        "SENDGRID_API_KEY": FakeSendGrid.API_KEY,
        "SENDGRID_BASE_URL": sendgrid.url,
        "EMAIL_FROM": "alerts@acme.example",
        "TWILIO_ACCOUNT_SID": FakeTwilio.ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": FakeTwilio.AUTH_TOKEN,
        "TWILIO_FROM": TWILIO_FROM,
        "TWILIO_BASE_URL": twilio.url,
    }


@pytest.fixture
def make_app(
    r: redis.Redis,
    redis_server: EmbeddedRedis,
    tmp_path: Path,
    providers: tuple[FakeSendGrid, FakeTwilio],
) -> Callable[..., Flask]:
    """Build an app wired to the test Redis and the fake providers; overrides go in kwargs."""

    def build(**overrides: Any) -> Flask:
        config = {
            "REDIS_URL": redis_server.url,
            "DATA_DIR": str(tmp_path / "data"),
            "PLAN": None,
            "RETRY_BACKOFF": 0,  # retry at once unless the provider says Retry-After
            "PROVIDER_TIMEOUT": 5,
            # Pacing has its own tests (test_ratelimit.py): elsewhere it must not slow tests.
            "TWILIO_RATE": 1000,
            "TWILIO_VOICE_RATE": 1000,
            "SENDGRID_RATE": 1000,
            "BANNER_PROCESS_CACHE": 0,  # tests read /banner.json right after publishing
            # Every pending announcement notifies on its own, at once (the digest window has
            # its own test in test_approver_view.py): drain never waits for a window's end.
            "APPROVAL_NOTICE_WINDOW": 0,
            "MASTODON_RATE": 1000,
            "BLUESKY_RATE": 1000,
            # Staff first has its own tests (test_staff_first.py): elsewhere customers follow
            # the brief at once.
            "STAFF_LEAD_MAX": 0,
            **provider_settings(*providers),
            **overrides,
        }
        app = create_app(config)
        app.config["TESTING"] = True
        return app

    return build


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def tokens(r: redis.Redis) -> dict[str, dict[str, str]]:
    """Authorization headers per role (plus a second approver)."""
    names = {"helpdesk": "helen", "approver": "arne", "monitor": "prometheus", "admin": "ada"}
    out = {
        role: {"Authorization": f"Bearer {create_token(r, name, role)}"}
        for role, name in names.items()
    }
    out["approver2"] = {"Authorization": f"Bearer {create_token(r, 'bo', 'approver')}"}
    return out


@pytest.fixture
def run_jobs(app: Flask) -> Callable[..., None]:
    return lambda timeout=30.0: drain(app, timeout)


@pytest.fixture(scope="session")
def mastodon_server() -> Iterator[FakeMastodon]:
    fake = FakeMastodon()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def bluesky_server() -> Iterator[FakeBluesky]:
    fake = FakeBluesky()
    yield fake
    fake.stop()


@pytest.fixture
def mastodon(mastodon_server: FakeMastodon) -> Iterator[FakeMastodon]:
    mastodon_server.reset()
    yield mastodon_server
    # Whatever a test did, Mastodon.py must have spoken Mastodon's wire format.
    assert mastodon_server.violations == []


@pytest.fixture
def bluesky(bluesky_server: FakeBluesky) -> Iterator[FakeBluesky]:
    bluesky_server.reset()
    yield bluesky_server
    assert bluesky_server.violations == []


PASSWORD = "correct horse battery staple"
# One person per role, plus a second approver (four eyes need two).
PEOPLE = {
    "helpdesk": ("hanna@acme.example", "Hanna Helpdesk"),
    "approver": ("arne@acme.example", "Arne Approver"),
    "approver2": ("bo@acme.example", "Bo Approver"),
    "admin": ("ada@acme.example", "Ada Admin"),
}


_people_snapshot: dict[str, bytes] = {}


@pytest.fixture
def people(r: redis.Redis) -> dict[str, Any]:
    """Admin-page users per role (password PASSWORD), keyed like ``tokens``.

    Made with ``create_user`` once per session, then restored from a Redis DUMP: an argon2
    hash costs most of a second by design, four per test would dominate the admin tests.
    """
    from broadcaster.domain.users import USERS_KEY, create_user, get_user

    if not _people_snapshot:
        for key, (email, name) in PEOPLE.items():
            create_user(r, email, name, key.rstrip("2"), PASSWORD)
        for name in [f"bc:user:{email}" for email, _ in PEOPLE.values()] + [USERS_KEY]:
            _people_snapshot[name] = r.dump(name)
    else:
        for name, value in _people_snapshot.items():
            r.restore(name, 0, value, replace=True)
    return {key: get_user(r, email) for key, (email, _) in PEOPLE.items()}


def csrf_token(client: FlaskClient, path: str = "/admin/signin") -> str:
    """The CSRF token a page carries in ``<meta name="csrf-token">``."""
    import re

    html = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def sign_in(client: FlaskClient, email: str, password: str = PASSWORD) -> str:
    """Sign in through the real form; returns the CSRF token to post with afterwards.

    The token rotates at sign-in (a fresh session), so it is read again from a page.
    """
    answer = client.post(
        "/admin/signin",
        data={"email": email, "password": password, "csrf_token": csrf_token(client)},
    )
    assert answer.status_code == 302, answer.get_data(as_text=True)
    return csrf_token(client, "/admin/")


@pytest.fixture
def signed_in() -> Callable[..., str]:
    """``signed_in(client, email)``: sign in through the form, get the CSRF token back."""
    return sign_in


@pytest.fixture
def zendesk() -> Iterator[FakeZendesk]:
    """A fake Zendesk API (tests/fakes_helpdesk.py); its wire-format checks must hold."""
    server = FakeZendesk()
    yield server
    server.stop()
    assert server.violations == []


@pytest.fixture
def freshdesk() -> Iterator[FakeFreshdesk]:
    """A fake Freshdesk API (tests/fakes_helpdesk.py); its wire-format checks must hold."""
    server = FakeFreshdesk()
    yield server
    server.stop()
    assert server.violations == []
