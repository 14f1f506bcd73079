"""Request body limits: size, content type and JSON depth, refused in the one error shape.

Every body is checked at the door, before any view or parser runs:

- **size** — a declared length over the route's limit is 413. Werkzeug only enforces
  ``MAX_CONTENT_LENGTH`` when a view reads the body, so a route that never reads it
  (``…/approve``) would accept megabytes silently. A body without a length (chunked) is
  read here, up to one byte over the limit: Werkzeug alone would cut it off silently.
- **content type** — a body sent to ``/api/`` must be JSON (``application/json`` or
  ``application/*+json``) unless the route takes something else (``OTHER_BODIES``): 415.
- **JSON** — parsed once, here, by ``parse_json``: malformed, not UTF-8 or nested deeper
  than ``MAX_JSON_DEPTH`` is 400. flask-smorest's argument parser (webargs) calls
  ``json.loads`` itself, where a body nested 1,000 deep raised ``RecursionError`` (a 500
  with a traceback); refusing such a body at the door means webargs only ever sees JSON
  that parses.

All of this runs after the gate (``web/gate.py``) has authenticated ``/api/v1`` and
``/hooks`` requests: a caller without credentials gets 401, whatever its body. The
inbound hooks parse their body with ``parse_json`` (a monitor's malformed payload is kept
for ``/api/v1/hooks/events``); ``request.get_json``
goes through ``parse_json`` too (``JSONProvider``, ``BodyLimitedRequest``). Every refusal is an
``HTTPException``, so ``errors.py`` answers it as JSON and logs one line, never a traceback.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any, NoReturn

from flask import Flask, current_app, request
from flask.json.provider import DefaultJSONProvider
from flask.wrappers import Request
from flask_smorest import abort

# Routes that take large uploads on purpose, and the setting that limits them.
LARGE_BODIES = {"subscribers.SubscriberImport": "MAX_IMPORT_BYTES"}
# /api/ routes whose body is not JSON; they check their own content type.
OTHER_BODIES = {"subscribers.SubscriberImport"}  # text/csv
# The deepest nesting of arrays and objects a JSON body may have (``[]`` is 1, ``{"a": []}``
# is 2). Our payloads (announcements with translations, Alertmanager's) need 4 at most;
# 32 leaves room for any sane client and refuses attacks long before json.loads recurses.
MAX_JSON_DEPTH = 32
BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")

# A JSON string, or an unterminated one up to the end. A match never fails once it has
# begun, so it never backtracks or starts over inside a string: linear on any input, where
# requiring the closing quote took a minute on 80 KB of \" (each quote restarting a scan).
# Whatever json.loads reads as a string this reads as one, up to where json.loads fails.
_STRING = re.compile(r'"(?:[^"\\]+|\\.)*"?', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_CHUNK = 64 * 1024


class MalformedJSON(ValueError):
    """A body that is not JSON we accept; the message says why, in one line."""


def check_depth(text: str, limit: int = MAX_JSON_DEPTH) -> None:
    """Raise ``MalformedJSON`` if the brackets of ``text`` nest deeper than ``limit``.

    No recursion and no parsing: the depth at each bracket (outside strings) is a running
    sum, +1 for ``[``/``{`` and -1 for ``]``/``}``. json.loads is never deeper than that
    sum until it stops at an error (a bracket of the wrong kind is one), so a body that
    passes cannot make it recurse more than ``limit`` levels.
    """
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    depth = 0
    for start in range(0, len(brackets), _CHUNK):  # in chunks: stop early on an attack
        steps = map(_STEP.__getitem__, brackets[start : start + _CHUNK])
        levels = list(accumulate(steps, initial=depth))
        if max(levels) > limit:
            raise MalformedJSON(f"body is not JSON we accept: nested deeper than {limit} levels")
        depth = levels[-1]


def _no_constants(name: str) -> NoReturn:
    raise MalformedJSON(f"{name} is not JSON")


def parse_json(data: bytes | str) -> Any:
    """Parse a JSON body; raises ``MalformedJSON`` for anything we do not accept.

    UTF-8 only (RFC 8259), at most ``MAX_JSON_DEPTH`` deep, no ``NaN``/``Infinity``, and
    numbers Python can convert (an integer of more than 4,300 digits is a ValueError).
    """
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedJSON(f"body is not UTF-8: {exc.reason} at byte {exc.start}") from exc
    check_depth(data)
    try:
        return json.loads(data, parse_constant=_no_constants)
    except MalformedJSON:
        raise
    except (ValueError, RecursionError) as exc:  # RecursionError: cannot happen after the scan
        raise MalformedJSON(f"body is not JSON: {exc}") from exc


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON, with ``loads`` (``request.get_json``, sessions) through ``parse_json``.

    Flask hands each request ``app.json`` as its ``json_module``, so this is where
    ``request.get_json`` parses.
    """

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return parse_json(s)


class BodyLimitedRequest(Request):
    """Flask's request, whose ``get_json`` failures say why: 400 or 415 with the reason.

    Flask answers a bare 400 for both malformed JSON and a wrong content type.
    """

    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        if e is None:
            refuse(415, "send the body as Content-Type: application/json")
        refuse(400, str(e) if isinstance(e, MalformedJSON) else f"body is not JSON: {e}")


def refuse(code: int, message: str, errors: dict | None = None) -> NoReturn:
    """Refuse the request's body with ``code``: a JSON error, logged in one line."""
    abort(code, message=message, errors=errors)


def limit_for(endpoint: str | None) -> int:
    """The largest body this endpoint accepts, in bytes."""
    setting = LARGE_BODIES.get(endpoint or "")
    return int(current_app.config[setting] if setting else current_app.config["MAX_CONTENT_LENGTH"])


def has_body() -> bool:
    """True if the request carries a body (a declared length, or chunked)."""
    if request.content_length is not None:
        return request.content_length > 0
    return "chunked" in request.headers.get("Transfer-Encoding", "").lower()


def _check() -> None:
    size = request.content_length
    limit = limit_for(request.endpoint)
    if size is not None and size > limit:
        refuse(413, f"request body too large: {size} bytes, at most {limit}")
    if size is None and has_body() and request.endpoint not in LARGE_BODIES:
        # Chunked: Werkzeug stops reading at the limit and hands the view the first
        # ``limit`` bytes as if that were all. Read one byte more, here, to tell.
        request.max_content_length = limit + 1
        if len(request.get_data(cache=True)) > limit:
            refuse(413, f"request body too large: more than {limit} bytes")
    if (
        request.method in BODY_METHODS
        and request.path.startswith("/api/")
        and request.endpoint is not None  # an unknown route or method: 404/405 as usual
        and request.endpoint not in OTHER_BODIES
        and has_body()
    ):
        # Parsed once here (and cached): 415 or 400 before webargs or the view sees it.
        request.get_json()


def init_app(app: Flask) -> None:
    """Check the size, content type and JSON of every body on every route of ``app``.

    ``app.json`` must be a ``JSONProvider`` (``create_app`` makes it one first thing, so
    the settings made on it afterwards stay).
    """
    if not isinstance(app.json, JSONProvider):
        raise TypeError("app.json must be broadcaster.web.limits.JSONProvider")
    app.request_class = BodyLimitedRequest
    app.before_request(_check)
