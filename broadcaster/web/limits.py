"""Request body size limits: every route answers 413 in the one error shape, before any work.

Werkzeug only enforces ``MAX_CONTENT_LENGTH`` when a view reads the body, so a route that
never reads it (``…/approve``) would accept megabytes silently, and the error would come
from deep inside a parser. Checking the declared length first refuses it at the door; a
body without a length (chunked) is still cut off by Werkzeug while it is read.
"""

from __future__ import annotations

from flask import Flask, current_app, request
from flask_smorest import abort

# Routes that take large uploads on purpose, and the setting that limits them.
LARGE_BODIES = {"subscribers.SubscriberImport": "MAX_IMPORT_BYTES"}


def limit_for(endpoint: str | None) -> int:
    """The largest body this endpoint accepts, in bytes."""
    setting = LARGE_BODIES.get(endpoint or "")
    return int(current_app.config[setting] if setting else current_app.config["MAX_CONTENT_LENGTH"])


def _check() -> None:
    size = request.content_length
    if size is None:
        return
    limit = limit_for(request.endpoint)
    if size > limit:
        abort(413, message=f"request body too large: {size} bytes, at most {limit}")


def init_app(app: Flask) -> None:
    """Refuse oversized bodies on every route of ``app``."""
    app.before_request(_check)
