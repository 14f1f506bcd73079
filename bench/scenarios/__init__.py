"""The scenarios of issue #8, by name; each takes ``Options`` and returns a ``Result``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench.report import Result


@dataclass
class Options:
    """Command-line sizes; None means the scenario's default (the issue's size)."""

    runs: int = 3
    recipients: int | None = None
    workers: int | None = None
    # api-accept: announcements posted; first-message: sequence; status-load: past incidents
    requests: int | None = None
    duration: float = 10.0  # banner-load: seconds per wrk run; status-load: per path
    baseline_budget: float = 10.0  # seconds the one-at-a-time baseline runs per run
    keep: bool = False  # keep the temp dir (logs, ledgers) for a post-mortem


def registry() -> dict[str, Callable[[Options], Result]]:
    """Scenario name → function (imported here, so ``--help`` stays fast)."""
    from bench.scenarios import banner, fanout, imports, latency, status

    return {
        "fanout-email": fanout.fanout_email,
        "fanout-sms": fanout.fanout_sms,
        "first-message": latency.first_message,
        "paced-sms": fanout.paced_sms,
        "api-accept": latency.api_accept,
        "banner-load": banner.banner_load,
        "summary-load": banner.summary_load,
        "status-load": status.status_load,
        "memory": fanout.memory,
        "import": imports.import_rows_per_second,
    }


NAMES = (
    "fanout-email",
    "fanout-sms",
    "first-message",
    "paced-sms",
    "api-accept",
    "banner-load",
    "summary-load",
    "status-load",
    "memory",
    "import",
)
