"""Driving the service and checking the fakes: post announcements, wait, verify ledgers."""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from bench.stack import FakeServer, Stack


def new_tag() -> str:
    """A marker the fakes find in every rendering of one announcement."""
    return secrets.token_hex(5)


def announcement(tag: str, channels: list[str], severity: str = "minor") -> dict[str, Any]:
    return {
        "title": f"Payments down BM-{tag}",
        "body": "Card payments fail since 09:10. We are on it; next update by 10:30.",
        "severity": severity,
        "status": "investigating",
        "audiences": ["everyone"],
        "channels": channels,
    }


def post(
    stack: Stack, body: dict[str, Any], key: str | None = None, timeout: float = 30
) -> tuple[int, Any, float]:
    """POST an announcement; (status, JSON answer, wall-clock time the answer arrived)."""
    request = urllib.request.Request(
        f"{stack.web_url}/api/v1/announcements", data=json.dumps(body).encode(), method="POST"
    )
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", f"Bearer {stack.token}")
    if key:
        request.add_header("Idempotency-Key", key)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read())
            return response.status, answer, time.time()
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null"), time.time()


def publish(stack: Stack, tag: str, channels: list[str]) -> tuple[str, float, float]:
    """Publish one announcement; (id, wall time before the POST, wall time of the 202)."""
    began = time.time()
    for attempt in range(3):
        # The Idempotency-Key makes a retry after a dropped connection safe: no second send.
        try:
            status, answer, at = post(stack, announcement(tag, channels), key=f"bench-{tag}")
        except OSError:
            if attempt == 2:
                raise
            time.sleep(1)
            continue
        if status < 500:
            break
        time.sleep(1)
    if status != 202 or answer.get("state") != "published":
        raise RuntimeError(f"POST /api/v1/announcements answered {status}: {answer}")
    return answer["id"], began, at


def counts(stack: Stack, announcement_id: str) -> dict[str, dict[str, int]]:
    """The service's own per-channel delivery counts."""
    request = urllib.request.Request(f"{stack.web_url}/api/v1/announcements/{announcement_id}")
    request.add_header("Authorization", f"Bearer {stack.token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["deliveries"]


def wait_until(
    check: Callable[[], bool], timeout: float, interval: float = 0.05, what: str = "it"
) -> bool:
    """Poll ``check`` until true or ``timeout`` seconds pass; returns whether it came true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return False


def wait_accepted(fake: FakeServer, expected: int, timeout: float, settle: float = 1.0) -> bool:
    """Wait until the fake accepted ``expected`` recipients, then a little longer.

    The extra ``settle`` seconds give a duplicate the chance to arrive and be caught.
    """
    done = wait_until(lambda: fake.stats()["accepted"] >= expected, timeout, 0.1)
    time.sleep(settle)
    return done


def exactly_once(
    lines: Iterable[dict[str, Any]],
    expected: set[str],
    key: Callable[[dict[str, Any], str], str] = lambda line, to: to,
    label: str = "",
) -> list[str]:
    """Violations of 'every expected recipient accepted exactly once, nobody else'."""
    seen: Counter[str] = Counter()
    for line in lines:
        if 200 <= line["s"] < 300:
            for to in line["to"]:
                seen[key(line, to)] += 1
    problems = []
    duplicates = {k: n for k, n in seen.items() if n > 1}
    missing = expected - seen.keys()
    unexpected = seen.keys() - expected
    if duplicates:
        sample = ", ".join(list(duplicates)[:3])
        problems.append(f"{label}{len(duplicates)} recipients got more than one ({sample}…)")
    if missing:
        sample = ", ".join(sorted(missing)[:3])
        problems.append(f"{label}{len(missing)} of {len(expected)} recipients got none ({sample}…)")
    if unexpected:
        sample = ", ".join(sorted(unexpected)[:3])
        problems.append(f"{label}{len(unexpected)} unexpected recipients ({sample}…)")
    return problems


def statuses(lines: Iterable[dict[str, Any]]) -> Counter[int]:
    """Requests per HTTP status in a ledger."""
    return Counter(line["s"] for line in lines)
