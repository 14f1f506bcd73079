"""``import``: how fast ``broadcaster subscribers import`` reads a typical CSV, against the
one-row-at-a-time path (a marshmallow ``load`` and one upsert per row) as the baseline,
and how much memory the command needs for it; then the same file sent to
``POST /api/v1/subscribers/import`` of the service (gunicorn as in the Procfile).

Each run imports a fresh CSV of new people (email, phone, locale, audiences) into an
empty Redis with the real command, in its own process, sampling its RSS.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import redis

from bench.report import Result
from bench.scenarios import Options
from bench.stack import Stack
from broadcaster.domain.plan import BUNDLED_PLAN, load_plan
from broadcaster.domain.subscriber_import import csv_rows
from broadcaster.domain.subscriber_rows import SubscriberRow
from broadcaster.domain.subscribers import SubscriberStore
from broadcaster.domain.tokens import create_token

ROWS = 100_000


def write_csv(path: Path, rows: int, offset: int = 0) -> None:
    """A typical export: one person per line, a mobile number, a language, an audience."""
    locales = ("en", "nl", "da", "sv")
    with path.open("w") as out:
        out.write("external_id,email,phone,locale,audiences,channels\n")
        for i in range(offset, offset + rows):
            audience = "consumers" if i % 5 else "consumers;business"
            out.write(
                f"c{i},person.{i}@example{i % 97}.com,+3161{i % 10_000_000:07d},"
                f"{locales[i % 4]},{audience},\n"
            )


def import_rows_per_second(opts: Options) -> Result:
    """≥ 25,000 rows/s for a typical CSV; peak RSS of the command ≤ 300 MB."""
    rows = opts.recipients or ROWS
    result = Result(
        "import",
        {"rows": rows, "columns": "external_id,email,phone,locale,audiences", "runs": opts.runs},
    )
    result.metric("rows/s", "rows/s", ">=", 25_000)
    result.metric("API rows/s (POST /api/v1/subscribers/import)", "rows/s", ">=", 25_000)
    result.metric("baseline rows/s (one row at a time)", "rows/s")
    result.metric("ratio to baseline", "x")
    result.metric("peak RSS (command + its child)", "MB", "<=", 300)
    with Stack("import", keep=opts.keep) as stack:
        stack.start_redis()
        # The example plan: four languages, consumers and business (the bench plan has one).
        env = stack.service_env(BROADCASTER_PLAN=str(BUNDLED_PLAN))
        r = stack.redis
        for run in range(opts.runs):
            r.flushdb()
            csv = stack.dir / f"people-{run}.csv"
            write_csv(csv, rows)
            started = time.perf_counter()
            command = [sys.executable, "-m", "broadcaster", "subscribers", "import", str(csv)]
            process = subprocess.Popen(
                command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            peak = _peak_rss(process)
            out, err = process.communicate()
            seconds = time.perf_counter() - started
            if process.returncode != 0 or f"created {rows}" not in out.decode():
                result.violations.append(f"run {run}: {out.decode()[-300:]} {err.decode()[-300:]}")
            if r.zcard("bc:subs") != rows:
                result.violations.append(f"run {run}: {r.zcard('bc:subs')} stored, not {rows}")
            result.add("rows/s", rows / seconds)
            result.add("peak RSS (command + its child)", peak / 1e6)
            baseline = _baseline(r, stack.dir / "baseline.csv", opts.baseline_budget)
            result.add("baseline rows/s (one row at a time)", baseline)
            result.add("ratio to baseline", rows / seconds / baseline)
            result.runs += 1
        stack.start_web()
        for run in range(opts.runs):
            r.flushdb()
            stack.token = create_token(r, "bench", "admin")
            csv = stack.dir / f"api-{run}.csv"
            write_csv(csv, rows)
            seconds, report = _post_csv(stack.web_url, stack.token, csv)
            if report.get("created") != rows:
                result.violations.append(f"API run {run}: {str(report)[:300]}")
            result.add("API rows/s (POST /api/v1/subscribers/import)", rows / seconds)
        result.notes.append("each run includes starting the command (Python, the plan, Redis)")
        result.notes.append("the API's time is the request's: upload, import, report")
    return result


def _post_csv(web_url: str | None, token: str, path: Path) -> tuple[float, dict]:
    """(seconds, report) of one CSV upload, streamed from the file."""
    with path.open("rb") as body:
        request = urllib.request.Request(
            f"{web_url}/api/v1/subscribers/import", data=body, method="POST"
        )
        request.add_header("Content-Type", "text/csv")
        request.add_header("Content-Length", str(path.stat().st_size))
        request.add_header("Authorization", f"Bearer {token}")
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=600) as response:
            report = json.loads(response.read())
        return time.perf_counter() - started, report


def _peak_rss(process: subprocess.Popen[bytes]) -> float:
    """The highest RSS seen while the command runs, its checking child's included (the
    two summed; sampled every 50 ms)."""
    watched = psutil.Process(process.pid)
    peak = 0.0
    while process.poll() is None:
        try:
            family = [watched, *watched.children(recursive=True)]
            peak = max(peak, sum(_rss(p) for p in family))
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    return peak


def _rss(process: psutil.Process) -> int:
    try:
        return int(process.memory_info().rss)
    except psutil.NoSuchProcess:
        return 0


def _baseline(r: redis.Redis, path: Path, budget: float) -> float:
    """Rows/s of the one-row-at-a-time path, for ``budget`` seconds, in this process."""
    write_csv(path, 50_000, offset=10_000_000)
    schema = SubscriberRow(load_plan(str(BUNDLED_PLAN)))
    store = SubscriberStore(r)
    done = 0
    started = time.perf_counter()
    with path.open() as lines:
        for _, row in csv_rows(lines):
            store.upsert(schema.load(row))
            done += 1
            if time.perf_counter() - started > budget:
                break
    return done / (time.perf_counter() - started)
