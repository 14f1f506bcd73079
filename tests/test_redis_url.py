"""``BROADCASTER_REDIS_URL``: plain and Sentinel forms, and clear errors for bad ones."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broadcaster import create_app
from broadcaster.config import ConfigError, from_environment
from broadcaster.infra import redis_connect
from broadcaster.infra.redis_connect import RedisUrlError, check, parse_sentinel
from tests.processes import broadcaster_command, clean_env
from tests.sentinels import SentinelSet, sentinel_binary
from tests.workers import ROOT


def test_a_sentinel_url_names_sentinels_service_database_and_credentials():
    target = parse_sentinel(
        "redis+sentinel://:s%40cret@h1:26380,h2,[::1]:26381/mymaster/3"
        "?sentinel_password=sp&socket_timeout=2.5"
    )
    assert target.sentinels == [("h1", 26380), ("h2", 26379), ("::1", 26381)]
    assert (target.service, target.db, target.tls) == ("mymaster", 3, False)
    assert target.password == "s@cret" and target.username is None
    assert target.sentinel_options()["password"] == "sp"
    primary = target.primary_options()
    assert primary["password"] == "s@cret" and primary["db"] == 3
    assert primary["socket_timeout"] == 2.5 and "ssl" not in primary


def test_tls_sentinel_urls_use_tls_to_sentinels_and_primary():
    target = parse_sentinel(
        "rediss+sentinel://app:pw@h1:26379/mymaster?ssl_cert_reqs=required&ssl_ca_certs=/ca.pem"
    )
    assert target.tls and target.username == "app" and target.db == 0
    assert target.sentinel_options()["ssl"] is True
    assert target.primary_options()["ssl_ca_certs"] == "/ca.pem"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel:///mymaster/0", "names no sentinel"),
        ("redis+sentinel://h1:26379", "names no service"),
        ("redis+sentinel://h1:26379/", "names no service"),
        ("redis+sentinel://h1:26379/mymaster/zero", "database 'zero' is not a number"),
        ("redis+sentinel://h1:26379/mymaster/0/extra", "too many parts"),
        ("redis+sentinel://h1:99999/mymaster", "out of range"),
        ("redis+sentinel://h1:port/mymaster", "is not HOST[:PORT]"),
        ("redis+sentinel://h1/mymaster?colour=blue", "option 'colour' is unknown"),
        ("redis+sentinel://h1/mymaster?socket_timeout=-1", "not a positive number"),
        ("redis+sentinel://h1/mymaster?ssl_cert_reqs=none", "scheme is redis+sentinel"),
        ("rediss+sentinel://h1/mymaster?ssl_cert_reqs=maybe", "expected one of"),
        ("sentinel://h1:26379/mymaster", "scheme 'sentinel'"),
        ("h1:6379", "no scheme"),
    ],
)
def test_bad_urls_say_what_is_wrong(url, says):
    with pytest.raises(RedisUrlError) as caught:
        check(url)
    assert says in str(caught.value)
    assert "redis+sentinel://" in str(caught.value) or "Sentinel URL" in str(caught.value)


def test_the_password_never_appears_in_an_error():
    with pytest.raises(RedisUrlError) as caught:
        check("redis+sentinel://:hunter2@h1:26379/mymaster/x")
    assert "hunter2" not in str(caught.value)


@given(st.text(max_size=200))
def test_any_string_is_accepted_or_refused_with_our_error(url):
    try:
        check(url)
    except RedisUrlError:
        pass


def test_start_up_refuses_a_bad_url_naming_the_variable(tmp_path):
    with pytest.raises(ConfigError, match="BROADCASTER_REDIS_URL: .*names no service"):
        from_environment({"BROADCASTER_REDIS_URL": "redis+sentinel://h1:26379"})
    with pytest.raises(ConfigError, match="BROADCASTER_REDIS_URL: Redis URL has scheme 'http'"):
        create_app({"REDIS_URL": "http://h1/", "DATA_DIR": str(tmp_path), "PLAN": None})


def test_worker_and_cli_refuse_a_bad_url_at_start(tmp_path):
    env = clean_env(
        BROADCASTER_REDIS_URL="redis+sentinel://127.0.0.1:26379",
        BROADCASTER_DATA_DIR=str(tmp_path),
    )
    worker = subprocess.run(
        [sys.executable, str(ROOT / "worker.py")], env=env, capture_output=True, text=True
    )
    assert worker.returncode == 1
    assert "worker: BROADCASTER_REDIS_URL: Sentinel URL names no service" in worker.stderr
    cli = subprocess.run(
        [*broadcaster_command(), "token", "create", "--name", "x", "--role", "admin"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert cli.returncode == 1 and "names no service" in cli.stderr


BINARY = sentinel_binary()


@pytest.mark.skipif(BINARY is None, reason="no redis-server binary to run Redis Sentinel")
def test_a_sentinel_url_works_and_a_plain_url_at_a_sentinel_is_refused(tmp_path):
    cluster = SentinelSet(tmp_path / "redis", str(BINARY)).start()
    try:
        r = redis_connect.client(cluster.url)
        r.set("k", "v")
        assert r.connection_pool.get_master_address()[1] == cluster.primary_port()
        config = {"DATA_DIR": str(tmp_path), "PLAN": None}
        app = create_app({**config, "REDIS_URL": cluster.url})
        assert app.test_client().get("/healthz").status_code == 200
        sentinel_port = next(iter(cluster.sentinels))
        with pytest.raises(ConfigError, match="points at a Sentinel, not at Redis"):
            create_app({**config, "REDIS_URL": f"redis://127.0.0.1:{sentinel_port}/0"})
        env = clean_env(
            BROADCASTER_REDIS_URL=cluster.url.replace("/mymaster/0", "/mymaster/0?colour=x"),
            BROADCASTER_DATA_DIR=str(tmp_path),
        )
        up = subprocess.run(
            [*broadcaster_command(), "up"], env=env, capture_output=True, text=True, timeout=60
        )
        assert up.returncode == 1 and "option 'colour' is unknown" in up.stderr
        env["BROADCASTER_REDIS_URL"] = f"redis://127.0.0.1:{sentinel_port}/0"
        up = subprocess.run(
            [*broadcaster_command(), "up"], env=env, capture_output=True, text=True, timeout=60
        )
        assert up.returncode == 1 and "points at a Sentinel" in up.stderr
    finally:
        cluster.stop()
