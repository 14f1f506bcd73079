"""One JSON error shape everywhere: ``{code, status, message, errors?}``."""

from __future__ import annotations

import logging
from http import HTTPStatus

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException, InternalServerError

from broadcaster.domain.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from broadcaster.domain.text_policy import encodable

log = logging.getLogger(__name__)


# The one mapping from domain errors to HTTP: the API answers JSON, the admin pages HTML,
# both with this status.
STATUS_OF: dict[type[DomainError], int] = {
    NotFound: 404,
    Forbidden: 403,
    Conflict: 409,
    Invalid: 422,
}


# Bodies refused at the door or by a parser (malformed, too deep, too large, wrong content
# type): the caller's mistake, so one log line each, never a traceback.
LOGGED_REFUSALS = (400, 413, 415)


def status_for(exc: DomainError) -> int:
    """The HTTP status of a domain error."""
    return next((code for kind, code in STATUS_OF.items() if isinstance(exc, kind)), 400)


def domain_message(exc: DomainError) -> str:
    """One line saying what is wrong: for Invalid, ``field: first message`` per field."""
    if isinstance(exc, Invalid):
        return "invalid input: " + summarise(exc.errors)
    return str(exc)


def error_body(code: int, message: str, errors: dict | None = None) -> dict:
    """The one JSON error shape: ``{code, status, message, errors?}``.

    What the client sent may be echoed (an unknown field's name): made encodable first, so
    a lone surrogate comes back as the text ``\\ud800``, never as itself.
    """
    body = {"code": code, "status": HTTPStatus(code).phrase, "message": encodable(message)}
    if errors:
        body["errors"] = encodable(errors)
    return body


def summarise(errors: dict) -> str:
    """``field: first message`` for each field, so the one-line message says what to fix."""
    parts = []
    for field, messages in errors.items():
        while isinstance(messages, dict):  # nested (e.g. translations.nl.title)
            key, messages = next(iter(messages.items()))
            field = f"{field}.{key}"
        first = messages[0] if isinstance(messages, list) and messages else messages
        parts.append(f"{field}: {first}")
    return "; ".join(parts)


def init_app(app: Flask) -> None:
    """Make every error JSON, including the ones Flask raises itself (404, 405, 413, 400)."""

    @app.errorhandler(DomainError)
    def _domain(exc: DomainError) -> ResponseReturnValue:
        code = status_for(exc)
        errors = exc.errors if isinstance(exc, Invalid) else None
        return jsonify(error_body(code, domain_message(exc), errors)), code

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> ResponseReturnValue:
        data = getattr(exc, "data", None) or {}
        message = data.get("message") or exc.description or ""
        errors = data.get("errors") or data.get("messages")
        if (
            isinstance(errors, dict)
            and len(errors) == 1
            and next(iter(errors)) in ("json", "query")
        ):
            errors = next(iter(errors.values()))  # webargs nests by location; callers want fields
        if isinstance(errors, list):  # e.g. malformed JSON: a message, not field errors
            message, errors = "; ".join(map(str, errors)), None
        code = exc.code or 500
        if errors and not data.get("message"):
            message = "invalid input: " + summarise(errors)
        if code in LOGGED_REFUSALS:
            # The route, not the path: a path may carry a secret (an unsubscribe token).
            where = request.url_rule.rule if request.url_rule else request.path
            line = " ".join(message.split())[:300]
            log.warning("refused %s %s: %d %s", request.method, where, code, line)
        headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
        headers += list((data.get("headers") or {}).items())  # abort(…, headers={…})
        return jsonify(error_body(code, message, errors)), code, headers

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> ResponseReturnValue:
        log.exception("unhandled error")
        return jsonify(error_body(500, InternalServerError.description)), 500
