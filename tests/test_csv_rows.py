"""Reading an import CSV by column positions gives what csv.DictReader gives."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broadcaster.domain.subscriber_csv import _SCALAR_COLUMNS, CsvHeaderError, csv_rows

COLUMNS = ["external_id", "email", "phone", "locale", "audiences", "channels", "name", ""]


def dict_reader_rows(text: str) -> list[tuple[int, dict[str, Any]]]:
    """The rows as the DictReader-based reading made them (the reference)."""
    reader = csv.DictReader(io.StringIO(text))
    rows = []
    for row in reader:
        clean = {k: (v or "").strip() for k, v in row.items() if k}
        record: dict[str, Any] = {k: v for k, v in clean.items() if v and k in _SCALAR_COLUMNS}
        for field in ("audiences", "channels"):
            if clean.get(field):
                record[field] = [p.strip() for p in clean[field].split(";") if p.strip()]
        record.setdefault("audiences", [])
        rows.append((reader.line_num, record))
    return rows


cells = st.text(st.sampled_from(list('ab; ,"\n\t+31@.')), max_size=8)
tables = st.builds(
    lambda header, lines: (header, lines),
    st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=8).filter(lambda h: "audiences" in h),
    st.lists(st.lists(cells, max_size=10), max_size=6),
)


def as_csv(header: list[str], lines: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for line in lines:
        writer.writerow(line)
    return out.getvalue()


@settings(max_examples=1500, deadline=None)
@given(tables)
def test_rows_are_what_dict_reader_gives(table: tuple[list[str], list[list[str]]]) -> None:
    text = as_csv(*table)
    assert list(csv_rows(io.StringIO(text))) == dict_reader_rows(text)


def test_repeated_columns_short_lines_and_extra_values() -> None:
    text = "email,audiences,email\na@x.nl,consumers,b@x.nl,extra\nc@x.nl\n\n,business;;x ,\n"
    rows = list(csv_rows(io.StringIO(text)))
    assert rows == dict_reader_rows(text)
    assert rows[0][1] == {"email": "b@x.nl", "audiences": ["consumers"]}
    assert rows[1][1] == {"audiences": []}  # the last "email" column is missing: none
    assert rows[2][1] == {"audiences": ["business", "x"]}


@pytest.mark.parametrize("text", ["", "email,phone\na@x.nl,+31612345678\n"])
def test_a_header_without_audiences_is_refused(text: str) -> None:
    with pytest.raises(CsvHeaderError, match="'audiences' column"):
        list(csv_rows(io.StringIO(text), "people.csv"))
