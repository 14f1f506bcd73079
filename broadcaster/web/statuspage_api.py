"""The Statuspage-compatible read API: ``/api/v2/summary.json`` and friends.

Public on purpose (``@public``): the same data as the status page, for tools that read
Statuspage. Built from the stored status documents (``rendering/statuspage.py``), answered
with an ETag and ``Cache-Control: public``, and kept by each web process's microcache
like the banner (``infra/microcache.py`` ``PATHS``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response
from flask.blueprints import BlueprintSetupState

from broadcaster.infra import microcache
from broadcaster.rendering import statuspage
from broadcaster.services import services
from broadcaster.web.gate import public
from broadcaster.web.public import cacheable, html_safe_json, locale_of, understood_by

bp = Blueprint("statuspage", __name__, url_prefix="/api/v2")

REASON = "Statuspage-compatible status documents, public like the status page"
Shape = Callable[[dict[str, Any]], dict[str, Any]]

# path → what it answers, from the documents (statuspage.documents).
SHAPES: dict[str, Shape] = {
    "/summary.json": statuspage.summary,
    "/status.json": lambda d: {"page": d["page"], "status": d["status"]},
    "/components.json": lambda d: {"page": d["page"], "components": d["components"]},
    "/incidents.json": lambda d: {"page": d["page"], "incidents": d["incidents"]},
    "/incidents/unresolved.json": lambda d: {"page": d["page"], "incidents": d["unresolved"]},
    "/scheduled-maintenances.json": lambda d: {
        "page": d["page"],
        "scheduled_maintenances": d["maintenances"],
    },
    "/scheduled-maintenances/upcoming.json": lambda d: {
        "page": d["page"],
        "scheduled_maintenances": d["upcoming"],
    },
    "/scheduled-maintenances/active.json": lambda d: {
        "page": d["page"],
        "scheduled_maintenances": d["active"],
    },
}
PATHS = tuple(f"{bp.url_prefix}{path}" for path in SHAPES)


def _view(shape: Shape) -> Callable[[], Response]:
    @public(REASON)
    def answer() -> Response:
        svc = services()
        docs = statuspage.documents(svc, locale_of(svc))
        body = html_safe_json(shape(docs))
        return cacheable(body, "application/json", int(svc.config["BANNER_MAX_AGE"]))

    return answer


for _path, _shape in SHAPES.items():
    _name = _path.strip("/").replace(".json", "").replace("/", "_").replace("-", "_")
    bp.add_url_rule(_path, _name, _view(_shape), methods=["GET"])


@bp.record_once
def _register_cache_keys(state: BlueprintSetupState) -> None:
    """The microcache keys these documents by ``lang`` (names of components and incidents)."""
    for path in PATHS:
        microcache.key_by(state.app, path, understood_by(state.app, ("lang",)))
