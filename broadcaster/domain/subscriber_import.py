"""Importing subscribers: rows from a CSV file or a JSON list, validated and stored in chunks,
streamed, with a report of every rejected row and its reasons."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from marshmallow import ValidationError

from broadcaster.domain.plan import Plan
from broadcaster.domain.subscribers import SubscriberRow, SubscriberStore


def import_rows(
    rows: Iterable[tuple[int, Any]],
    plan: Plan,
    store: SubscriberStore,
    chunk: int = 500,
    senders: Iterable[str] = (),
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Validate and upsert (position, row) pairs in chunks, streaming.

    Rejected rows are reported with their position and reasons, never dropped silently.
    ``senders`` are our own numbers, refused as anyone's phone. ``on_progress(rows,
    rejected)`` is told after each chunk.
    """
    schema = SubscriberRow(plan, senders)
    report: dict[str, Any] = {"created": 0, "updated": 0, "rejected": []}
    pending: list[dict[str, Any]] = []

    seen = 0

    def flush() -> None:
        for _, created in store.upsert_many(pending) if pending else ():
            report["created" if created else "updated"] += 1
        pending.clear()
        if on_progress:
            on_progress(seen, len(report["rejected"]))

    for index, row in rows:
        seen += 1
        if not isinstance(row, dict):
            errors = {"_schema": ["each row must be an object"]}
            report["rejected"].append({"index": index, "external_id": None, "errors": errors})
            continue
        try:
            pending.append(schema.load_row(row))
        except ValidationError as exc:
            report["rejected"].append(
                {"index": index, "external_id": row.get("external_id"), "errors": exc.messages}
            )
        if len(pending) >= chunk:
            flush()
    flush()
    return report


CSV_COLUMNS = (
    "external_id",
    "email",
    "phone",
    "locale",
    "audiences",
    "channels",
    "whatsapp_opt_in_at",
    "whatsapp_opt_in_source",
)
_SCALAR_COLUMNS = (*CSV_COLUMNS[:4], *CSV_COLUMNS[6:])


class CsvHeaderError(ValueError):
    """The CSV file's header row is missing or names no 'audiences' column."""


def csv_rows(lines: Iterable[str], name: str = "file") -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) from CSV text, streamed; lists are ``;``-separated."""
    reader = csv.DictReader(lines)
    if not reader.fieldnames or "audiences" not in reader.fieldnames:
        raise CsvHeaderError(
            f"{name}: the header row must name an 'audiences' column "
            f"(columns: {','.join(CSV_COLUMNS)})"
        )
    for row in reader:
        clean = {k: (v or "").strip() for k, v in row.items() if k}
        record: dict[str, Any] = {k: v for k, v in clean.items() if v and k in _SCALAR_COLUMNS}
        for field in ("audiences", "channels"):
            if clean.get(field):
                record[field] = [p.strip() for p in clean[field].split(";") if p.strip()]
        record.setdefault("audiences", [])
        yield reader.line_num, record
