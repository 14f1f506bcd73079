"""Security headers on every answer: CSP, nosniff, Referrer-Policy, caching, HSTS.

- **Content-Security-Policy** without ``'unsafe-inline'``: the pages load their styles and
  scripts from ``broadcaster/static`` only, so an announcement text that slipped past the
  escaping still could not run. Admin pages (and the unsubscribe page, which has a button)
  may not be framed (``frame-ancestors 'none'``): no clickjacking of approve or opt-out.
  The status page may be framed (an intranet may show it); it has nothing to click.
- **Cache-Control: no-store** where an answer depends on who asks or holds personal data:
  admin pages, the API and hooks, unsubscribe pages, metrics. The public status and banner
  answers keep their own ``public, max-age`` (``web/public.py``): they are cached on purpose.
- **Strict-Transport-Security** when ``PUBLIC_URL`` is https (TLS usually ends at a proxy,
  so the request itself need not look secure).

Set in ``after_request``, so the microcache (``infra/microcache.py``) keeps them with the
public answers it replays.
"""

from __future__ import annotations

from flask import Flask, Response, current_app, request

ADMIN_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)
# The status page: styles from our static files, nothing else; no scripts at all.
STATUS_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'none'; base-uri 'none'"
)
# Any other page (the unsubscribe confirmation): one same-origin form, never framed.
PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
# JSON and everything else: nothing to load, nothing to frame (if a browser renders it).
DATA_CSP = "default-src 'none'; frame-ancestors 'none'"

# Answers that depend on who asks: never kept by a browser or a shared cache.
# /subscribe: its forms carry a CSRF token, its confirmation links a signed token.
# /confirm/: its links carry a signed token naming a person.
PRIVATE_PREFIXES = (
    "/admin",
    "/api/",
    "/hooks/",
    "/unsubscribe/",
    "/confirm/",
    "/subscribe",
    "/metrics",
)
# Except the Statuspage-compatible read API: public documents, the same for everyone.
PUBLIC_API_PREFIX = "/api/v2/"
STATIC_ENDPOINTS = ("static", "admin.static")  # CSS and JS: the same for everyone
HSTS = "max-age=31536000"


def _private() -> bool:
    return (
        request.path.startswith(PRIVATE_PREFIXES)
        and not request.path.startswith(PUBLIC_API_PREFIX)
        and request.endpoint not in STATIC_ENDPOINTS
    )


def _csp(response: Response) -> str | None:
    if request.path == "/admin" or request.path.startswith("/admin/"):
        return ADMIN_CSP
    if response.mimetype != "text/html":
        return DATA_CSP if _private() else None  # public JSON, feeds, banner.js: embedded
    return STATUS_CSP if request.endpoint == "public.status_page" else PAGE_CSP


def secure(response: Response) -> Response:
    """Add the security headers that fit this request to ``response``."""
    headers = response.headers
    headers["X-Content-Type-Options"] = "nosniff"
    policy = _csp(response)
    if policy:
        headers["Content-Security-Policy"] = policy
        if "frame-ancestors 'none'" in policy:
            headers["X-Frame-Options"] = "DENY"  # for browsers without CSP level 2
    if _private():
        headers["Cache-Control"] = "no-store"
        # Same-origin only: admin URLs name incidents and people; unsubscribe URLs carry a token.
        headers["Referrer-Policy"] = "same-origin"
    else:
        headers["Referrer-Policy"] = "strict-origin-when-cross-origin"
    if str(current_app.config.get("PUBLIC_URL", "")).startswith("https://"):
        headers["Strict-Transport-Security"] = HSTS
    return response


def init_app(app: Flask) -> None:
    """Send the security headers on every answer of ``app``, errors included."""
    app.after_request(secure)
