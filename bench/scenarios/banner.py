"""banner-load and summary-load: wrk against ``/banner.json`` and the Statuspage-compatible
``/api/v2/summary.json`` on gunicorn, plain and with If-None-Match."""

from __future__ import annotations

import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

from bench import drive
from bench.report import Result
from bench.scenarios import Options
from bench.stack import Stack

# wrk counts every answer's status per thread; done() adds them up and prints them.
STATUS_SCRIPT = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function response(status, headers, body) statuses[status] = (statuses[status] or 0) + 1 end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do total[k] = (total[k] or 0) + v end
  end
  for k, v in pairs(total) do io.write(string.format("status %d %d\\n", k, v)) end
end
"""
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(url: str, seconds: float, script: Path, header: str | None = None) -> dict[str, float]:
    """Run wrk (2 threads, 50 connections); requests/s, p50/p99 in ms, and status counts."""
    command = [shutil.which("wrk") or "/usr/bin/wrk", "-t2", "-c50", f"-d{seconds:.0f}s"]
    command += ["--latency", "-s", str(script)]
    if header:
        command += ["-H", header]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    figures: dict[str, float] = {}
    figures["rps"] = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    for share in ("50", "99"):
        found = re.search(rf"^\s+{share}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        figures[f"p{share}"] = float(found.group(1)) * _UNITS[found.group(2)]  # type: ignore[union-attr]
    for status, count in re.findall(r"^status (\d+) (\d+)$", out, re.M):
        figures[f"status {status}"] = float(count)
    return figures


def _other_statuses(figures: dict[str, float], wanted: int) -> dict[str, float]:
    """Answers wrk counted with a status other than ``wanted``."""
    return {k: v for k, v in figures.items() if k.startswith("status ") and k != f"status {wanted}"}


def banner_load(opts: Options) -> Result:
    """A published banner under wrk: ≥ 3,000 requests/s with p99 ≤ 20 ms; 304s on a match."""
    return _load(opts, "banner-load", "/banner.json?audience=everyone&lang=en", None)


def summary_load(opts: Options) -> Result:
    """``/api/v2/summary.json`` with an open incident that set a component's state: served
    from the same stored documents and microcache as the banner, so the same bar."""
    return _load(opts, "summary-load", "/api/v2/summary.json", {"payments": "major_outage"})


def _load(opts: Options, name: str, path: str, components: dict[str, str] | None) -> Result:
    result = Result(name, {"wrk": "2 threads, 50 connections", "seconds": opts.duration})
    result.metric("requests/s (200)", "req/s", ">=", 3000)
    result.metric("p99 (200)", "ms", "<=", 20)
    result.metric("p50 (200)", "ms")
    result.metric("requests/s (304, If-None-Match)", "req/s", ">=", 3000)
    result.metric("p99 (304)", "ms", "<=", 20)
    with Stack(name, keep=opts.keep) as stack:
        stack.start_redis()
        stack.service_env()
        stack.start_web()
        tag = drive.new_tag()
        if components:
            body = {**drive.announcement(tag, ["banner"]), "components": components}
            status, answer, _ = drive.post(stack, body, key=f"bench-{tag}")
            if status != 202:
                raise RuntimeError(f"POST /api/v1/announcements answered {status}: {answer}")
        else:
            drive.publish(stack, tag, ["banner"])
        url = f"{stack.web_url}{path}"
        with urllib.request.urlopen(url, timeout=10) as response:
            body, etag = response.read().decode(), response.headers["ETag"]
        if f"BM-{tag}" not in body:
            result.violations.append(f"the published announcement is not in {path}")
        if components and '"major_outage"' not in body:
            result.violations.append(f"the component's state is not in {path}")
        script = stack.dir / "status.lua"
        script.write_text(STATUS_SCRIPT)
        for run in range(opts.runs):
            label = f"run {run + 1}: "
            plain = wrk(url, opts.duration, script)
            cached = wrk(url, opts.duration, script, f"If-None-Match: {etag}")
            result.add("requests/s (200)", plain["rps"])
            result.add("p99 (200)", plain["p99"])
            result.add("p50 (200)", plain["p50"])
            result.add("requests/s (304, If-None-Match)", cached["rps"])
            result.add("p99 (304)", cached["p99"])
            for figures, wanted, what in ((plain, 200, "plain"), (cached, 304, "If-None-Match")):
                others = _other_statuses(figures, wanted)
                if others:
                    result.violations.append(f"{label}{what} requests answered {others}")
    result.runs = opts.runs
    return result
