"""Public posts on Bluesky through the atproto SDK: one ``app.bsky.feed.post`` per announcement.

Each post of an incident replies to the previous one (root: the incident's first post).
Bluesky has no idempotency key, so the record key is derived from ours: a retried post
reuses its record key, the PDS refuses a second record under it, and we return the one
already there. Without a handle and an app password the channel uses the outbox transport.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, ClassVar

from atproto_core.exceptions import AtProtocolError

if TYPE_CHECKING:
    from atproto import Client, Session, SessionEvent, models
    from atproto_client.exceptions import RequestErrorBase

from channels import outbox
from channels.base import (
    ChannelConfigError,
    ChannelFacts,
    DeliveryError,
    Meter,
    NullMeter,
    PermanentDeliveryError,
    PublicPost,
    PublishResult,
    TransientDeliveryError,
    parse_retry_after,
)

log = logging.getLogger(__name__)

# The base32 alphabet of TIDs (timestamp identifiers), in sort order.
_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"


@functools.cache
def _sdk() -> SimpleNamespace:
    """The atproto SDK (and httpx under it), imported on first use: importing them takes
    most of a second (the generated models), which every command and worker would
    otherwise pay at start-up."""
    import httpx
    from atproto import Client, Request, client_utils, models
    from atproto_client.exceptions import NetworkError, RequestErrorBase
    from atproto_client.models.common import XrpcError

    return SimpleNamespace(
        Client=Client,
        Request=Request,
        client_utils=client_utils,
        models=models,
        Facet=models.AppBskyRichtextFacet,
        NetworkError=NetworkError,
        RequestErrorBase=RequestErrorBase,
        XrpcError=XrpcError,
        HTTPError=httpx.HTTPError,
    )


class BlueskyChannel(ChannelFacts):
    """Bluesky, one network of the ``social`` channel (the outbox when not configured)."""

    name: ClassVar[str] = "bluesky"
    provider: ClassVar[str] = "bluesky"
    limit: ClassVar[int] = 300  # graphemes (and 3,000 bytes)
    url_length: ClassVar[int | None] = None  # a link counts in full (facets make it clickable)
    rate_setting: ClassVar[str] = "BLUESKY_RATE"
    rate: ClassVar[float] = 0.4  # posts/s
    collection: ClassVar[str] = "app.bsky.feed.post"
    # The entryway: after login the SDK talks to the account's own PDS (from its DID document).
    default_base_url: ClassVar[str] = "https://bsky.social"
    web_url: ClassVar[str] = "https://bsky.app"  # where people open a post
    default_retry_after: ClassVar[float] = 60.0  # a 429 without a usable ratelimit-reset
    # What XRPC status codes mean for a post, for reasons without a server message.
    http_errors: ClassVar[dict[int, str]] = {
        400: "invalid request",
        401: "authentication required (handle or app password wrong, or session revoked)",
        403: "forbidden",
        404: "not found",
        409: "conflict",
        413: "payload too large",
        429: "rate limited",
        500: "internal server error",
        501: "method not implemented",
        502: "bad gateway",
        503: "service unavailable",
        504: "gateway timeout",
    }
    # Worth retrying: the server or the network, or credentials a person can fix meanwhile.
    transient_statuses: ClassVar[frozenset[int]] = frozenset({401, 403, 408, 429})
    # XRPC error names (HTTP 400) that are not about the post itself.
    transient_errors: ClassVar[frozenset[str]] = frozenset(
        {"ExpiredToken", "InvalidToken", "ConcurrentWrites"}
    )
    # The session is no good any more: log in again, once, and repeat the request.
    session_errors: ClassVar[frozenset[str]] = frozenset(
        {"ExpiredToken", "InvalidToken", "AuthenticationRequired"}
    )

    def __init__(self, config: Mapping[str, Any], meter: Meter | None = None) -> None:
        handle = config.get("BLUESKY_HANDLE")
        password = config.get("BLUESKY_APP_PASSWORD")
        if handle and not password:
            raise ChannelConfigError("bluesky: BROADCASTER_BLUESKY_APP_PASSWORD is not set")
        if password and not handle:
            raise ChannelConfigError("bluesky: BROADCASTER_BLUESKY_HANDLE is not set")
        self.transport = self.provider if handle else "outbox"
        self.base_url = str(config.get("BLUESKY_BASE_URL") or self.default_base_url).rstrip("/")
        self.handle = str(handle or "")
        self._password = str(password or "")
        self.client: Client | None = None
        self._account: tuple[str, str] | None = None  # (did, handle) of the current session
        self._login_lock = threading.Lock()
        self.meter = meter if meter is not None else NullMeter()
        if handle:
            timeout = float(config.get("PROVIDER_TIMEOUT", 15))
            sdk = _sdk()
            self.client = sdk.Client(base_url=self.base_url, request=sdk.Request(timeout=timeout))
            self.client.on_session_change(self._on_session)

    @classmethod
    def sender_id(cls, config: Mapping[str, Any]) -> str:
        """The account: Bluesky limits writes per account."""
        return f"{cls.provider}:{config.get('BLUESKY_HANDLE')}"

    def publish(self, post: PublicPost) -> PublishResult:
        """Post ``post.text`` with its links clickable, replying to ``post.reply_to`` when given."""
        if self.client is None:
            return outbox.publish(post)
        sdk = _sdk()
        rkey = record_key(post.idempotency_key, post.event.get("published_at"))
        record = sdk.models.AppBskyFeedPost.Record(
            created_at=_now(),
            text=post.text,
            langs=[post.locale.replace("_", "-")],
            facets=link_facets(post.text, post.link) or None,
            reply=_reply_ref(post.reply_to),
        )
        started, status = time.perf_counter(), None
        try:
            did, handle = self._logged_in()
            try:
                uri, cid, root = self._create(did, rkey, record)
            except sdk.RequestErrorBase as exc:
                if not self._session_gone(exc):
                    raise
                # The SDK refreshes a session before it expires; this is a refresh token
                # that expired too or a session that was revoked.
                did, handle = self._logged_in(fresh=True)
                uri, cid, root = self._create(did, rkey, record)
            status = 200
        except AtProtocolError as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            raise self._classify(exc) from exc
        except sdk.HTTPError as exc:  # what the SDK does not wrap (e.g. a protocol error)
            raise TransientDeliveryError(f"bluesky unreachable: {exc!r}") from exc
        finally:
            # The SDK has no response hook: time the whole post (login included when needed).
            self.meter.call("bluesky", time.perf_counter() - started, status)
        parent = {"uri": uri, "cid": cid}
        return PublishResult(
            provider_id=uri,
            url=f"{self.web_url}/profile/{handle}/post/{uri.rsplit('/', 1)[-1]}",
            # The first post of a thread is its own root; the next post replies to this one.
            thread={"root": root or parent, "parent": parent},
        )

    def _on_session(self, event: SessionEvent, session: Session) -> None:
        self._account = (session.did, session.handle)

    def _logged_in(self, fresh: bool = False) -> tuple[str, str]:
        """(did, handle), logging in on first use; the SDK refreshes the session after that."""
        assert self.client is not None
        with self._login_lock:
            if fresh or self._account is None:
                self._account = None
                # The profile lookup would be one more request, and one more way to fail.
                self.client.login(self.handle, self._password, fetch_bsky_profile=False)
            assert self._account is not None
            return self._account

    def _create(
        self, did: str, rkey: str, record: models.AppBskyFeedPost.Record
    ) -> tuple[str, str, dict[str, str] | None]:
        """(uri, cid, thread root or None) of the record, created now or by an earlier try."""
        assert self.client is not None
        sdk = _sdk()
        data = sdk.models.ComAtprotoRepoCreateRecord.Data(
            repo=did, collection=self.collection, rkey=rkey, record=record
        )
        try:
            created = self.client.com.atproto.repo.create_record(data)
        except sdk.RequestErrorBase as exc:
            if not _may_already_exist(exc):
                raise
            existing = self._existing(did, rkey)
            if existing is None:
                raise
            log.info("bluesky: %s was created by an earlier try; not posting again", existing[0])
            return existing
        root = record.reply.root if record.reply else None
        return created.uri, created.cid, ({"uri": root.uri, "cid": root.cid} if root else None)

    def _existing(self, did: str, rkey: str) -> tuple[str, str, dict[str, str] | None] | None:
        """The record under ``rkey`` if there is one (None also when we cannot tell)."""
        assert self.client is not None
        params = _sdk().models.ComAtprotoRepoGetRecord.Params(
            repo=did, collection=self.collection, rkey=rkey
        )
        try:
            found = self.client.com.atproto.repo.get_record(params)
        except (AtProtocolError, _sdk().HTTPError):
            return None
        if not found.cid:
            return None
        root = _field(_field(found.value, "reply"), "root")
        root_ref = {"uri": _field(root, "uri"), "cid": _field(root, "cid")} if root else None
        return found.uri, found.cid, root_ref

    def _session_gone(self, exc: RequestErrorBase) -> bool:
        if exc.response is None:
            return False
        error, _ = _xrpc_error(exc.response)
        return exc.response.status_code == 401 or error in self.session_errors

    def _classify(self, exc: AtProtocolError) -> DeliveryError:
        response = getattr(exc, "response", None)
        if response is None:
            if isinstance(exc, _sdk().NetworkError):  # also InvokeTimeoutError
                return TransientDeliveryError(f"bluesky unreachable: {exc.__cause__ or exc!r}")
            # An unreadable answer: the post may exist, and its record key finds it again.
            return TransientDeliveryError(f"bluesky: {exc!r}")
        status = response.status_code
        error, message = _xrpc_error(response)
        detail = ": ".join(x for x in (error, message) if x) or self.http_errors.get(status, "")
        reason = f"bluesky HTTP {status}: {detail}"
        headers = response.headers or {}
        if status == 429:
            return TransientDeliveryError(reason, self._retry_after(headers))
        if status >= 500 or status in self.transient_statuses or error in self.transient_errors:
            return TransientDeliveryError(reason, parse_retry_after(headers.get("retry-after")))
        return PermanentDeliveryError(reason)

    def _retry_after(self, headers: Mapping[str, str]) -> float:
        """Seconds until ``ratelimit-reset`` (epoch seconds), measured on the server's clock."""
        try:
            reset = datetime.fromtimestamp(int(headers["ratelimit-reset"]), UTC)
        except (KeyError, TypeError, ValueError):
            return parse_retry_after(headers.get("retry-after")) or self.default_retry_after
        now = datetime.now(UTC)
        if headers.get("date"):
            try:
                now = parsedate_to_datetime(headers["date"])
            except (TypeError, ValueError):
                pass
        return max(0.0, (reset - now).total_seconds())


def record_key(idempotency_key: str, published_at: Any = None) -> str:
    """A TID-shaped record key, the same for every try of one post.

    ``app.bsky.feed.post`` records are keyed by TID (13 base32 characters: 53 bits of
    microseconds, 10 bits of clock id); the App View does not show posts with other keys.
    With the announcement's publication time the key is an honest TID whose clock id comes
    from our key; without it, all 63 bits come from a hash of our key.
    """
    digest = int.from_bytes(hashlib.sha256(idempotency_key.encode()).digest()[:8], "big")
    micros = _micros(published_at)
    value = (micros << 10) | (digest & 0x3FF) if micros is not None else digest >> 1
    return "".join(_TID_ALPHABET[(value >> shift) & 31] for shift in range(60, -1, -5))


def link_facets(text: str, link: str) -> list[models.AppBskyRichtextFacet.Main]:
    """Link facets (UTF-8 byte ranges) for every URL in ``text``, ``link`` always among them."""
    sdk = _sdk()
    _Facet = sdk.Facet
    facets = [
        facet
        for facet in sdk.client_utils.detect_facets(text)
        if any(isinstance(feature, _Facet.Link) for feature in facet.features)
    ]
    start = text.rfind(link) if link else -1
    if start >= 0 and not any(
        getattr(feature, "uri", None) == link for facet in facets for feature in facet.features
    ):
        byte_start = len(text[:start].encode())
        byte_end = byte_start + len(link.encode())
        facets = [
            f for f in facets if f.index.byte_end <= byte_start or f.index.byte_start >= byte_end
        ]
        facets.append(
            _Facet.Main(
                features=[_Facet.Link(uri=link)],
                index=_Facet.ByteSlice(byte_start=byte_start, byte_end=byte_end),
            )
        )
    return sorted(facets, key=lambda facet: facet.index.byte_start)


def _reply_ref(reply_to: Mapping[str, Any] | None) -> models.AppBskyFeedPost.ReplyRef | None:
    """The reply reference from a previous post's ``thread`` (None for an outbox thread)."""
    if not reply_to:
        return None
    if isinstance(reply_to.get("parent"), Mapping):
        parent = reply_to["parent"]
        root = reply_to.get("root") or parent
    elif reply_to.get("uri") and reply_to.get("cid"):
        parent = {"uri": reply_to["uri"], "cid": reply_to["cid"]}
        root = {"uri": reply_to.get("root_uri") or parent["uri"]}
        root["cid"] = reply_to.get("root_cid") or parent["cid"]
    else:
        return None
    if not (parent.get("uri") and parent.get("cid") and root.get("uri") and root.get("cid")):
        return None
    models = _sdk().models
    return models.AppBskyFeedPost.ReplyRef(
        root=models.ComAtprotoRepoStrongRef.Main(uri=root["uri"], cid=root["cid"]),
        parent=models.ComAtprotoRepoStrongRef.Main(uri=parent["uri"], cid=parent["cid"]),
    )


def _may_already_exist(exc: RequestErrorBase) -> bool:
    """Could this be the PDS refusing a record key that is taken?

    The reference PDS answers 500 InternalServerError today; others answer 409 or a 400
    ``RecordAlreadyExists``. Whichever it is, a look at the record key tells.
    """
    if exc.response is None:
        return False
    status = exc.response.status_code
    error, message = _xrpc_error(exc.response)
    return (
        status == 409
        or status >= 500
        or "AlreadyExists" in (error or "")
        or "already exists" in (message or "").lower()
    )


def _xrpc_error(response: Any) -> tuple[str | None, str | None]:
    """(error, message) of an XRPC error body."""
    content = response.content
    if isinstance(content, _sdk().XrpcError):
        return content.error, content.message
    if isinstance(content, Mapping):
        return content.get("error"), content.get("message")
    if isinstance(content, bytes) and content:
        return None, content[:300].decode(errors="replace")
    return None, None


def _field(obj: Any, name: str) -> Any:
    """A field of an SDK model or of a plain mapping."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _micros(when: Any) -> int | None:
    """Microseconds since the epoch from epoch seconds or an ISO 8601 time (None if neither)."""
    if when is None or isinstance(when, bool):
        return None
    if isinstance(when, int | float):
        seconds = float(when)
    else:
        try:
            parsed = datetime.fromisoformat(str(when))
        except ValueError:
            return None
        seconds = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    micros = int(seconds * 1_000_000)
    return micros if 0 < micros < 2**53 else None


def _now() -> str:
    """The current time as atproto writes it: UTC, milliseconds, ``Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
