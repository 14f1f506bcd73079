"""The one place a Redis client is built from ``BROADCASTER_REDIS_URL``.

Plain URLs (``redis://``, ``rediss://``, ``unix://``) go to redis-py as they are. Sentinel
URLs name the sentinels and the service, and give a client of the service's *current*
primary (redis-py's ``Sentinel.master_for``)::

    redis+sentinel://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]…]/SERVICE[/DB][?OPTIONS]
    rediss+sentinel://…   (TLS to the sentinels and to the primary)

``PASSWORD`` (and ``USER``) are the data nodes' ``requirepass`` (ACL user); the sentinels'
own password, if they have one, is the ``sentinel_password`` option (and
``sentinel_username``). Other options: ``socket_timeout``, ``socket_connect_timeout`` (s),
``ssl_ca_certs`` (a file) and ``ssl_cert_reqs`` (``required``, ``optional``, ``none``).
Ports default to 26379, the database to 0.

Every client retries a command for about a minute on a lost connection: long enough for a
Redis restart or a Sentinel failover. Through Sentinel, a client re-asks the sentinels on
each reconnect and at least every ``RECHECK`` seconds, so it leaves a primary that was
switched over while it kept answering; a demoted primary's ``READONLY`` and a primary's
``NOREPLICAS`` (``min-replicas-to-write``: its replicas are gone, a failover is under way)
count as lost connections and are retried on the new primary.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.connection import parse_url
from redis.retry import Retry
from redis.sentinel import (
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
    SentinelManagedSSLConnection,
)

# Ride out a Redis restart (a crash, a failover, an upgrade) instead of failing mid-send:
# every command retries with backoff for about a minute. Retrying is safe here: our writes
# are idempotent Lua moves and claims, and RQ tolerates a job enqueued twice.
OUTAGE_RETRIES = 35
OUTAGE_BACKOFF_CAP = 2.0  # seconds

SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}  # scheme → TLS
PLAIN_SCHEMES = ("redis", "rediss", "unix")
DEFAULT_SENTINEL_PORT = 26379
# A sentinel that does not answer within this is skipped for the next one.
SENTINEL_TIMEOUT = 1.0
# Seconds between two questions to the sentinels about who the primary is. After a
# switch-over the old primary still answers (until the sentinels demote it, seconds later):
# what we wrote there meanwhile would be lost.
RECHECK = 1.0

_FORMS = (
    "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB], rediss://…, unix:///PATH.sock, or "
    "redis+sentinel://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]…]/SERVICE[/DB] "
    "(rediss+sentinel:// for TLS)"
)
_OPTIONS = {
    "sentinel_password",
    "sentinel_username",
    "socket_timeout",
    "socket_connect_timeout",
    "ssl_ca_certs",
    "ssl_cert_reqs",
}
_CERT_REQS = ("required", "optional", "none")
_HOST = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9._-]+))(?::(?P<port>\d+))?$")


class RedisUrlError(ValueError):
    """The Redis URL is malformed; the message says what is wrong and the accepted forms."""


@dataclass(frozen=True)
class SentinelTarget:
    """What a sentinel URL names: where the sentinels are, which service, how to log in."""

    sentinels: list[tuple[str, int]]
    service: str
    db: int = 0
    tls: bool = False
    username: str | None = None
    password: str | None = None
    options: dict[str, str] = field(default_factory=dict)

    def sentinel_options(self) -> dict[str, Any]:
        """Connection options for the sentinels themselves."""
        opts: dict[str, Any] = {
            "socket_timeout": SENTINEL_TIMEOUT,
            "socket_connect_timeout": SENTINEL_TIMEOUT,
        }
        if "sentinel_password" in self.options:
            opts["password"] = self.options["sentinel_password"]
        if "sentinel_username" in self.options:
            opts["username"] = self.options["sentinel_username"]
        return {**opts, **self._tls()}

    def primary_options(self) -> dict[str, Any]:
        """Connection options for the primary (and the db to select)."""
        # TLS to the primary is its connection class's (``client``); these are its options.
        opts: dict[str, Any] = {"db": self.db, **self._tls()}
        opts.pop("ssl", None)
        if self.password is not None:
            opts["password"] = self.password
        if self.username:
            opts["username"] = self.username
        for name in ("socket_timeout", "socket_connect_timeout"):
            if name in self.options:
                opts[name] = float(self.options[name])
        return opts

    def _tls(self) -> dict[str, Any]:
        if not self.tls:
            return {}
        opts: dict[str, Any] = {"ssl": True}
        if "ssl_ca_certs" in self.options:
            opts["ssl_ca_certs"] = self.options["ssl_ca_certs"]
        if "ssl_cert_reqs" in self.options:
            opts["ssl_cert_reqs"] = self.options["ssl_cert_reqs"]
        return opts


class _NoReplicasAsLost:
    """``NOREPLICAS`` (the primary lost its replicas: a failover is under way) is a lost
    connection: disconnect, so the retry asks the sentinels again. A read that fails
    disconnects too."""

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        # redis-py's sentinel connection keeps a connection whose read was interrupted (RQ's
        # stop signal raises mid-read): the next command read the old reply. Drop it.
        kwargs.setdefault("disconnect_on_error", True)
        try:
            return super().read_response(*args, **kwargs)  # type: ignore[misc]
        except redis.ResponseError as exc:
            # Inside a Lua script it comes wrapped ("Error running script … -NOREPLICAS"):
            # the script's first write was refused, so it changed nothing.
            if "NOREPLICAS" not in str(exc):
                raise
            self.disconnect()  # type: ignore[attr-defined]
            raise redis.ConnectionError(f"primary refuses writes: {exc}") from exc


class _AskSentinelsOnReconnect:
    """Reconnect through the sentinels when a command is retried on the same connection.

    redis-py 8's ``send_packed_command`` reconnects a dropped connection to the address it
    had, bypassing the sentinel lookup: a retried command kept knocking at the old primary.
    """

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self._sock:  # type: ignore[attr-defined]
            self.connect()  # type: ignore[attr-defined]
        super().send_packed_command(command, check_health)  # type: ignore[misc]


class _Connection(_NoReplicasAsLost, _AskSentinelsOnReconnect, SentinelManagedConnection):
    pass


class _SSLConnection(_NoReplicasAsLost, _AskSentinelsOnReconnect, SentinelManagedSSLConnection):
    pass


class _WatchfulPool(SentinelConnectionPool):
    """A pool of connections to the primary that re-asks the sentinels every ``RECHECK`` s.

    redis-py's pool asks only on a new connection; a connection to a switched-over primary
    stays usable (and its writes are lost). On a change the pool closes its idle
    connections and drops busy ones when they come back (``owns_connection``).
    """

    def __init__(self, service_name: str, sentinel_manager: Sentinel, **kwargs: Any) -> None:
        super().__init__(service_name, sentinel_manager, **kwargs)
        self._checked = 0.0

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        now = time.monotonic()
        if now - self._checked >= RECHECK:
            self._checked = now
            try:
                self.get_master_address()
            except redis.ConnectionError:
                pass  # no sentinel answers: the connection's own retry deals with it
        return super().get_connection(*args, **kwargs)


def is_sentinel(url: str) -> bool:
    """Whether ``url`` names Redis through Sentinel."""
    return url.split("://", 1)[0].lower() in SENTINEL_SCHEMES


def check(url: str) -> None:
    """Raise RedisUrlError when ``url`` is no Redis URL we can use (nothing is contacted)."""
    if is_sentinel(url):
        parse_sentinel(url)
        return
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in PLAIN_SCHEMES:
        shown = f"scheme {scheme!r}" if scheme else "no scheme"
        raise RedisUrlError(f"Redis URL has {shown}; expected {_FORMS}")
    try:
        parse_url(url)
    except ValueError as exc:
        raise RedisUrlError(f"Redis URL: {exc}; expected {_FORMS}") from exc


def parse_sentinel(url: str) -> SentinelTarget:
    """Read a ``redis+sentinel://`` or ``rediss+sentinel://`` URL (see the module doc)."""
    scheme, _, rest = url.partition("://")
    tls = SENTINEL_SCHEMES.get(scheme.lower())
    if tls is None:
        raise RedisUrlError(f"not a Sentinel URL: scheme {scheme!r}; expected {_FORMS}")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    sentinels = [_host(part) for part in hosts.split(",")] if hosts else []
    if not sentinels:
        raise RedisUrlError(f"Sentinel URL names no sentinel (HOST:PORT); expected {_FORMS}")
    parts = [unquote(p) for p in path.split("/")] if path else []
    if parts and parts[-1] == "":
        parts.pop()  # a trailing slash
    if not parts or not parts[0]:
        raise RedisUrlError(
            f"Sentinel URL names no service (the sentinels' master name, e.g. mymaster) "
            f"after the hosts; expected {_FORMS}"
        )
    if len(parts) > 2:
        raise RedisUrlError(f"Sentinel URL path has too many parts {path!r}; expected {_FORMS}")
    db = 0
    if len(parts) == 2:
        if not parts[1].isdigit():
            raise RedisUrlError(f"Sentinel URL database {parts[1]!r} is not a number")
        db = int(parts[1])
    return SentinelTarget(sentinels, parts[0], db, tls, username, password, _options(query, tls))


def _host(part: str) -> tuple[str, int]:
    found = _HOST.match(part.strip())
    if not found:
        raise RedisUrlError(f"Sentinel URL host {part!r} is not HOST[:PORT]")
    port = int(found["port"]) if found["port"] else DEFAULT_SENTINEL_PORT
    if not 0 < port < 65536:
        raise RedisUrlError(f"Sentinel URL port {port} of {part!r} is out of range")
    return found["v6"] or found["name"], port


def _options(query: str, tls: bool) -> dict[str, str]:
    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise RedisUrlError(
            f"Sentinel URL option {unknown[0]!r} is unknown; known: {', '.join(sorted(_OPTIONS))}"
        )
    for name in ("socket_timeout", "socket_connect_timeout"):
        if name in options:
            try:
                if float(options[name]) <= 0:
                    raise ValueError
            except ValueError:
                raise RedisUrlError(
                    f"Sentinel URL option {name}={options[name]!r} is not a positive number"
                ) from None
    if "ssl_cert_reqs" in options and options["ssl_cert_reqs"] not in _CERT_REQS:
        raise RedisUrlError(
            f"Sentinel URL option ssl_cert_reqs={options['ssl_cert_reqs']!r}: "
            f"expected one of {', '.join(_CERT_REQS)}"
        )
    if not tls and ({"ssl_ca_certs", "ssl_cert_reqs"} & set(options)):
        raise RedisUrlError("Sentinel URL has TLS options but the scheme is redis+sentinel://")
    return options


def client(url: str, retries: int = OUTAGE_RETRIES, **options: Any) -> redis.Redis:
    """A Redis client for ``url`` that waits ``retries`` times for Redis to come back.

    ``retries=0``: fail at once (a health probe). ``options`` go to every connection (of a
    sentinel URL: to the primary's connections).
    """
    check(url)
    if retries > 0:
        retry = Retry(ExponentialBackoff(cap=OUTAGE_BACKOFF_CAP, base=0.1), retries)
    else:
        retry = Retry(NoBackoff(), 0)
    errors = [redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError]
    if not is_sentinel(url):
        return redis.Redis.from_url(url, retry=retry, retry_on_error=errors, **options)
    target = parse_sentinel(url)
    sentinel = Sentinel(target.sentinels, sentinel_kwargs=target.sentinel_options())
    return sentinel.master_for(
        target.service,
        connection_pool_class=_WatchfulPool,
        connection_class=_SSLConnection if target.tls else _Connection,
        retry=retry,
        retry_on_error=errors,
        **{**target.primary_options(), **options},
    )


def refuse_a_sentinel(url: str) -> None:
    """Raise RedisUrlError when a plain URL leads to a sentinel instead of a Redis.

    Redis commands then fail one by one (``unknown command 'EXEC'``); say it at start-up.
    An unreachable Redis passes: the clients wait for it.
    """
    if is_sentinel(url):
        return
    probe = client(url, retries=0, socket_connect_timeout=1, socket_timeout=1)
    try:
        mode = probe.info("server").get("redis_mode")
    except redis.RedisError:
        return
    finally:
        probe.close()
    if mode == "sentinel":
        raise RedisUrlError(
            "Redis URL points at a Sentinel, not at Redis: use "
            "redis+sentinel://HOST:PORT[,HOST:PORT…]/SERVICE/DB (docs/operations.md)"
        )


def server_id(r: redis.Redis) -> str | None:
    """The Redis server answering now (its ``run_id``: a promoted replica's differs, and so
    does a restarted server's); None when it cannot be told."""
    try:
        return str(r.info("server").get("run_id")) or None
    except redis.RedisError:
        return None
