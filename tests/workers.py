"""Real ``python worker.py`` processes for the crash, rate and restart tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import redis
from rq import Worker

from tests.conftest import TWILIO_FROM
from tests.fakes import FakeSendGrid, FakeTwilio
from tests.processes import clean_env, start, wait_for

ROOT = Path(__file__).resolve().parent.parent


def worker_env(
    redis_url: str, sendgrid: FakeSendGrid, twilio: FakeTwilio, data_dir: Path, **extra: str
) -> dict[str, str]:
    """The environment of a worker process wired to the fake providers."""
    return clean_env(
        BROADCASTER_REDIS_URL=redis_url,
        BROADCASTER_DATA_DIR=str(data_dir),
        BROADCASTER_SENDGRID_API_KEY=FakeSendGrid.API_KEY,
        BROADCASTER_SENDGRID_BASE_URL=sendgrid.url,
        BROADCASTER_EMAIL_FROM="alerts@acme.example",
        BROADCASTER_TWILIO_ACCOUNT_SID=FakeTwilio.ACCOUNT_SID,
        BROADCASTER_TWILIO_AUTH_TOKEN=FakeTwilio.AUTH_TOKEN,
        BROADCASTER_TWILIO_FROM=TWILIO_FROM,
        BROADCASTER_TWILIO_BASE_URL=twilio.url,
        BROADCASTER_RETRY_BACKOFF="0",
        BROADCASTER_SECRET_KEY="test-secret",
        **extra,
    )


class Workers:
    """N worker processes, each in its own process group (a kill takes its children too)."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env, self.log_dir = env, log_dir
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, r: redis.Redis, count: int) -> Workers:
        """Start ``count`` more workers and wait until RQ has seen them all."""
        for _ in range(count):
            n = len(self.processes)
            log = self.log_dir / f"worker{n}.log"
            self.processes.append(
                start([sys.executable, str(ROOT / "worker.py")], self.env, self.log_dir, log)
            )
        alive = {p.pid for p in self.processes if p.poll() is None}
        wait_for(
            lambda: alive <= {w.pid for w in Worker.all(connection=r)},
            timeout=30,
            what=f"{len(alive)} workers registered",
        )
        return self

    def kill(self, pid: int) -> None:
        """SIGKILL one worker and everything it started (as when its machine dies)."""
        os.killpg(pid, signal.SIGKILL)
        for p in self.processes:
            if p.pid == pid:
                p.wait()

    def stop(self) -> None:
        """Stop every worker still running; SIGKILL those that do not stop in time."""
        for p in self.processes:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.processes:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text()[-3000:]}"
            for path in sorted(self.log_dir.glob("worker*.log"))
        )
