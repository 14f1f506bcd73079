"""Where outbound HTTP may go: the SSRF guard for webhook targets.

A webhook URL comes from the plan, but the name in it is resolved by DNS, which can change
after the plan was loaded. So a target is checked twice: when the plan loads
(``check_url``) and when a request connects (``GuardedAdapter``): the connection resolves
the name, checks every address, and connects to an address it checked, so nothing can
swap the address between the check and the connect.

Refused: loopback, link-local (cloud metadata), private, unique-local, reserved,
multicast, unspecified and every other non-global address; an IPv4 address inside IPv6
(``::ffff:127.0.0.1``, 6to4, Teredo) is judged as the IPv4 address it carries. A target
that means to reach an internal service says ``allow_private = true`` in the plan.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from channels.base import PermanentDeliveryError, TransientDeliveryError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# getaddrinfo's shape: (host, port, family, type) → [(family, type, proto, canonname, sockaddr)]
Resolver = Callable[..., Sequence[tuple[Any, ...]]]

# First matching property names the reason; the order puts the most telling one first.
_KINDS = (
    ("is_unspecified", "unspecified"),
    ("is_loopback", "loopback"),
    ("is_link_local", "link-local"),
    ("is_multicast", "multicast"),
    ("is_reserved", "reserved"),
    ("is_private", "private"),
)
# Names that are loopback by definition (RFC 6761) or by custom: refused without asking DNS.
_LOCAL_NAMES = frozenset({"localhost", "ip6-localhost", "ip6-loopback"})


class BlockedAddressError(PermanentDeliveryError):
    """A target resolves to an address the guard refuses: never retried, never connected."""


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo), if any."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]
    # IPv4-compatible ::a.b.c.d (deprecated, but a stack may still route it as IPv4).
    if int(ip) >> 32 == 0 and int(ip) > 1:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_problem(ip: IPAddress | str) -> str | None:
    """Why ``ip`` must not be connected to (e.g. ``"loopback"``), or None if it is public."""
    address = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        return "link-local"
    inner = _embedded_ipv4(address)
    if inner is not None:
        problem = address_problem(inner)
        return f"{problem} (IPv4 inside IPv6)" if problem else None
    for attribute, kind in _KINDS:
        if getattr(address, attribute):
            return kind
    if not address.is_global:  # shared (100.64/10), documentation and other special ranges
        return "not globally routable"
    return None


def resolve(
    host: str, port: int, resolver: Resolver = socket.getaddrinfo
) -> list[tuple[IPAddress, tuple[Any, ...]]]:
    """Every (address, getaddrinfo entry) ``host`` resolves to for a TCP connection."""
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        family = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
        return [(literal, (family, socket.SOCK_STREAM, 0, "", (str(literal), port)))]
    found = []
    for entry in resolver(host, port, 0, socket.SOCK_STREAM):
        address = ipaddress.ip_address(str(entry[4][0]).split("%", 1)[0])
        found.append((address, entry))
    return found


def vetted(
    host: str, port: int, resolver: Resolver = socket.getaddrinfo
) -> list[tuple[IPAddress, tuple[Any, ...]]]:
    """``host``'s addresses if every one of them is public; else BlockedAddressError.

    All must pass, not just one: which of several addresses a client uses is not ours to pick.
    A name that does not resolve is a TransientDeliveryError (DNS may be back in a minute).
    """
    name = host.lower().rstrip(".")
    if name in _LOCAL_NAMES or name.endswith(".localhost"):
        raise BlockedAddressError(f"{host} is a loopback name; {HINT}")
    try:
        found = resolve(host, port, resolver)
    except (OSError, UnicodeError) as exc:  # socket.gaierror, or a name IDNA cannot encode
        raise TransientDeliveryError(f"cannot resolve {host}: {exc}") from exc
    if not found:
        raise TransientDeliveryError(f"{host} has no address")
    for address, _ in found:
        problem = address_problem(address)
        if problem:
            raise BlockedAddressError(f"{host} resolves to {address}, a {problem} address; {HINT}")
    return found


HINT = "set allow_private = true on the target if it is meant to reach an internal service"


def check_url(url: str, resolver: Resolver = socket.getaddrinfo) -> list[IPAddress]:
    """Check a target URL's host (at plan load); returns its addresses, all public."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:  # a port out of range
        raise PermanentDeliveryError(f"bad URL: {exc}") from exc
    return [address for address, _ in vetted(host, port, resolver)]


class _GuardedConnectionMixin:
    """Resolve, check every address, then connect only to a checked one."""

    host: str
    port: int
    timeout: Any
    source_address: Any
    socket_options: Any

    def _new_conn(self) -> socket.socket:
        # A refusal is raised as itself, not as an OSError, so urllib3 and requests pass it
        # through unwrapped and the channel can tell it from a network failure.
        addresses = vetted(self.host, self.port)
        error: OSError = OSError(f"no address of {self.host} accepted a connection")
        for _, (family, kind, proto, _canon, sockaddr) in addresses:
            sock = socket.socket(family, kind, proto)
            try:
                for option in self.socket_options or ():
                    sock.setsockopt(*option)
                if isinstance(self.timeout, int | float):
                    sock.settimeout(self.timeout)
                if self.source_address:
                    sock.bind(self.source_address)
                sock.connect(sockaddr)
                return sock
            except OSError as exc:
                sock.close()
                error = exc
        # The same exceptions urllib3's own connect raises, so requests classifies them alike.
        if isinstance(error, TimeoutError):
            raise ConnectTimeoutError(self, f"connection to {self.host} timed out") from error
        raise NewConnectionError(self, f"failed to establish a new connection: {error}") from error


class _GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
    pass


class _GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
    pass


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose connections only ever go to public addresses."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _GuardedHTTPPool,
            "https": _GuardedHTTPSPool,
        }
