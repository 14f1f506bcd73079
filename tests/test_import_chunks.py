"""A chunked import (rows checked in a child process, a chunk prepared while the one
before is written) stores exactly what the same chunks stored one after the other store,
and, a row per chunk, what importing the rows one at a time stores."""

from __future__ import annotations

import gc
from typing import Any

import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broadcaster.domain.plan import BUNDLED_PLAN, load_plan
from broadcaster.domain.subscriber_import import import_rows
from broadcaster.domain.subscriber_rows import SubscriberRow
from broadcaster.domain.subscribers import SubscriberStore

PLAN = load_plan(str(BUNDLED_PLAN))

# Few values, so rows of one person meet across chunks: by external id, then email,
# then phone, and a person's email or phone changes on the way.
ROW = st.fixed_dictionaries(
    {},
    optional={
        "external_id": st.sampled_from(["A", "B", "C"]),
        "email": st.sampled_from(["a@example.com", "b@example.com", "c@example.com"]),
        "phone": st.sampled_from(["+31612345001", "+31612345002", "+31612345003"]),
        "locale": st.sampled_from(["en", "nl"]),
        "channels": st.sampled_from([["sms"], ["email", "sms"]]),
        "audiences": st.sampled_from([["consumers"], ["business"], ["consumers", "business"]]),
    },
)


def _second_db(r: redis.Redis) -> redis.Redis:
    pool = r.connection_pool
    other = redis.Redis(
        connection_pool=redis.ConnectionPool(
            connection_class=pool.connection_class, **{**pool.connection_kwargs, "db": 1}
        )
    )
    other.flushdb()
    return other


def _stored(store: SubscriberStore) -> tuple[list[tuple[Any, ...]], dict[str, Any]]:
    """Everyone as stored (without ids and times), and who each contact finds."""
    people = store.page(0, 1000)
    shown = sorted(
        repr((p["external_id"], p["email"], p["phone"], p["locale"], p["audiences"], p["channels"]))
        for p in people
    )
    by_id = {p["id"]: repr((p["external_id"], p["email"], p["phone"])) for p in people}
    found = {}
    for kind, values in (
        ("ext", ["A", "B", "C"]),
        ("email", ["a@example.com", "b@example.com", "c@example.com"]),
        ("phone", ["+31612345001", "+31612345002", "+31612345003"]),
    ):
        for value in values:
            sid = store.find_by_contact(kind, value)
            found[f"{kind}:{value}"] = by_id.get(sid) if sid else None
    audiences = {
        audience: sorted(by_id[sid] for sid in ids)
        for audience in ("consumers", "business")
        for ids in store.ids_in([audience], chunk=1000)
    }
    return shown, {"index": found, "audiences": audiences}


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(ROW, max_size=12))
def test_a_row_per_chunk_stores_what_one_row_at_a_time_stores(r: redis.Redis, rows) -> None:
    r.flushdb()
    chunked = SubscriberStore(r)
    report = import_rows(enumerate(rows), PLAN, chunked, chunk=1)

    one_by_one = SubscriberStore(_second_db(r))
    schema = SubscriberRow(PLAN)
    created = updated = 0
    rejected = []
    for index, row in enumerate(rows):
        try:
            valid = schema.load(row)
        except Exception:  # noqa: BLE001 - the reasons are compared by position below
            rejected.append(index)
            continue
        _, new = one_by_one.upsert(valid)
        created, updated = created + new, updated + (not new)

    assert (report["created"], report["updated"]) == (created, updated)
    assert [row["index"] for row in report["rejected"]] == rejected
    assert _stored(chunked) == _stored(one_by_one)
    assert chunked.count() == one_by_one.count()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(ROW, max_size=15))
def test_chunks_prepared_while_others_are_written_store_what_chunks_in_turn_store(
    r: redis.Redis, rows
) -> None:
    r.flushdb()
    chunked = SubscriberStore(r)
    report = import_rows(enumerate(rows), PLAN, chunked, chunk=3)

    in_turn = SubscriberStore(_second_db(r))
    schema = SubscriberRow(PLAN)
    outcome: list[tuple[str, bool]] = []
    for start in range(0, len(rows), 3):
        valid = []
        for row in rows[start : start + 3]:
            try:
                valid.append(schema.load(row))
            except Exception:  # noqa: BLE001 - rejected rows are counted apart
                continue
        outcome += in_turn.upsert_many(valid)
    created = sum(new for _, new in outcome)
    assert (report["created"], report["updated"]) == (created, len(outcome) - created)
    assert _stored(chunked) == _stored(in_turn)


def test_a_large_import_streams_through_the_child_and_leaves_the_collector_on(r) -> None:
    rows = [
        (i, {"email": f"p{i}@example.com", "phone": f"+3161{i:07d}", "audiences": ["consumers"]})
        for i in range(2500)
    ]
    rows[1700] = (1700, {"email": "broken@", "audiences": ["consumers"]})
    store = SubscriberStore(r)
    progress: list[tuple[int, int]] = []
    report = import_rows(rows, PLAN, store, on_progress=lambda n, bad: progress.append((n, bad)))
    assert (report["created"], report["updated"]) == (2499, 0)
    assert [row["index"] for row in report["rejected"]] == [1700]
    assert progress == [(1000, 0), (2000, 1), (2500, 1)]
    assert store.count() == 2499 and store.count("consumers") == 2499
    assert store.find_by_contact("phone", "+31610002499") is not None
    assert gc.isenabled()


def test_a_contact_changed_within_a_chunk_finds_nobody_any_more(r) -> None:
    store = SubscriberStore(r)
    rows = [
        {"external_id": "A", "phone": "+31612345001", "audiences": ["consumers"]},
        {"external_id": "A", "phone": "+31612345002", "audiences": ["consumers"]},
    ]
    report = import_rows(enumerate(rows), PLAN, store)
    assert (report["created"], report["updated"]) == (1, 1)
    person = store.find_by_contact("ext", "A")
    assert store.find_by_contact("phone", "+31612345002") == person
    assert store.find_by_contact("phone", "+31612345001") is None
