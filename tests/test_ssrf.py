"""The SSRF guard: webhook targets never reach loopback, link-local or private addresses.

Safety rule (DESIGN.md §5): these tests connect to nothing but 127.0.0.1. Private and
metadata addresses are only ever handed to the pure check or to a resolver the test passes
in; the one network test that could send if the guard broke points at the loopback receiver.
"""

from __future__ import annotations

import dataclasses
import socket
from typing import Any

import pytest

from broadcaster.domain.plan import PlanError, parse_plan
from broadcaster.infra.metrics import COUNTERS_KEY
from channels.egress import BlockedAddressError, address_problem, check_url, vetted
from channels.webhook import WebhookChannel, WebhookTarget
from tests.helpers import announce, drain
from tests.test_publishing import ANNOUNCEMENT, PLAN
from tests.test_webhook import SECRET, Receiver, make_post

ATTACK_URLS = [
    "http://127.0.0.1/hook",
    "http://localhost:8080/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/hook",
    "http://[::ffff:169.254.169.254]/latest/meta-data/",
    "http://10.0.0.5/hook",
    "http://0.0.0.0/hook",
]


def fake_resolver(*answers: str) -> Any:
    """A getaddrinfo stand-in that answers ``answers`` for any name (no DNS, no network)."""

    def resolve(host: str, port: int, *_: Any) -> list[tuple[Any, ...]]:
        return [
            (
                socket.AF_INET6 if ":" in a else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (a, port),
            )
            for a in answers
        ]

    return resolve


def no_dns(*_: Any) -> list[tuple[Any, ...]]:
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


def plan_with(url: str, **target: Any) -> dict[str, Any]:
    """Plan data with one webhook target at ``url`` (plus ``target`` keys)."""
    return {
        "organisation": {"name": "Acme"},
        "channels_by_severity": {s: ["webhook"] for s in ("info", "minor", "major", "critical")},
        "audiences": {"consumers": {"channels": ["webhook"]}},
        "webhooks": [{"name": "ops", "url": url, "secret": SECRET, **target}],
    }


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("fe80::1", "link-local"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),  # unique-local
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "not globally routable"),  # carrier-grade NAT
        ("::ffff:127.0.0.1", "loopback (IPv4 inside IPv6)"),
        ("::ffff:169.254.169.254", "link-local (IPv4 inside IPv6)"),
        ("::ffff:10.0.0.1", "private (IPv4 inside IPv6)"),
        ("2002:7f00:1::", "loopback (IPv4 inside IPv6)"),  # 6to4 around 127.0.0.1
    ],
)
def test_inward_addresses_are_refused_by_the_pure_check(address, kind):
    assert address_problem(address) == kind


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass(address):
    assert address_problem(address) is None


@pytest.mark.parametrize("url", ATTACK_URLS)
def test_attack_plan_targets_at_loopback_metadata_or_private_are_refused_at_load(url):
    """The attack: 127.0.0.1, localhost and 169.254.169.254 were accepted unchecked."""
    with pytest.raises(PlanError) as caught:
        parse_plan(plan_with(url), "plan.toml", resolver=no_dns)
    message = str(caught.value)
    assert "plan.toml: webhooks[0].url:" in message and "allow_private = true" in message


def test_a_name_resolving_inward_is_refused_at_load_and_every_address_counts():
    with pytest.raises(PlanError, match="resolves to 169.254.169.254, a link-local address"):
        parse_plan(plan_with("https://hooks.acme.example/x"), "p", fake_resolver("169.254.169.254"))
    # One public address does not excuse a private one beside it.
    mixed = fake_resolver("93.184.216.34", "10.0.0.7")
    with pytest.raises(PlanError, match="10.0.0.7, a private address"):
        parse_plan(plan_with("https://hooks.acme.example/x"), "p", mixed)


def test_public_names_load_and_unresolvable_ones_are_left_to_the_send_time_check():
    plan = parse_plan(plan_with("https://hooks.acme.example/x"), "p", fake_resolver("1.1.1.1"))
    assert plan.webhooks[0].allow_private is False
    # No DNS at start-up must not keep the broadcaster down in a crisis.
    assert parse_plan(plan_with("https://hooks.acme.example/x"), "p", no_dns).webhooks


def test_a_url_with_an_impossible_port_is_a_plan_error_not_a_crash():
    with pytest.raises(PlanError, match=r"webhooks\[0\].url: bad URL: Port out of range"):
        parse_plan(plan_with("https://hooks.acme.example:99999/x"), "p", no_dns)


def test_allow_private_lets_an_internal_target_load():
    plan = parse_plan(plan_with("http://127.0.0.1:9/hook", allow_private=True), "p", no_dns)
    assert plan.webhooks[0].allow_private is True
    bad = plan_with("http://127.0.0.1:9/hook", allow_private="yes")
    with pytest.raises(PlanError, match=r"webhooks\[0\].allow_private: must be true or false"):
        parse_plan(bad, "p", no_dns)


def test_check_url_and_vetted_use_the_resolver_they_are_given():
    assert [str(a) for a in check_url("https://x.example/", fake_resolver("1.1.1.1"))] == [
        "1.1.1.1"
    ]
    with pytest.raises(BlockedAddressError, match="loopback name"):
        vetted("api.localhost", 443, fake_resolver("1.1.1.1"))


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.stop()


def test_send_time_check_refuses_a_loopback_target_and_sends_nothing(receiver):
    """A target built around the plan check (or whose DNS moved) is refused when sending."""
    channel = WebhookChannel({"PROVIDER_TIMEOUT": 0.5})
    for url in (f"{receiver.url}/hook", receiver.url.replace("127.0.0.1", "localhost")):
        target = WebhookTarget("ops", url, SECRET)
        with pytest.raises(BlockedAddressError, match="webhook ops: refused: .*allow_private"):
            channel.deliver(target, make_post())
    assert receiver.requests == []


def test_the_connection_itself_checks_the_address_it_connects_to(receiver):
    """Even past deliver()'s check, the guarded session connects only to checked addresses."""
    channel = WebhookChannel({"PROVIDER_TIMEOUT": 0.5})
    with pytest.raises(BlockedAddressError, match="127.0.0.1, a loopback address"):
        channel.session.post(f"{receiver.url}/hook", data=b"{}", timeout=0.5)
    assert receiver.requests == []
    allowed = WebhookTarget("ops", f"{receiver.url}/hook", SECRET, allow_private=True)
    assert channel.deliver(allowed, make_post()).extra == {"status": 200}
    assert len(receiver.requests) == 1


def test_a_refused_send_fails_for_good_is_logged_and_counted(
    make_app, tmp_path, tokens, receiver, caplog
):
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN.format(url=receiver.url, secret=SECRET))
    app = make_app(PLAN=str(plan))
    svc = app.extensions["broadcaster"]
    # The plan said allow_private; now it does not (as if DNS had moved a public name inward).
    svc.plan = dataclasses.replace(
        svc.plan,
        webhooks=tuple(dataclasses.replace(t, allow_private=False) for t in svc.plan.webhooks),
    )
    client = app.test_client()
    ann = announce(client, tokens["admin"], ANNOUNCEMENT)["id"]
    with caplog.at_level("WARNING"):
        drain(app)
    assert receiver.requests == []
    [record] = client.get(
        f"/api/v1/announcements/{ann}/deliveries", headers=tokens["admin"]
    ).get_json()["items"]
    assert record["state"] == "failed" and record["attempts"] == 1, "never retried"
    assert "a loopback address" in record["error"]
    assert svc.redis.hget(COUNTERS_KEY, "webhook_blocked|helpdesk") == b"1"
    assert any("webhook helpdesk: refused" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "url", ["http://2130706433/", "http://0x7f.1/", "http://0177.0.0.1/", "http://127.1/"]
)
def test_other_spellings_of_loopback_are_caught_after_resolution(url):
    """The system resolver reads these numerically (no DNS query, no connection)."""
    with pytest.raises(BlockedAddressError, match="resolves to 127.0.0.1, a loopback address"):
        check_url(url)
