"""Public endpoints (no auth, cacheable, CORS open for GET): banner, embed, status, feed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from flask import Blueprint, Flask, Response, render_template, request
from flask.blueprints import BlueprintSetupState
from markupsafe import Markup
from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header

from broadcaster.domain import visibility
from broadcaster.infra import microcache
from broadcaster.rendering import banners, clock, component_status, status
from broadcaster.rendering.contacts import contact_html
from broadcaster.rendering.i18n import gettext_for
from broadcaster.rendering.messages import SEVERITY_LABELS, STATUS_LABELS
from broadcaster.services import Services, services

bp = Blueprint("public", __name__)

STATIC = Path(__file__).resolve().parents[1] / "static"


def locale_of(svc: Services) -> str:
    """``?lang=`` if the plan speaks it, else the best of Accept-Language, else the default."""
    wanted = request.args.get("lang", "")
    if wanted in svc.plan.locales:
        return wanted
    best = request.accept_languages.best_match(svc.plan.locales)
    return best or svc.plan.default_locale


def site_language(raw: str) -> str:
    """The language a site declares (``data-lang="nl-NL"`` → ``nl``), lower case."""
    return raw.replace("_", "-").split("-", 1)[0].strip().lower()


def banner_locale_of(svc: Services) -> str | None:
    """The banner's locale: the site's declared language (``?lang=``, from ``data-lang``),
    else the visitor's best of Accept-Language, else the default; None for a site whose
    language the plan does not speak (it gets no banner rather than another language's)."""
    wanted = request.args.get("lang", "")
    if not wanted:
        return request.accept_languages.best_match(svc.plan.locales) or svc.plan.default_locale
    code = site_language(wanted)
    return code if code in svc.plan.locales else None


def understood_by(
    app: Flask, names: tuple[str, ...]
) -> Callable[[dict[str, Any]], tuple[str, ...]]:
    """The microcache key of a page that reads ``names`` of ``lang``, ``page``, ``audience``.

    Normalised as the views read them (``locale_of``, ``status.page_of``), so any other
    parameter, an unknown ``lang`` or a new spelling of Accept-Language costs no entry.
    ``lang`` from the query and a language from Accept-Language stay apart in the key.
    """

    def key(environ: dict[str, Any]) -> tuple[str, ...]:
        locales = tuple(app.extensions["broadcaster"].plan.locales)
        default = app.extensions["broadcaster"].plan.default_locale
        args: dict[str, str] = {}
        for name, value in parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True):
            args.setdefault(name, value)  # request.args.get: the first one counts
        parts = []
        if "audience" in names:
            parts.append(args.get("audience", ""))
        if "site_lang" in names and args.get("lang"):
            code = site_language(args["lang"])
            parts += [code if code in locales else "?", ""]  # every unknown one: no banner
        elif "lang" in names or "site_lang" in names:
            lang = args.get("lang", "")
            if lang in locales:
                parts += [lang, ""]
            else:
                header = environ.get("HTTP_ACCEPT_LANGUAGE", "")
                parts += ["", _best_language(header, locales) or default]
        if "page" in names:
            parts.append(str(status.page_of(args.get("page"))))
        if "component" in names:
            parts.append(args.get("component", ""))
        return tuple(parts)

    return key


@lru_cache(maxsize=512)
def _best_language(header: str, locales: tuple[str, ...]) -> str | None:
    """What ``request.accept_languages.best_match(locales)`` gives for this header."""
    return parse_accept_header(header, LanguageAccept).best_match(locales)


@bp.record_once
def _register_cache_keys(state: BlueprintSetupState) -> None:
    for path, names in (
        ("/banner.json", ("audience", "site_lang")),
        ("/banner.js", ()),
        ("/status", ("lang", "page")),
        ("/status.json", ("lang", "page")),
        ("/status.atom", ("lang", "component")),
        ("/status.rss", ("lang", "component")),
    ):
        microcache.key_by(state.app, path, understood_by(state.app, names))


@bp.app_template_filter("contact_link")
def contact_link(contact: str) -> Markup:
    """A route contact as a ``tel:``/web/``mailto:`` link (status page, admin pages)."""
    return contact_html(contact, services().plan.default_region)


def cacheable(body: bytes, mimetype: str, max_age: int) -> Response:
    """A public response with an ETag (304 on If-None-Match) and CORS open for GET."""
    etag = hashlib.sha256(body).hexdigest()[:32]
    response = Response(body, mimetype=mimetype)
    response.set_etag(etag)
    response.headers["Cache-Control"] = f"public, max-age={max_age}"
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Vary"] = "Accept-Language"
    return response.make_conditional(request)


def html_safe_json(data: Any) -> bytes:
    """JSON with ``<``, ``>`` and ``&`` as \\u escapes: identical once parsed, but no
    announcement text can close a ``<script>`` or open a tag if a page inlines it."""
    text = json.dumps(data)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode()


@bp.get("/banner.json")
def banner_json() -> Response:
    """The active banners for ``?audience=`` (default: all) in ``?lang=``."""
    svc = services()
    audience = request.args.get("audience", "")
    # Internal audiences are not named to the public, not even in this answer.
    public = visibility.public_audiences(svc.plan, svc.plan.audiences)
    if audience and audience not in public:
        return json_error(404, f"unknown audience {audience!r} (known: {', '.join(public)})")
    locale = banner_locale_of(svc)
    # Every site of the organisation polls this; each web process answers repeats from
    # its microcache (broadcaster/microcache.py) for BANNER_PROCESS_CACHE s, not from here.
    body = html_safe_json(
        {
            "banners": banners.current(svc, audience, locale) if locale else [],
            "poll": int(svc.config["BANNER_POLL"]),
            "status_url": svc.renderer.status_url,
            "locale": locale,
        }
    )
    return cacheable(body, "application/json", int(svc.config["BANNER_MAX_AGE"]))


@bp.get("/banner.js")
def banner_js() -> Response:
    """The dependency-free embed: ``<script src=".../banner.js" data-audience=… async>``."""
    return cacheable((STATIC / "banner.js").read_bytes(), "text/javascript", 300)


def _status_data(svc: Services, locale: str) -> dict[str, Any]:
    """Page 1 is the document precomputed on publish; ``?page=N`` goes on with the history."""
    page = status.page_of(request.args.get("page"))
    found = status.incidents(svc, locale, page)
    components = component_status.view(svc, locale)
    return {
        "organisation": svc.plan.organisation,
        "locale": locale,
        "status": component_status.overall(components, found["open"]),
        "components": components,
        **found,
        "page": page,
        "routes": status.audience_routes(svc, locale),
    }


@bp.get("/status")
def status_page() -> Response:
    """The status page: open incidents with their timelines, recent ones (or, with
    ``?page=``, older ones), and the routes."""
    svc = services()
    locale = locale_of(svc)
    data = _status_data(svc, locale)
    tz = svc.plan.timezone
    html = render_template(
        "public/status.html",
        **data,
        _=gettext_for(locale),
        # The data keeps ISO 8601 UTC (status.json, datetime=); people read the plan's zone.
        local_time=lambda value: clock.format_value(value, locale, tz),
        zone_note=clock.zone_note(locale, tz),
        locales=svc.plan.locales,
        severity_labels=SEVERITY_LABELS,
        status_labels=STATUS_LABELS,
        state_labels=component_status.STATE_LABELS,
        indicator_labels=component_status.INDICATOR_LABELS,
    )
    return cacheable(html.encode(), "text/html", int(svc.config["BANNER_MAX_AGE"]))


@bp.get("/status.json")
def status_json() -> Response:
    """The status page's data for machines."""
    svc = services()
    body = html_safe_json(_status_data(svc, locale_of(svc)))
    return cacheable(body, "application/json", int(svc.config["BANNER_MAX_AGE"]))


def json_error(code: int, message: str) -> Response:
    from broadcaster.web.errors import error_body

    response = Response(
        json.dumps(error_body(code, message)), status=code, mimetype="application/json"
    )
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response
