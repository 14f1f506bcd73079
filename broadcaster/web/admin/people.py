"""``/admin/subscribers``: how many people each audience reaches, and the CSV import."""

from __future__ import annotations

import io
from typing import Any

from flask import render_template, request
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired

from broadcaster.domain import audit
from broadcaster.domain.subscriber_import import CSV_COLUMNS, CsvHeaderError, csv_rows, import_rows
from broadcaster.services import services
from broadcaster.web.admin.blueprint import admin_locale, bp
from broadcaster.web.admin.forms import CSRF_FAILED, INVALID, add_error, csrf_failed, messages
from broadcaster.web.admin.guard import principal, signed_in
from broadcaster.web.auth import client_ip

REJECTED_SHOWN = 500


class ImportForm(FlaskForm):
    file = FileField("CSV file", validators=[FileRequired("Choose a CSV file to import.")])


def _rejected(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Rejected rows as the page shows them: line, id, and each reason as 'field: message'."""
    rows = []
    for row in report["rejected"][:REJECTED_SHOWN]:
        errors = row["errors"] if isinstance(row["errors"], dict) else {"row": row["errors"]}
        reasons = [
            f"{field}: {message}" if field != "_schema" else message
            for field, value in errors.items()
            for message in messages(value)
        ]
        line, external_id = row["index"], row.get("external_id")
        rows.append({"line": line, "external_id": external_id, "reasons": reasons})
    return rows


@bp.route("/subscribers", methods=["GET", "POST"])
@signed_in("subscribers")
def subscribers() -> ResponseReturnValue:
    """Counts per audience; a CSV upload answers with the import report."""
    svc = services()
    if request.method == "POST":
        # Big lists are what this form is for: the app's small body limit is lifted here only.
        request.max_content_length = int(svc.config["MAX_IMPORT_BYTES"])
    form = ImportForm()
    report = None
    status = 200
    if request.method == "POST":
        if not form.validate():
            status = CSRF_FAILED if csrf_failed(form) else INVALID
        else:
            text = io.TextIOWrapper(form.file.data.stream, encoding="utf-8-sig", newline="")
            try:
                report = import_rows(csv_rows(text), svc.plan, svc.subscribers, senders=svc.senders)
            except CsvHeaderError as exc:
                add_error(form, "file", str(exc))
            except UnicodeDecodeError:
                add_error(form, "file", "The file is not UTF-8 text; save it as CSV UTF-8.")
            if report is None:
                status = INVALID
            else:
                audit.record(
                    svc.redis,
                    principal().name,
                    "subscribers.imported",
                    ip=client_ip(),
                    source="csv",
                    created=report["created"],
                    updated=report["updated"],
                    rejected=len(report["rejected"]),
                )
                if report["created"] + report["updated"] == 0:
                    status = INVALID  # as the API: every row was refused
    counts = [
        {
            "name": name,
            "description": a.description_in(admin_locale(), svc.plan.default_locale),
            "count": svc.subscribers.count(name),
        }
        for name, a in svc.plan.audiences.items()
    ]
    return render_template(
        "admin/subscribers.html",
        form=form,
        counts=counts,
        total=svc.subscribers.count(),
        report=report,
        rejected=_rejected(report) if report else [],
        rejected_shown=REJECTED_SHOWN,
        columns=CSV_COLUMNS,
    ), status
