"""A per-process microcache in front of Flask for the public, anonymous pages.

Every site of the organisation polls ``/banner.json`` (``banner.js`` revalidates with
``If-None-Match`` on each poll), and in a crisis the status page gets the same crowd. The
answer only changes when something is published, so each web process keeps the finished
response — status, headers, body — for ``BANNER_PROCESS_CACHE`` seconds and answers
repeats without entering Flask at all (nginx's "microcaching"): Flask's per-request work,
not Redis, is what limits these pages.

Only GET/HEAD of :data:`PATHS` are looked at, and only a 200 that says
``Cache-Control: public``, sets no cookie and varies on nothing but ``Accept-Language`` is
kept. When an entry expires, one thread fetches it again while the others go on
answering from the expired entry, so a busy page is rendered once per TTL per process,
not once per thread. The key is the path and what the page makes of the request: a page
registers, with :func:`key_by`, a function that reduces the environ to the parameters it understands
(normalised: ``lang`` only if it is a locale the plan speaks, the language
``Accept-Language`` resolves to, ``page``), so ``?cb=123`` and ``?cb=124`` share one
entry and invented query strings or headers neither miss nor grow the cache. A path with
no such function is keyed by its raw query string and ``Accept-Language``. A publish in
this process calls :func:`clear`; other processes show it within the TTL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask
from werkzeug.http import http_date, is_resource_modified, remove_entity_headers

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
Headers = list[tuple[str, str]]
Key = tuple[str, ...]
KeyFunction = Callable[[Environ], tuple[str, ...]]

# Public pages whose output depends on nothing but the query string, Accept-Language and
# the published data: no session, no token, no Host (their URLs come from PUBLIC_URL).
# Never /admin, /api/v1 or /hooks: those depend on who asks and must run every time. The
# Statuspage-compatible /api/v2 documents are public ones (web/statuspage_api.py).
PATHS = frozenset(
    {
        "/banner.json",
        "/banner.js",
        "/status",
        "/status.json",
        "/status.atom",
        "/status.rss",
        "/api/v2/summary.json",
        "/api/v2/status.json",
        "/api/v2/components.json",
        "/api/v2/incidents.json",
        "/api/v2/incidents/unresolved.json",
        "/api/v2/scheduled-maintenances.json",
        "/api/v2/scheduled-maintenances/upcoming.json",
        "/api/v2/scheduled-maintenances/active.json",
    }
)
# Bounds per process, whatever query strings and Accept-Language values clients invent.
MAX_ENTRIES = 256
MAX_BYTES = 16 * 1024 * 1024
# Answered from the entry, so the app is asked for a plain 200 on a miss.
_CONDITIONAL = ("HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE")
_NOT_MODIFIED = "304 NOT MODIFIED"  # werkzeug's spelling, as Flask answers it
_KEYS = "microcache.keys"  # app.extensions: path → KeyFunction


@dataclass(frozen=True, slots=True)
class Entry:
    """A finished 200; ``Date`` is left out and stamped afresh on every answer."""

    status: str
    headers: Headers
    not_modified: Headers  # the 304's: entity headers removed, as werkzeug does
    body: bytes
    etag: str | None
    last_modified: str | None
    dated: bool  # the app sent a Date (Response.make_conditional adds one)
    expires: float  # time.monotonic()
    size: int  # body and key, counted against MAX_BYTES


class Microcache:
    """WSGI middleware: answer repeats of public GET/HEAD requests from memory."""

    def __init__(
        self,
        app: WSGIApp,
        config: Mapping[str, Any],
        paths: Iterable[str] = PATHS,
        max_entries: int = MAX_ENTRIES,
        max_bytes: int = MAX_BYTES,
        keys: Mapping[str, KeyFunction] | None = None,
    ) -> None:
        self.app = app
        # Path → what the page understands of a request (see key_by); read per request, so
        # a page may register after the cache is installed.
        self.keys = keys if keys is not None else {}
        self.config = config  # the TTL is read per request: 0 turns caching off at once
        self.paths = frozenset(paths)
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        # gthread workers: readers do plain dict lookups (atomic in CPython), writers
        # take the lock. Insertion order is age order, so the first key is the oldest.
        self._entries: dict[Key, Entry] = {}
        self._bytes = 0
        self._lock = threading.Lock()
        # Bumped by clear(): a miss computed before a publish must not be stored after it.
        self._generation = 0
        self._date: tuple[int, str] = (0, "")
        self._fetching: set[Key] = set()  # expired keys one thread is fetching again

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every entry (something was published through this process)."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0
            self._generation += 1

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if (
            environ.get("PATH_INFO") not in self.paths
            or environ.get("REQUEST_METHOD") not in ("GET", "HEAD")
            or not float(self.config.get("BANNER_PROCESS_CACHE") or 0) > 0
            # These pages ignore tokens; one sent anyway goes the long way, never stored.
            # Cookies need no such rule: these pages never read the session, and an answer
            # that sets one (Flask refreshing a signed-in person's) is never stored.
            or "HTTP_AUTHORIZATION" in environ
            # If-Match (412 on a mismatch) is too rare to re-implement here.
            or "HTTP_IF_MATCH" in environ
            # A request with a body goes through Flask, so limits.py still refuses a huge
            # one (413). Skipping the before_request hooks on a hit is safe: limits.py's
            # is the only one, and it looks at nothing but the declared body size.
            or environ.get("CONTENT_LENGTH") not in (None, "", "0")
            or "HTTP_TRANSFER_ENCODING" in environ
        ):
            return self.app(environ, start_response)
        key = self._key(environ)
        entry = self._entries.get(key)
        if entry is None or entry.expires <= time.monotonic():
            stale = entry
            if stale is not None and not self._claim(key):
                # Another thread of this process is fetching it now: rather than every
                # thread rendering the same page at once, answer from the entry that just
                # expired (kept until the fetch ends; clear() drops it after a publish).
                return self._answer(stale, environ, start_response)
            try:
                generation = self._generation
                status, headers, body, exc_info = self._fetch(environ)
            finally:
                if stale is not None:
                    self._fetching.discard(key)
            entry = _entry(status, headers, body, key, self.config)
            if entry is None:  # not a 200 (e.g. 404 for an unknown audience): as it came
                start_response(status, headers, exc_info)
                return [] if environ["REQUEST_METHOD"] == "HEAD" else [body]
            if _shareable(headers):
                self._store(key, entry, generation)
        return self._answer(entry, environ, start_response)

    def _claim(self, key: Key) -> bool:
        """Whether this thread may fetch ``key`` again (no other thread is doing it)."""
        with self._lock:
            if key in self._fetching:
                return False
            self._fetching.add(key)
            return True

    def _key(self, environ: Environ) -> Key:
        """The path plus what its page understands of the request, else the raw request."""
        path = environ["PATH_INFO"]
        understood = self.keys.get(path)
        if understood is not None:
            return (path, *understood(environ))
        return (path, environ.get("QUERY_STRING", ""), environ.get("HTTP_ACCEPT_LANGUAGE", ""))

    def _fetch(self, environ: Environ) -> tuple[str, Headers, bytes, Any]:
        """The app's answer to a plain GET of the same URL, buffered.

        Conditional headers are taken off and answered from the entry afterwards:
        otherwise, once an entry expired, clients that all revalidate (``banner.js``
        does) would only ever get 304s from the app, which are never kept.
        """
        plain = {k: v for k, v in environ.items() if k not in _CONDITIONAL}
        plain["REQUEST_METHOD"] = "GET"  # Flask answers HEAD with its GET minus the body
        captured: list[Any] = []

        def capture(status: str, headers: Headers, exc_info: Any = None) -> Callable[..., Any]:
            captured[:] = [status, headers, exc_info]
            return _no_write

        iterable = self.app(plain, capture)
        try:
            body = b"".join(iterable)
        finally:
            close = getattr(iterable, "close", None)
            if close is not None:
                close()
        status, headers, exc_info = captured
        return status, list(headers), body, exc_info

    def _store(self, key: Key, entry: Entry, generation: int) -> None:
        if entry.size > self.max_bytes // 4:
            return  # one huge page must not push out everything else
        with self._lock:
            if generation != self._generation:
                return  # computed before a publish cleared us: possibly stale already
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.size
            self._entries[key] = entry
            self._bytes += entry.size
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                self._bytes -= self._entries.pop(next(iter(self._entries))).size

    def _answer(
        self, entry: Entry, environ: Environ, start_response: StartResponse
    ) -> Iterable[bytes]:
        """The entry as Flask would send it: 304 if If-None-Match matches, no body on HEAD."""
        modified = (
            "HTTP_IF_NONE_MATCH" not in environ and "HTTP_IF_MODIFIED_SINCE" not in environ
        ) or is_resource_modified(environ, entry.etag, last_modified=entry.last_modified)
        headers = entry.headers if modified else entry.not_modified
        if entry.dated:
            headers = [*headers, ("Date", self._now())]
        start_response(entry.status if modified else _NOT_MODIFIED, headers)
        if not modified or environ["REQUEST_METHOD"] == "HEAD":
            return []
        return [entry.body]

    def _now(self) -> str:
        """This second's Date header; formatting it every time is a visible cost of a hit."""
        second = int(time.time())
        if self._date[0] != second:
            self._date = (second, http_date(second))
        return self._date[1]


def _entry(
    status: str, headers: Headers, body: bytes, key: Key, config: Mapping[str, Any]
) -> Entry | None:
    """An entry for a 200 answer (kept or not), else None: only 200s are made conditional."""
    if not status.startswith("200 "):
        return None
    found = {name.lower(): value for name, value in headers}
    kept = [(name, value) for name, value in headers if name.lower() != "date"]
    not_modified = list(kept)
    remove_entity_headers(not_modified)
    return Entry(
        status=status,
        headers=kept,
        not_modified=not_modified,
        body=body,
        etag=found.get("etag"),
        last_modified=found.get("last-modified"),
        dated="date" in found,
        expires=time.monotonic() + float(config.get("BANNER_PROCESS_CACHE") or 0),
        size=len(body) + sum(map(len, key)),
    )


def _shareable(headers: Headers) -> bool:
    """May every client of this key get this answer? Public, no cookie, no other Vary."""
    cache_control: set[str] = set()
    vary: set[str] = set()
    for name, value in headers:
        lower = name.lower()
        if lower == "set-cookie":
            return False
        if lower == "cache-control":
            cache_control |= {d.strip().split("=")[0].lower() for d in value.split(",")}
        elif lower == "vary":
            vary |= {v.strip().lower() for v in value.split(",") if v.strip()}
    return (
        "public" in cache_control
        and not cache_control & {"private", "no-store", "no-cache"}
        and vary <= {"accept-language"}  # the key has Accept-Language, nothing else
    )


def _no_write(data: bytes) -> None:
    raise RuntimeError("the microcache buffers responses; start_response's write() is unused")


def key_by(app: Flask, path: str, understood: KeyFunction) -> None:
    """Key ``path``'s entries by ``understood(environ)``: the parameters its page reads.

    The function must give equal tuples exactly when the page gives the same answer, and
    only a bounded number of different tuples for anything a client can send.
    """
    app.extensions.setdefault(_KEYS, {})[path] = understood


def install(app: Flask) -> Microcache:
    """Put a microcache in front of ``app`` (TTL: ``BANNER_PROCESS_CACHE``; 0 turns it off)."""
    cache = Microcache(app.wsgi_app, app.config, keys=app.extensions.setdefault(_KEYS, {}))
    app.wsgi_app = cache  # type: ignore[method-assign]
    app.extensions["microcache"] = cache
    return cache


def clear(app: Flask) -> None:
    """Drop ``app``'s microcache, if it has one (workers build an app without serving)."""
    cache = app.extensions.get("microcache")
    if cache is not None:
        cache.clear()
