"""Results: metrics with targets, the printed table and ``bench/results/<scenario>.json``."""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

RESULTS = Path(os.environ.get("BENCH_HOME") or Path(__file__).resolve().parent) / "results"


@dataclass
class Metric:
    """One figure measured once per run, with its target (``op`` is ``<=``, ``>=`` or None)."""

    name: str
    unit: str
    op: str | None = None
    target: float | None = None
    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    @property
    def passed(self) -> bool | None:
        if self.op is None or self.target is None or self.median is None:
            return None
        return self.median <= self.target if self.op == "<=" else self.median >= self.target


@dataclass
class Result:
    """One scenario's figures over its runs, and every correctness violation found."""

    scenario: str
    sizes: dict[str, Any]
    metrics: dict[str, Metric] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    runs: int = 0

    def metric(self, name: str, unit: str, op: str | None = None, target: float | None = None):
        """Get or declare a metric (declaration order is table order)."""
        if name not in self.metrics:
            self.metrics[name] = Metric(name, unit, op, target)
        return self.metrics[name]

    def add(self, name: str, value: float) -> None:
        self.metrics[name].values.append(value)

    @property
    def passed(self) -> bool:
        return not self.violations and all(m.passed is not False for m in self.metrics.values())


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def table(results: list[Result]) -> str:
    """The human table: scenario, metric, median, min–max, target, pass/fail."""
    rows = [("scenario", "metric", "median", "min–max", "target", "result")]
    for result in results:
        for metric in result.metrics.values():
            spread = (
                f"{_fmt(min(metric.values))}–{_fmt(max(metric.values))}" if metric.values else "-"
            )
            target = f"{metric.op} {_fmt(metric.target)}" if metric.target is not None else ""
            verdict = {True: "pass", False: "FAIL", None: ""}[metric.passed]
            rows.append(
                (
                    f"{result.scenario} ({result.runs} runs)",
                    f"{metric.name} [{metric.unit}]",
                    _fmt(metric.median),
                    spread,
                    target,
                    verdict,
                )
            )
        ledger = "ok" if not result.violations else f"{len(result.violations)} VIOLATIONS"
        rows.append((f"{result.scenario} ({result.runs} runs)", "exactly once", ledger, "", "", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for result in results:
        for violation in result.violations[:10]:
            lines.append(f"! {result.scenario}: {violation}")
        for note in result.notes:
            lines.append(f"  {result.scenario}: {note}")
    return "\n".join(lines)


def save(result: Result) -> Path:
    """Write the result as JSON to ``bench/results/<scenario>.json``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = asdict(result)
    data["metrics"] = [
        {**asdict(m), "median": m.median, "passed": m.passed} for m in result.metrics.values()
    ]
    data["passed"] = result.passed
    data["machine"] = {
        "cpus": psutil.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    # What was measured: a snapshot of a git revision, or the working tree as it was.
    data["source"] = os.environ.get("BENCH_SOURCE_REV") or "working tree"
    data["what_if"] = {k: os.environ[k] for k in os.environ if k.startswith("BENCH_GUNICORN")} | {
        k: v for k, v in os.environ.items() if k.startswith("BENCH_SET_")
    }
    data["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    path = RESULTS / f"{result.scenario}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def percentile(values: list[float], share: float) -> float:
    """The ``share`` (0..1) percentile, nearest-rank: what p50/p99 usually mean."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), math.ceil(share * len(ordered))))
    return ordered[rank - 1]
