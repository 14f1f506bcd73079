"""Importing subscribers: rows from a CSV file or a JSON list, validated and stored in chunks,
streamed, with a report of every rejected row and its reasons.

A large import uses the machine's second core: rows are read here, validated in one child
process (forked, so it starts at once with the plan and the number metadata loaded) and
written here, in order, while the child checks the next chunks. A few chunks in flight
at most keep memory flat however long the file.
"""

from __future__ import annotations

import contextlib
import gc
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
from broadcaster.domain.subscriber_csv import CSV_COLUMNS as CSV_COLUMNS
from broadcaster.domain.subscriber_csv import CsvHeaderError as CsvHeaderError
from broadcaster.domain.subscriber_csv import CsvRows, RowShape
from broadcaster.domain.subscriber_csv import csv_rows as csv_rows
from broadcaster.domain.subscriber_rows import SubscriberRow
from broadcaster.domain.subscriber_upsert import Upsert, lookups_of_row
from broadcaster.domain.subscribers import SubscriberStore

# Valid rows, their lookups, rejected rows, rows in the chunk.
Checked = tuple[list[dict[str, Any]], list[list[str]], list[dict[str, Any]], int]
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
    # A CSV file's lines are shaped into rows by the checker: in the child, for a big one.
    shape = rows.shape if isinstance(rows, CsvRows) else None
    source = rows.lines() if isinstance(rows, CsvRows) else rows
    checker = _Checker(plan, tuple(senders), shape)
    with _no_cycle_collection(), _Writer(store) as writer:
        for valid, lookups, rejected, count in _checked(_chunks(source, chunk), checker):
            seen += count
            report["rejected"].extend(rejected)
            writer.add(valid, lookups, report)
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

    def add(
        self, rows: list[dict[str, Any]], lookups: list[list[str]], report: dict[str, Any]
    ) -> None:
        if rows:
            job = self.preparing.submit(self._prepare_and_write, rows, lookups)
            self.prepared.append(job)
        while len(self.prepared) > IN_FLIGHT // 2:  # reading on never waits for one chunk
            self._count(report)

    def _count(self, report: dict[str, Any]) -> None:
        outcome = self.prepared.popleft().result()  # a Redis error surfaces here
        created = sum(map(itemgetter(1), outcome))
        report["created"] += created
        report["updated"] += len(outcome) - created

    def _prepare_and_write(
        self, rows: list[dict[str, Any]], lookups: list[list[str]]
    ) -> list[tuple[str, bool]]:
        last, written = self.last, self.written

        def earlier(keys: set[str], people: set[str]) -> None:
            if last is None or written is None:
                return
            if keys & last.lookups or people & last.people:
                written.result()

        upsert = self.store.prepare(rows, earlier, lookups)
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


@contextlib.contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """The cycle collector paused while rows stream through: it found nothing to free in
    an import (rows and chunks are freed by reference counting) but took a sixth of its
    time walking the many young objects; the child, forked meanwhile, inherits the pause."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _chunks(rows: Iterable[tuple[int, Any]], size: int) -> Iterator[list[tuple[int, Any]]]:
    it = iter(rows)
    while batch := list(islice(it, size)):
        yield batch


def _checked(chunks: Iterator[list[tuple[int, Any]]], checker: _Checker) -> Iterator[Checked]:
    """Each chunk checked, in order: the first here, the rest in a child process when
    there are more (a small import does not wait for a process to start).

    The child is forked before this import's writer threads exist: a fork copies locks as
    they are, held or not, and the child must never wait on one.
    """
    first = next(chunks, None)
    if first is None:
        return
    second = next(chunks, None)
    if second is None:
        yield checker(first)
        return
    if sys.platform != "linux":  # fork is the quick, safe start only there
        yield checker(first)
        yield checker(second)
        yield from map(checker, chunks)
        return
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(
        1, mp_context=context, initializer=_start_child, initargs=(checker,)
    ) as child:
        pending: deque[Future[Checked]] = deque([child.submit(_check_in_child, second)])
        yield checker(first)  # while the child checks the second
        for batch in chunks:
            pending.append(child.submit(_check_in_child, batch))
            if len(pending) >= IN_FLIGHT:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


class _Checker:
    """Checks a chunk: its valid rows (as stored, with their lookups) and its rejected rows
    (position, reasons). Given a ``RowShape``, a chunk's rows are CSV values to shape."""

    def __init__(self, plan: Plan, senders: tuple[str, ...], shape: RowShape | None) -> None:
        self.plan, self.senders, self.shape = plan, senders, shape
        self.schema = SubscriberRow(plan, senders)

    def __call__(self, batch: list[tuple[int, Any]]) -> Checked:
        shape, schema = self.shape, self.schema
        valid: list[dict[str, Any]] = []
        rejected: list[dict[str, Any]] = []
        for index, row in batch:
            if shape is not None:
                row = shape(row)
            if not isinstance(row, dict):
                errors = {"_schema": ["each row must be an object"]}
                rejected.append({"index": index, "external_id": None, "errors": errors})
                continue
            try:
                valid.append(schema.load_row(row))
            except ValidationError as exc:
                rejected.append(
                    {"index": index, "external_id": row.get("external_id"), "errors": exc.messages}
                )
        return valid, [lookups_of_row(row) for row in valid], rejected, len(batch)


_child_checker: _Checker | None = None  # the child process's


def _start_child(checker: _Checker) -> None:
    global _child_checker
    _child_checker = checker


def _check_in_child(batch: list[tuple[int, Any]]) -> Checked:
    assert _child_checker is not None
    return _child_checker(batch)
