"""Small fake Mastodon and Bluesky (PDS) servers on 127.0.0.1 for the real SDKs to talk to.

Each checks the wire format the real server expects (``violations``: tests assert it stays
empty), keeps what it accepted (``posts``), answers the way the real server does (status
JSON, XRPC errors, rate-limit headers), and can be told to fail the next requests.
"""

from __future__ import annotations

import base64
import hashlib
import html
import itertools
import json
import re
import secrets
import time
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

import regex

from tests.fakes import FakeProvider, Scripted

Answer = tuple[int, dict[str, str], Any]


@dataclass
class _Aimed(Scripted):
    """A canned answer for the next ``times`` requests to ``endpoint`` (None: any request)."""

    endpoint: str | None = None


class _SocialFake(FakeProvider):
    """FakeProvider that also answers GET and can aim a failure at one endpoint."""

    def __init__(self) -> None:
        super().__init__()
        provider = self
        base: type[BaseHTTPRequestHandler] = self.server.RequestHandlerClass  # type: ignore[assignment]

        class Handler(base):  # type: ignore[valid-type,misc]
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                status, headers, body = provider.route("GET", self.path, dict(self.headers), b"")
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

        # Looked up per connection, so the running server picks it up.
        self.server.RequestHandlerClass = Handler

    def fail_next(
        self,
        status: int,
        times: int = 1,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        endpoint: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests (to ``endpoint``, a path) with ``status``."""
        with self.lock:
            self.script.append(
                _Aimed(status, times, headers=headers or {}, body=body or {}, endpoint=endpoint)
            )

    def _scripted_for(self, path: str) -> Scripted | None:
        with self.lock:
            for index, current in enumerate(self.script):
                endpoint = getattr(current, "endpoint", None)
                if endpoint is None or endpoint == path:
                    current.times -= 1
                    if current.times <= 0:
                        self.script.pop(index)
                    return current
        return None

    def handle(self, path: str, headers: dict[str, str], raw: bytes) -> Answer:
        return self.route("POST", path, headers, raw)

    def route(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> Answer:
        """One request: check it, then answer scripted, refused or accepted; log it."""
        generation = self.generation
        lower = {key.lower(): value for key, value in headers.items()}
        url = urllib.parse.urlsplit(target)
        query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        problems: list[str] = []
        record: dict[str, Any] = {"method": method, "path": url.path, "query": query}
        if self.delay:
            time.sleep(self.delay)
        scripted = self._scripted_for(url.path)
        if scripted and scripted.stall:
            time.sleep(scripted.stall)
        if scripted and scripted.status:
            # The server failed before looking at the request: nothing happens.
            answer = (scripted.status, {**self.common_headers(), **scripted.headers}, scripted.body)
        else:
            answer = self.answer(method, url.path, query, lower, raw, problems, record)
        record["status"] = answer[0]
        record["at"] = time.monotonic()
        self._log(generation, record, problems)
        return answer

    def answer(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        raw: bytes,
        problems: list[str],
        record: dict[str, Any],
    ) -> Answer:
        raise NotImplementedError

    def common_headers(self) -> dict[str, str]:
        return {}


# --- Mastodon ------------------------------------------------------------------------------

# As Mastodon counts: an http(s) URL (without trailing sentence punctuation) is 23 characters.
_MASTODON_URL = regex.compile(r"https?://[^\s]+?(?=[.,;:!?)\]}'\"»]*(?:\s|$))", regex.IGNORECASE)
_GRAPHEME = regex.compile(r"\X")


def mastodon_length(text: str) -> int:
    """Length as Mastodon's StatusLengthValidator counts it: grapheme clusters, URLs as 23."""
    return len(_GRAPHEME.findall(_MASTODON_URL.sub("x" * FakeMastodon.URL_LENGTH, text)))


class FakeMastodon(_SocialFake):
    """``POST /api/v1/statuses`` as Mastodon answers it (Idempotency-Key honoured)."""

    TOKEN = "mastodon-test-token"
    USERNAME = "acme"
    ACCOUNT_ID = "109000000000000001"
    LIMIT = 500
    URL_LENGTH = 23
    RATE_LIMIT = 300
    VISIBILITIES = ("public", "unlisted", "private", "direct")

    def __init__(self) -> None:
        super().__init__()
        self.posts: list[dict[str, Any]] = []  # accepted statuses, as returned
        self.replays: list[str] = []  # Idempotency-Keys answered with the status they made
        self.deleted: set[str] = set()  # status ids to treat as deleted by hand
        self._by_key: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.posts.clear()
            self.replays.clear()
            self.deleted.clear()
            self._by_key.clear()

    def status(self, status_id: str) -> dict[str, Any] | None:
        return next((s for s in self.posts if s["id"] == status_id), None)

    def common_headers(self) -> dict[str, str]:
        reset = datetime.fromtimestamp((int(time.time()) // 10800 + 1) * 10800, UTC)
        return {
            "X-RateLimit-Limit": str(self.RATE_LIMIT),
            "X-RateLimit-Remaining": str(max(0, self.RATE_LIMIT - len(self.posts))),
            "X-RateLimit-Reset": reset.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }

    def answer(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        raw: bytes,
        problems: list[str],
        record: dict[str, Any],
    ) -> Answer:
        common = self.common_headers()
        if (method, path) != ("POST", "/api/v1/statuses"):
            problems.append(f"unexpected request {method} {path}")
            return 404, common, {"error": "Record not found"}
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            problems.append("no Authorization bearer token")
        if auth != f"Bearer {self.TOKEN}":  # a wrong token is the account's problem, not ours
            return 401, common, {"error": "The access token is invalid"}
        content_type = headers.get("content-type", "")
        if content_type.startswith("application/x-www-form-urlencoded"):
            form = {k: v[-1] for k, v in urllib.parse.parse_qs(raw.decode()).items()}
        elif content_type.startswith("application/json"):
            form = {k: v for k, v in json.loads(raw or b"{}").items() if v is not None}
        else:
            problems.append(f"body is neither form-encoded nor JSON ({content_type!r})")
            form = {}
        key = headers.get("idempotency-key")
        record.update(form=form, idempotency_key=key)
        text = str(form.get("status") or "")
        visibility = form.get("visibility", "public")
        language = form.get("language")
        reply_id = form.get("in_reply_to_id")
        if not key:
            problems.append("no Idempotency-Key header: a retried job would post twice")
        if visibility not in self.VISIBILITIES:
            problems.append(f"visibility {visibility!r} (want one of {self.VISIBILITIES})")
        if language is not None and not re.fullmatch(r"[a-z]{2,3}", str(language)):
            problems.append(f"language {language!r} is not an ISO 639 code")
        with self.lock:
            if key and key in self._by_key:
                # Mastodon (PostStatusService) answers a known key with the status it made.
                self.replays.append(key)
                return 200, common, self._by_key[key]
        if problems:
            return 422, common, {"error": f"Validation failed: {'; '.join(problems)}"}
        if not text.strip():
            return 422, common, {"error": "Validation failed: Text can't be blank"}
        if mastodon_length(text) > self.LIMIT:
            message = f"Validation failed: Text character limit of {self.LIMIT} exceeded"
            return 422, common, {"error": message}
        with self.lock:
            if reply_id and (reply_id in self.deleted or self.status(reply_id) is None):
                message = "The post you are trying to reply to does not appear to exist."
                return 404, common, {"error": message}
            status = self._status(text, visibility, language, reply_id)
            self.posts.append(status)
            if key:
                self._by_key[key] = status
        return 200, common, status

    def _status(
        self, text: str, visibility: str, language: str | None, reply_id: str | None
    ) -> dict[str, Any]:
        status_id = str((int(time.time() * 1000) << 16) + next(self._ids))
        paragraphs = html.escape(text).split("\n\n")
        content = "".join(f"<p>{p.replace(chr(10), '<br />')}</p>" for p in paragraphs)
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        return {
            "id": status_id,
            "created_at": now,
            "in_reply_to_id": reply_id,
            "in_reply_to_account_id": self.ACCOUNT_ID if reply_id else None,
            "sensitive": False,
            "spoiler_text": "",
            "visibility": visibility,
            "language": language,
            "uri": f"{self.url}/users/{self.USERNAME}/statuses/{status_id}",
            "url": f"{self.url}/@{self.USERNAME}/{status_id}",
            "replies_count": 0,
            "reblogs_count": 0,
            "favourites_count": 0,
            "edited_at": None,
            "content": content,
            "reblog": None,
            "application": {"name": "crisis-broadcaster", "website": None},
            "account": {
                "id": self.ACCOUNT_ID,
                "username": self.USERNAME,
                "acct": self.USERNAME,
                "display_name": "Acme Energy",
                "locked": False,
                "bot": True,
                "discoverable": True,
                "group": False,
                "created_at": "2024-01-01T00:00:00.000Z",
                "note": "",
                "url": f"{self.url}/@{self.USERNAME}",
                "avatar": f"{self.url}/avatars/original/missing.png",
                "avatar_static": f"{self.url}/avatars/original/missing.png",
                "header": f"{self.url}/headers/original/missing.png",
                "header_static": f"{self.url}/headers/original/missing.png",
                "followers_count": 0,
                "following_count": 0,
                "statuses_count": len(self.posts) + 1,
                "last_status_at": now[:10],
                "emojis": [],
                "fields": [],
            },
            "media_attachments": [],
            "mentions": [],
            "tags": [],
            "emojis": [],
            "card": None,
            "poll": None,
        }


# --- Bluesky -------------------------------------------------------------------------------

_TID = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_LANGUAGE = re.compile(r"^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{1,8})*$")
_HTTP_URL = re.compile(r"https?://[^\s]+")
_POST = "app.bsky.feed.post"
_LINK = "app.bsky.richtext.facet#link"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _cid(data: Any) -> str:
    """A CIDv1 (dag-cbor, sha2-256) string, as the PDS returns for a record."""
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).digest()
    encoded = base64.b32encode(bytes([0x01, 0x71, 0x12, 0x20]) + digest).decode()
    return "b" + encoded.lower().rstrip("=")


class FakeBluesky(_SocialFake):
    """A PDS: createSession, refreshSession, createRecord and getRecord over XRPC."""

    HANDLE = "acme-energy.bsky.social"
    DID = "did:plc:acmeenergy7test2xyz4abcd"
    APP_PASSWORD = "abcd-efgh-ijkl-mnop"
    MAX_GRAPHEMES = 300
    MAX_BYTES = 3000
    RATE_LIMIT = 5000

    def __init__(self) -> None:
        super().__init__()
        self.posts: list[dict[str, Any]] = []  # accepted records: uri, cid, rkey, value
        self.refused_duplicates: list[str] = []  # record keys refused because they were taken
        # How a taken record key is refused: "internal" (500, the reference PDS today),
        # "conflict" (409 RecordAlreadyExists) or "invalid" (400 RecordAlreadyExists).
        self.duplicate_answer = "internal"
        self.access_ttl = 7200.0  # seconds an access JWT lives (the SDK refreshes <15 min before)
        self._access: dict[str, float] = {}  # live access tokens → exp
        self._refresh: dict[str, float] = {}  # live refresh tokens → exp
        self._revoked: set[str] = set()

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.posts.clear()
            self.refused_duplicates.clear()
            self.duplicate_answer = "internal"
            self.access_ttl = 7200.0
            self._access.clear()
            self._refresh.clear()
            self._revoked.clear()

    def revoke_sessions(self) -> None:
        """Every token issued so far now answers 400 ExpiredToken (the SDK cannot tell)."""
        with self.lock:
            self._revoked.update(self._access)
            self._revoked.update(self._refresh)

    def calls(self, nsid: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == f"/xrpc/{nsid}"]

    def find(self, uri: str) -> dict[str, Any] | None:
        return next((p for p in self.posts if p["uri"] == uri), None)

    def common_headers(self) -> dict[str, str]:
        return {
            "ratelimit-limit": str(self.RATE_LIMIT),
            "ratelimit-remaining": str(self.RATE_LIMIT - len(self.requests)),
            "ratelimit-reset": str(int(time.time()) + 3600),
            "ratelimit-policy": f"{self.RATE_LIMIT};w=3600",
        }

    def _jwt(self, scope: str, ttl: float) -> tuple[str, float]:
        now = time.time()
        header = {"typ": "at+jwt" if scope != "com.atproto.refresh" else "refresh+jwt"}
        header["alg"] = "ES256K"
        claims = {
            "scope": scope,
            "sub": self.DID,
            "aud": "did:web:pds.fake",
            "iat": int(now),
            "exp": int(now + ttl),
            "jti": secrets.token_hex(8),
        }
        parts = [json.dumps(header).encode(), json.dumps(claims).encode(), secrets.token_bytes(64)]
        return ".".join(_b64url(p) for p in parts), now + ttl

    def _session(self) -> dict[str, Any]:
        access, access_exp = self._jwt("com.atproto.appPass", self.access_ttl)
        refresh, refresh_exp = self._jwt("com.atproto.refresh", 90 * 86400)
        with self.lock:
            self._access[access] = access_exp
            self._refresh[refresh] = refresh_exp
        return {
            "did": self.DID,
            "handle": self.HANDLE,
            "accessJwt": access,
            "refreshJwt": refresh,
            "active": True,
            "didDoc": {
                "@context": ["https://www.w3.org/ns/did/v1"],
                "id": self.DID,
                "alsoKnownAs": [f"at://{self.HANDLE}"],
                "verificationMethod": [],
                "service": [
                    {
                        "id": "#atproto_pds",
                        "type": "AtprotoPersonalDataServer",
                        "serviceEndpoint": self.url,
                    }
                ],
            },
        }

    def _token_error(self, headers: dict[str, str], live: dict[str, float]) -> Answer | None:
        """None if the bearer token is live, else the PDS's answer."""
        auth = headers.get("authorization", "")
        token = auth.removeprefix("Bearer ")
        common = self.common_headers()
        with self.lock:
            if not auth.startswith("Bearer ") or token not in live:
                return (
                    401,
                    common,
                    {"error": "InvalidToken", "message": "Token could not be verified"},
                )
            if token in self._revoked or live[token] <= time.time():
                return 400, common, {"error": "ExpiredToken", "message": "Token has expired"}
        return None

    def answer(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        raw: bytes,
        problems: list[str],
        record: dict[str, Any],
    ) -> Answer:
        common = self.common_headers()
        nsid = path.removeprefix("/xrpc/")
        body: dict[str, Any] = {}
        if method == "POST" and raw:
            if not headers.get("content-type", "").startswith("application/json"):
                problems.append(f"{nsid}: body is not JSON")
            try:
                body = json.loads(raw)
            except ValueError:
                problems.append(f"{nsid}: body does not parse as JSON")
        record["json"] = body
        if (method, nsid) == ("POST", "com.atproto.server.createSession"):
            if body.get("identifier") in (self.HANDLE, self.DID) and (
                body.get("password") == self.APP_PASSWORD
            ):
                return 200, common, self._session()
            message = "Invalid identifier or password"
            return 401, common, {"error": "AuthenticationRequired", "message": message}
        if (method, nsid) == ("POST", "com.atproto.server.refreshSession"):
            refused = self._token_error(headers, self._refresh)
            if refused:
                return refused
            with self.lock:  # refresh tokens are single-use
                self._refresh.pop(headers["authorization"].removeprefix("Bearer "), None)
            return 200, common, self._session()
        if (method, nsid) == ("POST", "com.atproto.repo.createRecord"):
            refused = self._token_error(headers, self._access)
            return refused or self._create_record(body, problems)
        if (method, nsid) == ("GET", "com.atproto.repo.getRecord"):
            return self._get_record(query, problems)
        problems.append(f"unexpected request {method} {path}")
        message = f"Method Not Implemented: {nsid}"
        return 501, common, {"error": "MethodNotImplemented", "message": message}

    def _create_record(self, body: dict[str, Any], problems: list[str]) -> Answer:
        common = self.common_headers()
        if body.get("repo") not in (self.DID, self.HANDLE):
            problems.append(f"createRecord: repo {body.get('repo')!r} is not the session's")
        if body.get("collection") != _POST:
            problems.append(f"createRecord: collection {body.get('collection')!r}")
        rkey = body.get("rkey")
        if rkey is not None and not _TID.match(str(rkey)):
            problems.append(f"createRecord: rkey {rkey!r} is no TID ({_POST} is keyed by tid)")
        value = body.get("record")
        if not isinstance(value, dict):
            problems.append("createRecord: no record object")
            value = {}
        problems.extend(self._check_post(value))
        if problems:
            message = f"Invalid {_POST} record: {'; '.join(problems)}"
            return 400, common, {"error": "InvalidRequest", "message": message}
        text = value.get("text", "")
        if len(_GRAPHEME.findall(text)) > self.MAX_GRAPHEMES:
            message = f"Invalid {_POST} record: Record/text must not be longer than 300 graphemes"
            return 400, common, {"error": "InvalidRequest", "message": message}
        if len(text.encode()) > self.MAX_BYTES:
            message = f"Invalid {_POST} record: Record/text must not be longer than 3000 characters"
            return 400, common, {"error": "InvalidRequest", "message": message}
        rkey = rkey or self._tid()
        uri = f"at://{self.DID}/{_POST}/{rkey}"
        with self.lock:
            if self.find(uri) is not None:
                self.refused_duplicates.append(rkey)
                return self._duplicate(uri)
            post = {"uri": uri, "cid": _cid(value), "rkey": rkey, "value": value}
            self.posts.append(post)
        commit = {"cid": _cid({"commit": uri}), "rev": self._tid()}
        answer = {"uri": uri, "cid": post["cid"], "commit": commit, "validationStatus": "valid"}
        return 200, common, answer

    def _duplicate(self, uri: str) -> Answer:
        common = self.common_headers()
        if self.duplicate_answer == "conflict":
            message = f"Record already exists: {uri}"
            return 409, common, {"error": "RecordAlreadyExists", "message": message}
        if self.duplicate_answer == "invalid":
            message = f"Record already exists: {uri}"
            return 400, common, {"error": "RecordAlreadyExists", "message": message}
        # The reference PDS: the MST refuses the key ("There is already a value at key").
        return 500, common, {"error": "InternalServerError", "message": "Internal Server Error"}

    def _get_record(self, query: dict[str, str], problems: list[str]) -> Answer:
        common = self.common_headers()
        for name in ("repo", "collection", "rkey"):
            if not query.get(name):
                problems.append(f"getRecord: no {name} parameter")
        uri = f"at://{self.DID}/{query.get('collection')}/{query.get('rkey')}"
        with self.lock:
            post = self.find(uri) if query.get("repo") in (self.DID, self.HANDLE) else None
        if post is None:
            message = f"Could not locate record: {uri}"
            return 400, common, {"error": "RecordNotFound", "message": message}
        return 200, common, {"uri": post["uri"], "cid": post["cid"], "value": post["value"]}

    def _check_post(self, value: dict[str, Any]) -> list[str]:
        """Wire-format problems of an ``app.bsky.feed.post`` record."""
        problems = []
        if value.get("$type") != _POST:
            problems.append(f"record $type {value.get('$type')!r}")
        text = value.get("text")
        if not isinstance(text, str):
            problems.append("record has no text")
            text = ""
        if not _DATETIME.match(str(value.get("createdAt", ""))):
            problems.append(f"createdAt {value.get('createdAt')!r} is not an atproto datetime")
        langs = value.get("langs", [])
        if not isinstance(langs, list) or len(langs) > 3:
            problems.append(f"langs {langs!r}")
        else:
            problems += [
                f"lang {lang!r} is not BCP-47" for lang in langs if not _LANGUAGE.match(lang)
            ]
        problems += self._check_facets(text, value.get("facets") or [])
        if "reply" in value:
            problems += self._check_reply(value["reply"])
        return problems

    def _check_facets(self, text: str, facets: list[dict[str, Any]]) -> list[str]:
        problems = []
        data = text.encode()
        for facet in facets:
            index = facet.get("index") or {}
            start, end = index.get("byteStart"), index.get("byteEnd")
            if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end):
                problems.append(f"facet index {index!r}")
                continue
            if end > len(data):
                problems.append(f"facet {start}..{end} is past the text's {len(data)} bytes")
                continue
            try:
                covered = data[start:end].decode()
            except UnicodeDecodeError:
                problems.append(f"facet {start}..{end} cuts a UTF-8 character")
                continue
            for feature in facet.get("features") or []:
                if feature.get("$type") == _LINK:
                    uri = str(feature.get("uri", ""))
                    if covered not in (uri, uri.removeprefix("https://")):
                        problems.append(
                            f"link facet {start}..{end} covers {covered!r}, not {uri!r}"
                        )
        return problems

    def _check_reply(self, reply: Any) -> list[str]:
        """A reply's root and parent must be earlier posts, and the root the parent's root."""
        if not isinstance(reply, dict):
            return [f"reply {reply!r}"]
        refs = {}
        for name in ("root", "parent"):
            ref = reply.get(name) or {}
            post = self.find(str(ref.get("uri")))
            if post is None or post["cid"] != ref.get("cid"):
                return [f"reply {name} {ref!r} is no earlier post (uri and cid)"]
            refs[name] = post
        parent_root = (refs["parent"]["value"].get("reply") or {}).get("root") or {
            "uri": refs["parent"]["uri"]
        }
        if parent_root.get("uri") != refs["root"]["uri"]:
            return [f"reply root {refs['root']['uri']} is not the parent's root {parent_root}"]
        return []

    def _tid(self) -> str:
        value = (int(time.time() * 1_000_000) << 10) | secrets.randbelow(1024)
        alphabet = "234567abcdefghijklmnopqrstuvwxyz"
        return "".join(alphabet[(value >> shift) & 31] for shift in range(60, -1, -5))


def http_urls(text: str) -> list[str]:
    """The http(s) URLs in ``text`` (for tests checking every one is a link facet)."""
    return [url.rstrip(".,;:!?") for url in _HTTP_URL.findall(text)]
