"""Sign-in throttling: hard limits per (account, address) and per address; across
addresses only a short delay, which a guesser elsewhere cannot turn into a lock-out."""

from __future__ import annotations

import time

import pytest

from broadcaster.domain import audit
from broadcaster.web import signin_limit
from tests.conftest import PASSWORD
from tests.conftest import csrf_token as csrf

OWNER = "ada@acme.example"  # the `people` fixture's admin
WRONG = "not the password at all"


def attempt(app, email, password, address):
    """One sign-in from ``address`` in a fresh browser; the answer, whatever it is."""
    browser = app.test_client()
    return browser.post(
        "/admin/signin",
        data={"email": email, "password": password, "csrf_token": csrf(browser)},
        environ_base={"REMOTE_ADDR": address},
    )


def throttled(r):
    return [
        (e["actor"], e["ip"], e["details"]["scope"])
        for e in reversed(audit.entries(r, action="signin.throttled", limit=500))
    ]


def test_guessing_from_one_address_delays_the_owner_elsewhere_only_briefly(app, r, people):
    limits = signin_limit.Limits.from_config(app.config)
    for _ in range(limits.free + 1):
        assert attempt(app, OWNER, WRONG, "10.6.6.6").status_code == 401
    # The last failure slowed the account down: for everyone, but only for a moment.
    slowed = attempt(app, OWNER, PASSWORD, "10.1.1.1")
    assert slowed.status_code == 429
    wait = int(slowed.headers["Retry-After"])
    assert 1 <= wait <= 30
    assert "slowed down" in slowed.get_data(as_text=True)

    time.sleep(wait)
    # The guesser renews the delay from a third address the moment it ends ...
    assert attempt(app, OWNER, WRONG, "10.7.7.7").status_code == 401
    assert attempt(app, OWNER, WRONG, "10.7.7.7").status_code == 429
    # ... yet the owner, coming back when told, gets in: the wait was reserved for them.
    assert attempt(app, OWNER, PASSWORD, "10.1.1.1").status_code == 302

    assert ("ada@acme.example", "10.1.1.1", "account") in throttled(r)
    failed = audit.entries(r, action="signin.failed", limit=500)
    assert {e["ip"] for e in failed} == {"10.6.6.6", "10.7.7.7"}
    assert failed[0]["details"]["delay"] > 0, "the failure that slowed the account says so"


def test_the_delay_across_addresses_never_exceeds_30_seconds(make_app, r, people):
    # Even configured higher, and after many failures from many addresses.
    app = make_app(SIGNIN_DELAY=10, SIGNIN_MAX_DELAY=3600, SIGNIN_ADDRESS_LIMIT=1000)
    limits = signin_limit.Limits.from_config(app.config)
    assert limits.max_delay == signin_limit.MAX_ACCOUNT_DELAY == 30
    assert max(limits.delay_after(n) for n in range(1000)) == 30
    for n in range(40):
        signin_limit.failed(r, OWNER, f"10.0.0.{n}", limits)
    slowed = attempt(app, OWNER, PASSWORD, "10.1.1.1")
    assert slowed.status_code == 429 and 1 <= int(slowed.headers["Retry-After"]) <= 30


def test_failures_for_one_account_from_one_address_stop_only_that_pair(make_app, r, people):
    app = make_app(SIGNIN_ACCOUNT_ADDRESS_LIMIT=3, SIGNIN_FREE_FAILURES=100)
    for _ in range(3):
        assert attempt(app, OWNER, WRONG, "10.6.6.6").status_code == 401
    for _ in range(2):
        stopped = attempt(app, OWNER, PASSWORD, "10.6.6.6")
        assert stopped.status_code == 429, "not even the right password from there"
        assert 30 < int(stopped.headers["Retry-After"]) <= 300, "until the window ends"
        assert "for this account from your address" in stopped.get_data(as_text=True)
    # Another account from that address, and this account from elsewhere, are unaffected.
    assert attempt(app, "arne@acme.example", PASSWORD, "10.6.6.6").status_code == 302
    assert attempt(app, OWNER, PASSWORD, "10.1.1.1").status_code == 302
    assert throttled(r) == [(OWNER, "10.6.6.6", "account_address")], "audited once per window"


def test_failures_from_one_address_across_accounts_stop_that_address(make_app, r, people):
    app = make_app(SIGNIN_ADDRESS_LIMIT=3)
    for n in range(3):
        assert attempt(app, f"nobody{n}@acme.example", WRONG, "10.6.6.6").status_code == 401
    stopped = attempt(app, OWNER, PASSWORD, "10.6.6.6")
    assert stopped.status_code == 429 and "from your address" in stopped.get_data(as_text=True)
    assert int(stopped.headers["Retry-After"]) > 30
    assert attempt(app, OWNER, PASSWORD, "10.1.1.1").status_code == 302
    assert throttled(r) == [(OWNER, "10.6.6.6", "address")]


def test_the_right_password_clears_only_its_own_address_count(make_app, r, people):
    app = make_app(SIGNIN_ACCOUNT_ADDRESS_LIMIT=2, SIGNIN_FREE_FAILURES=100)
    assert attempt(app, OWNER, WRONG, "10.1.1.1").status_code == 401
    assert attempt(app, OWNER, PASSWORD, "10.1.1.1").status_code == 302
    assert attempt(app, OWNER, WRONG, "10.1.1.1").status_code == 401, "count started again"
    assert attempt(app, OWNER, PASSWORD, "10.1.1.1").status_code == 302


@pytest.mark.parametrize("scope", ["pair", "address", "account"])
def test_every_throttle_record_expires_by_itself(make_app, r, people, scope):
    settings = {
        "pair": {"SIGNIN_ACCOUNT_ADDRESS_LIMIT": 1},
        "address": {"SIGNIN_ADDRESS_LIMIT": 1},
        "account": {"SIGNIN_FREE_FAILURES": 0},
    }[scope]
    app = make_app(SIGNIN_WINDOW=60, **settings)
    attempt(app, OWNER, WRONG, "10.6.6.6")
    assert attempt(app, OWNER, PASSWORD, "10.6.6.6").status_code == 429
    keys = r.keys("bc:signin:*")
    assert keys and all(0 < r.ttl(k) <= 61 for k in keys), "nobody is locked for good"
