"""``/api/v1/subscribers``: bulk upsert with a per-row report, and a paginated list."""

from __future__ import annotations

import io
from typing import Any

from flask import jsonify, request
from flask.typing import ResponseReturnValue
from flask.views import MethodView
from flask_smorest import Blueprint, abort

from broadcaster.domain import audit
from broadcaster.domain.subscriber_import import CsvHeaderError, csv_rows, import_rows
from broadcaster.services import services
from broadcaster.web.api import schemas
from broadcaster.web.api.paging import page_links
from broadcaster.web.auth import client_ip, require, requires
from broadcaster.web.errors import error_body, summarise
from channels import PERSONAL

blp = Blueprint("subscribers", __name__, url_prefix="/api/v1", description="Subscribers")

MAX_ROWS = 10_000


def all_rejected(report: dict[str, Any]) -> ResponseReturnValue:
    """422 in the one error shape, with the full report beside it: what to fix, row by row."""
    reasons = [f"row {row['index']}: {summarise(row['errors'])}" for row in report["rejected"]]
    message = f"no subscriber stored: all {len(report['rejected'])} rows were rejected"
    body = error_body(422, message, {"subscribers": reasons[:20]})
    return jsonify({**report, **body}), 422


@blp.route("/subscribers")
class Subscribers(MethodView):
    @requires("subscribers")
    @blp.response(200, schemas.ImportReport)
    @blp.alt_response(422, description="Every row was rejected; the report says why")
    def post(self) -> Any:
        """Upsert a list of subscribers (by external_id, else email, else phone).

        Body: a JSON list of ``{external_id?, email?, phone?, locale?, audiences, channels?}``
        (or ``{"subscribers": [...]}``). Answers with counts and every rejected row with
        its reasons.
        """
        principal = require("subscribers")
        body = request.get_json(silent=True)
        if isinstance(body, dict) and "subscribers" in body:
            body = body["subscribers"]
        if not isinstance(body, list):
            abort(400, message='send a JSON list of subscribers (or {"subscribers": [...]})')
        if not body:
            abort(
                422, message="the list of subscribers is empty", errors={"subscribers": ["empty"]}
            )
        if len(body) > MAX_ROWS:
            abort(
                413,
                message=f"at most {MAX_ROWS} subscribers per request; use the CSV import for more",
            )
        svc = services()
        report = import_rows(enumerate(body), svc.plan, svc.subscribers, senders=svc.senders)
        _audit_import(principal.name, "json", report)
        if report["created"] + report["updated"] == 0:
            return all_rejected(report)
        return report

    @requires("subscribers")
    @blp.arguments(schemas.SubscriberPageArgs, location="query")
    @blp.response(200, schemas.SubscriberPage)
    def get(self, args: dict[str, Any]) -> Any:
        """Subscribers, oldest first; ``?audience=`` narrows to one audience."""
        require("subscribers")
        svc = services()
        audience = args.get("audience")
        if audience and audience not in svc.plan.audiences:
            abort(
                422,
                message=f"audience: unknown audience {audience!r}",
                errors={"audience": [f"known: {', '.join(svc.plan.audiences)}"]},
            )
        page, per_page = args["page"], args["per_page"]
        store = svc.subscribers
        total = store.count(audience)
        body = {
            "items": store.page((page - 1) * per_page, per_page, audience),
            "page": page,
            "per_page": per_page,
            "total": total,
        }
        return body, 200, page_links(page, per_page, total)


def _audit_import(actor: str, source: str, report: dict[str, Any]) -> None:
    audit.record(
        services().redis,
        actor,
        "subscribers.imported",
        ip=client_ip(),
        source=source,
        created=report["created"],
        updated=report["updated"],
        rejected=len(report["rejected"]),
    )


def _person(subscriber_id: str) -> dict[str, Any]:
    person = services().subscribers.get(subscriber_id)
    if person is None:
        abort(404, message=f"no subscriber {subscriber_id!r}")
    return person


@blp.route("/subscribers/import")
class SubscriberImport(MethodView):
    @requires("subscribers")
    @blp.response(200, schemas.ImportReport)
    @blp.alt_response(422, description="Every row was rejected; the report says why")
    @blp.doc(requestBody={"content": {"text/csv": {"schema": {"type": "string"}}}})
    def post(self) -> Any:
        """Import a CSV file (``Content-Type: text/csv``), streamed row by row.

        Header row with ``external_id,email,phone,locale,audiences,channels``
        (``;`` between list items). Rejected rows are reported by line number.
        """
        principal = require("subscribers")
        if request.mimetype != "text/csv":
            abort(415, message="send the file as Content-Type: text/csv")
        # Large lists are the point of this route: lift the body limit for it alone.
        request.max_content_length = int(services().config["MAX_IMPORT_BYTES"])
        text = io.TextIOWrapper(request.stream, encoding="utf-8-sig", newline="")
        svc = services()
        try:
            report = import_rows(csv_rows(text), svc.plan, svc.subscribers, senders=svc.senders)
        except CsvHeaderError as exc:
            abort(422, message=str(exc), errors={"file": [str(exc)]})
        except UnicodeDecodeError:
            abort(400, message="the file is not UTF-8 text")
        _audit_import(principal.name, "csv", report)
        if report["created"] + report["updated"] == 0:
            return all_rejected(report)
        return report


@blp.route("/subscribers/<subscriber_id>")
class Subscriber(MethodView):
    @requires("subscribers")
    @blp.response(200, schemas.SubscriberOut)
    def get(self, subscriber_id: str) -> dict[str, Any]:
        """One subscriber."""
        require("subscribers")
        return _person(subscriber_id)

    @requires("subscribers")
    @blp.response(204)
    def delete(self, subscriber_id: str) -> None:
        """Erase a subscriber's contact data; past deliveries keep only an anonymous id."""
        principal = require("subscribers")
        if not services().subscribers.erase(subscriber_id):
            abort(404, message=f"no subscriber {subscriber_id!r}")
        audit.record(
            services().redis,
            principal.name,
            "subscriber.erased",
            ip=client_ip(),
            subscriber_id=subscriber_id,
        )


def _set_opt_outs(subscriber_id: str, data: dict[str, Any], opted_out: bool) -> dict[str, Any]:
    require("subscribers")
    channels = data.get("channels") or list(PERSONAL)
    try:
        return services().subscribers.set_opt_outs(subscriber_id, channels, opted_out)
    except KeyError:
        abort(404, message=f"no subscriber {subscriber_id!r}")


@blp.route("/subscribers/<subscriber_id>/opt-out")
class OptOut(MethodView):
    @requires("subscribers")
    @blp.arguments(schemas.OptOutIn)
    @blp.response(200, schemas.SubscriberOut)
    def post(self, data: dict[str, Any], subscriber_id: str) -> dict[str, Any]:
        """Opt out of some channels (default: all); those deliveries are recorded as skipped."""
        return _set_opt_outs(subscriber_id, data, opted_out=True)


@blp.route("/subscribers/<subscriber_id>/opt-in")
class OptIn(MethodView):
    @requires("subscribers")
    @blp.arguments(schemas.OptOutIn)
    @blp.response(200, schemas.SubscriberOut)
    def post(self, data: dict[str, Any], subscriber_id: str) -> dict[str, Any]:
        """Undo an opt-out, e.g. when the person asks again (default: all channels)."""
        return _set_opt_outs(subscriber_id, data, opted_out=False)
