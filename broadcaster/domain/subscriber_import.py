"""Importing subscribers: rows from a CSV file or a JSON list, validated and stored in chunks,
streamed, with a report of every rejected row and its reasons."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from marshmallow import ValidationError

from broadcaster.domain.plan import Plan
from broadcaster.domain.subscriber_rows import SubscriberRow
from broadcaster.domain.subscribers import SubscriberStore


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
    # One chunk is written while the next is validated: Redis' share of a row then costs
    # no wall time. One write at a time, in order, so a later row still wins.
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-writer")
    writing: Future[list[tuple[str, bool]]] | None = None

    def written() -> None:
        nonlocal writing
        if writing is not None:
            for _, created in writing.result():  # a Redis error surfaces here, as before
                report["created" if created else "updated"] += 1
            writing = None

    def flush(last: bool = False) -> None:
        nonlocal writing, pending
        written()
        if pending:
            writing = writer.submit(store.upsert_many, pending)
            pending = []
        if last:
            written()
        if on_progress:
            on_progress(seen, len(report["rejected"]))

    try:
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
        flush(last=True)
    finally:
        writer.shutdown(wait=True)
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
    reader = csv.reader(lines)
    header = next(reader, None)
    if not header or "audiences" not in header:
        raise CsvHeaderError(
            f"{name}: the header row must name an 'audiences' column "
            f"(columns: {','.join(CSV_COLUMNS)})"
        )
    # csv.reader and the columns' positions, rather than DictReader's dict per line (a
    # fifth of a row's import time), read as DictReader would: the last of repeated
    # columns wins, short lines lack their last columns, values beyond the header go.
    last = {column: position for position, column in enumerate(header) if column}
    scalars = [(p, c) for c, p in last.items() if c in _SCALAR_COLUMNS]
    lists = [(p, c) for c, p in last.items() if c in ("audiences", "channels")]
    for values in reader:
        if not values:
            continue  # DictReader skips empty lines too
        size = len(values)
        record: dict[str, Any] = {}
        for position, column in scalars:
            value = values[position].strip() if position < size else ""
            if value:
                record[column] = value
        for position, column in lists:
            value = values[position].strip() if position < size else ""
            if value:
                record[column] = [p.strip() for p in value.split(";") if p.strip()]
        record.setdefault("audiences", [])
        yield reader.line_num, record
