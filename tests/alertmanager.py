"""A real Prometheus Alertmanager as a child process, for tests.

Its own free port on 127.0.0.1, its own storage directory, no clustering (no gossip port),
so it never meets a system Alertmanager on :9093.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from broadcaster.infra.redis_server import free_port
from tests.processes import clean_env, http, start

# Debian's package names it prometheus-alertmanager; upstream's tarball alertmanager.
BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")

GROUP_WAIT = 1.0  # seconds before a new group's first notification
GROUP_INTERVAL = 2.0  # seconds between notifications about a changed group


def rfc3339(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def alert(labels: dict[str, str], summary: str, starts_at: float, ends_at: float) -> dict[str, Any]:
    """One alert as Prometheus posts it to ``/api/v2/alerts``."""
    return {
        "labels": labels,
        "annotations": {"summary": summary},
        "startsAt": rfc3339(starts_at),
        "endsAt": rfc3339(ends_at),
    }


def config(webhook_url: str, token: str) -> str:
    """One route, one webhook receiver with a Bearer token, resolves sent too."""
    return f"""\
route:
  receiver: broadcaster
  group_by: ['alertname', 'service']
  group_wait: {GROUP_WAIT:g}s
  group_interval: {GROUP_INTERVAL:g}s
  repeat_interval: 1h
receivers:
  - name: broadcaster
    webhook_configs:
      - url: {json.dumps(webhook_url)}
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: {json.dumps(token)}
"""


def stop(process: subprocess.Popen[bytes] | None, timeout: float = 15) -> None:
    """SIGTERM, wait; if it will not go, SIGKILL its whole session (started with its own)."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


class Alertmanager:
    """``prometheus-alertmanager`` with its config and storage in ``directory``."""

    def __init__(self, directory: Path, webhook_url: str, token: str) -> None:
        assert BINARY, "no Alertmanager binary"
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config_file = directory / "alertmanager.yml"
        self.config_file.write_text(config(webhook_url, token))
        self.log = directory / "alertmanager.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [
            BINARY,
            f"--config.file={self.config_file}",
            f"--storage.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",
            "--log.level=debug",
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20) -> Alertmanager:
        self.process = start(self.command, clean_env(), self.directory, self.log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"Alertmanager exited:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return self
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.05)
        raise AssertionError(f"Alertmanager not ready after {timeout}s:\n{self.log_tail()}")

    def post(self, *alerts: dict[str, Any]) -> None:
        """Post alerts as Prometheus does (a firing alert, or with a past endsAt: resolved)."""
        status, body = http("POST", self.url + "/api/v2/alerts", body=list(alerts))
        assert status == 200, (status, body)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self) -> None:
        stop(self.process)
