"""Importing subscribers: rows from a CSV file or a JSON list, validated and stored in chunks,
streamed, with a report of every rejected row and its reasons.

A large import uses the machine's second core: rows are read here, validated in one child
process (forked, so it starts at once with the plan and the number metadata loaded) and
written here, in order, while the child checks the next chunks. A few chunks in flight
at most keep memory flat however long the file.
"""

from __future__ import annotations

import csv
import multiprocessing
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from itertools import islice
from operator import itemgetter
from typing import Any

from marshmallow import ValidationError

from broadcaster.domain.plan import Plan
from broadcaster.domain.subscriber_rows import SubscriberRow
from broadcaster.domain.subscriber_upsert import Upsert
from broadcaster.domain.subscribers import SubscriberStore

Checked = tuple[list[dict[str, Any]], list[dict[str, Any]], int]  # valid, rejected, rows
IN_FLIGHT = 4  # chunks handed to the child and not yet written: memory stays flat


def import_rows(
    rows: Iterable[tuple[int, Any]],
    plan: Plan,
    store: SubscriberStore,
    chunk: int = 1000,
    senders: Iterable[str] = (),
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Validate and upsert (position, row) pairs in chunks, streaming.

    Rejected rows are reported with their position and reasons, never dropped silently.
    ``senders`` are our own numbers, refused as anyone's phone. ``on_progress(rows,
    rejected)`` is told after each chunk.
    """
    report: dict[str, Any] = {"created": 0, "updated": 0, "rejected": []}
    seen = 0
    with _Writer(store) as writer:
        for valid, rejected, count in _checked(_chunks(rows, chunk), plan, tuple(senders)):
            seen += count
            report["rejected"].extend(rejected)
            writer.add(valid, report)
            if on_progress:
                on_progress(seen, len(report["rejected"]))
        writer.finish(report)
    return report


class _Writer:
    """Chunks stored in order, each prepared (matched, computed) while the one before is
    written: Redis works on one chunk's writes while Python works on the next's.

    A chunk waits for the one before to be written first where they share someone, or
    an index entry the earlier writes change, so a later row still wins. A Redis error
    surfaces at the next ``add`` or at the end.
    """

    def __init__(self, store: SubscriberStore) -> None:
        self.store = store
        self.preparing = ThreadPoolExecutor(1, thread_name_prefix="import-prepare")
        self.writing = ThreadPoolExecutor(1, thread_name_prefix="import-write")
        self.prepared: deque[Future[list[tuple[str, bool]]]] = deque()
        self.written: Future[None] | None = None
        self.last: Upsert | None = None  # the chunk being written

    def add(self, rows: list[dict[str, Any]], report: dict[str, Any]) -> None:
        if rows:
            self.prepared.append(self.preparing.submit(self._prepare_and_write, rows))
        while len(self.prepared) > IN_FLIGHT // 2:  # reading on never waits for one chunk
            self._count(report)

    def _count(self, report: dict[str, Any]) -> None:
        outcome = self.prepared.popleft().result()  # a Redis error surfaces here
        created = sum(map(itemgetter(1), outcome))
        report["created"] += created
        report["updated"] += len(outcome) - created

    def _prepare_and_write(self, rows: list[dict[str, Any]]) -> list[tuple[str, bool]]:
        last, written = self.last, self.written

        def earlier(lookups: set[str], people: set[str]) -> None:
            if last is None or written is None:
                return
            if lookups & last.lookups or people & last.people:
                written.result()

        upsert = self.store.prepare(rows, earlier)
        if written is not None:
            written.result()  # one write at a time, in order
        self.last, self.written = upsert, self.writing.submit(self.store.write, upsert)
        return upsert.outcome

    def __enter__(self) -> _Writer:
        return self

    def finish(self, report: dict[str, Any]) -> None:
        """Wait for the last chunks to be written, and count them."""
        while self.prepared:
            self._count(report)
        if self.written is not None:
            self.written.result()

    def __exit__(self, *exc: object) -> None:
        self.preparing.shutdown(wait=True)
        self.writing.shutdown(wait=True)


def _chunks(rows: Iterable[tuple[int, Any]], size: int) -> Iterator[list[tuple[int, Any]]]:
    it = iter(rows)
    while batch := list(islice(it, size)):
        yield batch


def _checked(
    chunks: Iterator[list[tuple[int, Any]]], plan: Plan, senders: tuple[str, ...]
) -> Iterator[Checked]:
    """Each chunk checked, in order: the first here, the rest in a child process when
    there are more (a small import does not wait for a process to start)."""
    first = next(chunks, None)
    if first is None:
        return
    _start_checker(plan, senders)
    yield _check(first)
    second = next(chunks, None)
    if second is None:
        return
    if sys.platform != "linux":  # fork is the quick, safe start only there
        yield _check(second)
        yield from map(_check, chunks)
        return
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(
        1, mp_context=context, initializer=_start_checker, initargs=(plan, senders)
    ) as child:
        pending: deque[Future[Checked]] = deque([child.submit(_check, second)])
        for batch in chunks:
            pending.append(child.submit(_check, batch))
            if len(pending) >= IN_FLIGHT:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


_schema: SubscriberRow | None = None  # the checker of this process (``_start_checker``)


def _start_checker(plan: Plan, senders: tuple[str, ...]) -> None:
    global _schema
    _schema = SubscriberRow(plan, senders)


def _check(batch: list[tuple[int, Any]]) -> Checked:
    """A chunk's valid rows (as stored) and rejected rows (position, reasons)."""
    assert _schema is not None
    valid: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    for index, row in batch:
        if not isinstance(row, dict):
            errors = {"_schema": ["each row must be an object"]}
            rejected.append({"index": index, "external_id": None, "errors": errors})
            continue
        try:
            valid.append(_schema.load_row(row))
        except ValidationError as exc:
            rejected.append(
                {"index": index, "external_id": row.get("external_id"), "errors": exc.messages}
            )
    return valid, rejected, len(batch)


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
            if ";" in value:
                record[column] = [p.strip() for p in value.split(";") if p.strip()]
            elif value:  # one item, stripped already: most lines
                record[column] = [value]
        record.setdefault("audiences", [])
        yield reader.line_num, record
