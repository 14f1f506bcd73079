"""Subscriber rows from CSV text (the import's file): one row per line, ``;`` between the
items of a list, read as ``csv.DictReader`` would read them (tests/test_csv_rows.py).

``CsvRows`` gives (line number, row) pairs; an import reads the lines here and has its
child process make the rows (``RowShape``), so that work runs on the other core.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

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
_LIST_COLUMNS = ("audiences", "channels")


class CsvHeaderError(ValueError):
    """The CSV file's header row is missing or names no 'audiences' column."""


@dataclass(frozen=True)
class RowShape:
    """A line's values as a row, by the columns' positions in the header.

    csv.reader and positions, rather than DictReader's dict per line (a fifth of a row's
    import time), read as DictReader would: the last of repeated columns wins, short lines
    lack their last columns, values beyond the header go.
    """

    scalars: tuple[tuple[int, str], ...]
    lists: tuple[tuple[int, str], ...]

    @classmethod
    def of(cls, header: list[str]) -> RowShape:
        last = {column: position for position, column in enumerate(header) if column}
        return cls(
            tuple((p, c) for c, p in last.items() if c in _SCALAR_COLUMNS),
            tuple((p, c) for c, p in last.items() if c in _LIST_COLUMNS),
        )

    def __call__(self, values: list[str]) -> dict[str, Any]:
        size = len(values)
        record: dict[str, Any] = {}
        for position, column in self.scalars:
            value = values[position].strip() if position < size else ""
            if value:
                record[column] = value
        for position, column in self.lists:
            value = values[position].strip() if position < size else ""
            if ";" in value:
                record[column] = [p.strip() for p in value.split(";") if p.strip()]
            elif value:  # one item, stripped already: most lines
                record[column] = [value]
        record.setdefault("audiences", [])
        return record


class CsvRows:
    """(line number, row) from CSV text, streamed; the header is read (and checked) at once."""

    def __init__(self, lines: Iterable[str], name: str = "file") -> None:
        self._reader = csv.reader(lines)
        header = next(self._reader, None)
        if not header or "audiences" not in header:
            raise CsvHeaderError(
                f"{name}: the header row must name an 'audiences' column "
                f"(columns: {','.join(CSV_COLUMNS)})"
            )
        self.shape = RowShape.of(header)

    def lines(self) -> Iterator[tuple[int, list[str]]]:
        """(line number, values) of each non-empty line (DictReader skips empty ones too)."""
        reader = self._reader
        for values in reader:
            if values:
                yield reader.line_num, values

    def __iter__(self) -> Iterator[tuple[int, dict[str, Any]]]:
        shape = self.shape
        for line, values in self.lines():
            yield line, shape(values)


def csv_rows(lines: Iterable[str], name: str = "file") -> CsvRows:
    """(line number, row) from CSV text, streamed; lists are ``;``-separated."""
    return CsvRows(lines, name)
