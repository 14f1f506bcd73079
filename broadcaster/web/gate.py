"""Authenticate first: every ``/api/v1`` and ``/hooks`` route says how its callers prove
who they are, and that check runs before anything reads, parses or validates the body.

A route declares its check with :func:`authenticated_by` (or :func:`public`), on a view
function, a ``MethodView`` class or one of its methods (``post``…; the method's own
declaration wins over the class's). ``web/auth.py`` builds the API's declaration
(``@requires("draft")``: token or admin session, then the permission); the hooks declare
their provider's signature or the monitor token.

The gate runs as the app's first ``before_request``, ahead of ``web/limits.py`` (which
parses JSON) and of the view, where flask-smorest's ``@blp.arguments`` validates: a caller
without credentials learns nothing from a body it sends, only 401. A route under those
prefixes that declares nothing is refused (fail closed), and ``tests/test_auth_first.py``
walks the URL map so none ships that way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask, current_app, request
from flask.typing import ResponseReturnValue
from flask_smorest import abort

log = logging.getLogger(__name__)

# Paths whose every route must declare how it authenticates.
GUARDED_PREFIXES = ("/api/v1/", "/hooks/")
ATTRIBUTE = "authentication"

# Lets the request in (returns None) or refuses it: aborts, or returns the response.
Check = Callable[[], ResponseReturnValue | None]
View = TypeVar("View")


@dataclass(frozen=True)
class Authentication:
    """How a route authenticates: a name for people and docs, and the check (None: public)."""

    name: str
    check: Check | None


def authenticated_by(name: str, check: Check) -> Callable[[View], View]:
    """Declare that callers of the decorated view prove who they are with ``check``.

    The view comes back unchanged (only marked), so the decorator may sit above or below
    ``@bp.post``/``@blp.route`` and smorest's decorators.
    """
    return _declare(Authentication(name, check))


def public(reason: str) -> Callable[[View], View]:
    """Declare a route open to anyone on purpose; ``reason`` says why (it is the name)."""
    return _declare(Authentication(f"public: {reason}", None))


def _declare(authentication: Authentication) -> Callable[[View], View]:
    def mark(view: View) -> View:
        setattr(view, ATTRIBUTE, authentication)
        return view

    return mark


def declaration(view: Callable[..., Any], method: str) -> Authentication | None:
    """What ``view`` (as registered in ``app.view_functions``) declares for ``method``."""
    view_class = getattr(view, "view_class", None)  # MethodView.as_view()
    if view_class is not None:
        handler = getattr(view_class, method.lower(), None)
        if method == "HEAD" and handler is None:
            handler = getattr(view_class, "get", None)  # Flask answers HEAD with get
        found = getattr(handler, ATTRIBUTE, None) or getattr(view_class, ATTRIBUTE, None)
    else:
        found = getattr(view, ATTRIBUTE, None)
    return found if isinstance(found, Authentication) else None


def guarded(path: str) -> bool:
    """True for the paths whose routes must declare how they authenticate."""
    return path.startswith(GUARDED_PREFIXES)


def _gate() -> ResponseReturnValue | None:
    if not guarded(request.path) or request.endpoint is None:
        return None  # another prefix, or no such route or method: 404/405 as usual
    view = current_app.view_functions[request.endpoint]
    authentication = declaration(view, request.method)
    if authentication is None:
        if request.method != "OPTIONS":  # Flask's automatic OPTIONS is no forgotten route
            rule = request.url_rule.rule if request.url_rule else request.path
            log.error("refused %s %s: the route declares no authentication", request.method, rule)
        abort(401, message="this route declares no way to authenticate: refused")
    if authentication.check is None:
        return None
    return authentication.check()


def init_app(app: Flask) -> None:
    """Run the gate before every other ``before_request`` of ``app`` (body limits included)."""
    app.before_request_funcs.setdefault(None, []).insert(0, _gate)
