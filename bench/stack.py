"""The processes of one benchmark: Redis, fake providers, gunicorn and workers.

Everything is started in its own session and stopped — whatever happens, Ctrl-C included —
when the ``Stack`` context ends, so a benchmark never leaves a process behind.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

import redis

from bench import fakes
from broadcaster.domain.tokens import create_token
from broadcaster.infra.redis_server import EmbeddedRedis, free_port

# Where the bench package lives, and the service code it runs: the working tree, or a
# snapshot of a git revision (``--source REV``, set up by ``bench.__main__``).
BENCH_PARENT = Path(__file__).resolve().parent.parent
ROOT = Path(os.environ.get("BENCH_SOURCE_DIR") or BENCH_PARENT)
PYTHONPATH = os.pathsep.join(dict.fromkeys([str(ROOT), str(BENCH_PARENT)]))
PLAN = Path(__file__).resolve().parent / "plan.toml"
SET = "BENCH_SET_"  # prefix of service settings given with --env
# Rate settings of a provider rate limiter (if the service has one): high unless a
# scenario paces on purpose. Unknown settings are ignored by the service.
HIGH_RATES = {
    "BROADCASTER_TWILIO_RATE": "100000",
    "BROADCASTER_SENDGRID_RATE": "100000",
    "BROADCASTER_MASTODON_RATE": "100000",
}


def wait_port(port: int, timeout: float = 20.0, process: subprocess.Popen | None = None) -> None:
    """Wait until something listens on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


def call(url: str, body: Any = None, timeout: float = 10.0) -> Any:
    """A small JSON request to a fake's control endpoint."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


class FakeServer:
    """A running fake provider: its URL, its current ledger and its counters."""

    def __init__(self, kind: str, port: int, ledger: Path) -> None:
        self.kind, self.port, self.ledger = kind, port, ledger
        self.url = f"http://127.0.0.1:{port}"
        self.generation = 0

    def stats(self, tag: str | None = None) -> dict[str, Any]:
        return call(f"{self.url}/_bench/stats" + (f"?tag={tag}" if tag else ""))

    def rotate(self, label: str) -> None:
        """Start a fresh ledger and counters (one per run)."""
        self.generation += 1
        self.ledger = self.ledger.with_name(f"{self.kind}-{label}-{self.generation}.jsonl")
        call(f"{self.url}/_bench/rotate", {"ledger": str(self.ledger)})

    def read(self) -> list[dict[str, Any]]:
        """Every ledger line of the current run (flushed first)."""
        call(f"{self.url}/_bench/flush", {})
        with self.ledger.open() as handle:
            return [json.loads(line) for line in handle if line.strip()]


class Stack:
    """Starts the pieces on demand; ``with Stack() as stack:`` stops them all at the end."""

    def __init__(self, label: str, keep: bool = False) -> None:
        self.label = label
        self.dir = Path(tempfile.mkdtemp(prefix=f"bench-{label}-"))
        self.keep = keep
        self.processes: list[subprocess.Popen[bytes]] = []
        self.workers: list[subprocess.Popen[bytes]] = []
        self.redis_server: EmbeddedRedis | None = None
        self.fakes: dict[str, FakeServer] = {}
        self.env: dict[str, str] = {}
        self.web_url = ""
        self.token = ""

    def __enter__(self) -> Stack:
        # SIGTERM (e.g. from a CI runner or `kill`) cleans up like Ctrl-C does.
        self._old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
        signal.signal(signal.SIGTERM, self._old_term)

    @property
    def redis(self) -> redis.Redis:
        assert self.redis_server is not None
        return redis.Redis.from_url(self.redis_server.url)

    def start_redis(self) -> None:
        self.redis_server = EmbeddedRedis(self.dir / "redis").start()
        self.token = create_token(self.redis, "bench", "admin")

    def start_fake(
        self, kind: str, latency: float = 0.0, rate: float = 0.0, error_ratio: float = 0.0
    ) -> FakeServer:
        port = free_port()
        ledger = self.dir / f"{kind}-start.jsonl"
        command = [
            sys.executable,
            "-m",
            "bench.fakes",
            kind,
            f"--port={port}",
            f"--ledger={ledger}",
            f"--latency={latency}",
            f"--rate={rate}",
            f"--error-ratio={error_ratio}",
        ]
        process = self._spawn(command, f"fake-{kind}", self.processes)
        wait_port(port, process=process)
        self.fakes[kind] = FakeServer(kind, port, ledger)
        return self.fakes[kind]

    def service_env(self, **extra: str) -> dict[str, str]:
        """The service's environment: our Redis, plan and fakes, nothing from the caller."""
        assert self.redis_server is not None
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("BROADCASTER_", "SENDGRID_", "TWILIO_")) and k != "REDIS_URL"
        }
        env.update(
            BROADCASTER_DOTENV="/nonexistent/.env",
            BROADCASTER_REDIS_URL=self.redis_server.url,
            BROADCASTER_DATA_DIR=str(self.dir / "data"),
            BROADCASTER_PLAN=str(PLAN),
            BROADCASTER_SECRET_KEY="bench-secret-key-not-for-production",
            BROADCASTER_EMAIL_FROM="alerts@bench.example",
            PYTHONPATH=PYTHONPATH,
            **HIGH_RATES,
        )
        if "sendgrid" in self.fakes:
            env["BROADCASTER_SENDGRID_API_KEY"] = fakes.SENDGRID_KEY
            env["BROADCASTER_SENDGRID_BASE_URL"] = self.fakes["sendgrid"].url
        if "twilio" in self.fakes:
            env["BROADCASTER_TWILIO_ACCOUNT_SID"] = fakes.TWILIO_SID
            env["BROADCASTER_TWILIO_AUTH_TOKEN"] = fakes.TWILIO_TOKEN
            env["BROADCASTER_TWILIO_FROM"] = "+3197010000000"
            env["BROADCASTER_TWILIO_BASE_URL"] = self.fakes["twilio"].url
        if "mastodon" in self.fakes:
            env["BROADCASTER_MASTODON_BASE_URL"] = self.fakes["mastodon"].url
            env["BROADCASTER_MASTODON_ACCESS_TOKEN"] = fakes.MASTODON_TOKEN
        env.update(extra)
        # `--env KEY=VALUE` (what-if: a service setting) wins over everything else.
        env.update({k[len(SET) :]: v for k, v in os.environ.items() if k.startswith(SET)})
        self.env = env
        return env

    def start_web(self) -> str:
        """gunicorn as the Procfile runs it (2 workers × 4 threads), unless told otherwise.

        ``BENCH_GUNICORN`` replaces the worker options (what-if: another server shape).
        """
        port = free_port()
        shape = os.environ.get("BENCH_GUNICORN") or "--workers 2 --threads 4"
        app = "broadcaster:create_app()"
        command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}"]
        # Where the revision under test keeps it (``--source`` runs older ones); a silent
        # miss would measure gunicorn without reuse_port and gc.freeze.
        for module in ("broadcaster.infra.gunicorn_config", "broadcaster.gunicorn_config"):
            if (ROOT / (module.replace(".", "/") + ".py")).exists():
                command += ["--config", f"python:{module}"]
                break
        command += [*shape.split(), "--no-control-socket", "--graceful-timeout", "5", app]
        process = self._spawn(command, "web", self.processes)
        wait_port(port, timeout=60, process=process)
        self.web_url = f"http://127.0.0.1:{port}"
        # The master listens before its workers have imported the app: wait for an answer.
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.web_url}/healthz", timeout=5) as answer:
                    if answer.status == 200:
                        return self.web_url
            except OSError as exc:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"gunicorn does not answer; see {self.dir}/web.log") from exc
            time.sleep(0.1)

    def start_workers(self, count: int) -> list[subprocess.Popen[bytes]]:
        """``count`` × ``python worker.py``, waiting until each has registered with RQ."""
        started = [
            self._spawn([sys.executable, str(ROOT / "worker.py")], f"worker{i}", self.workers)
            for i in range(len(self.workers), len(self.workers) + count)
        ]
        deadline = time.monotonic() + 60
        while self.redis.scard("rq:workers") < len(self.workers):
            if time.monotonic() > deadline or any(p.poll() is not None for p in started):
                raise RuntimeError(f"workers did not start; see {self.dir}/worker*.log")
            time.sleep(0.1)
        return started

    def stop_workers(self) -> None:
        for process in self.workers:
            _terminate(process)
        self.workers.clear()

    def _spawn(
        self, command: list[str], name: str, into: list[subprocess.Popen[bytes]]
    ) -> subprocess.Popen[bytes]:
        log = (self.dir / f"{name}.log").open("ab")
        env = self.env or {k: v for k, v in os.environ.items()}
        env.setdefault("PYTHONPATH", PYTHONPATH)
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # our own group: one killpg stops its children too
        )
        into.append(process)
        return process

    def stop(self) -> None:
        """Stop every process we started: workers, web, fakes, then Redis."""
        for process in [*self.workers, *reversed(self.processes)]:
            _terminate(process)
        self.workers.clear()
        self.processes.clear()
        if self.redis_server is not None:
            self.redis_server.stop()
            self.redis_server = None
        if not self.keep:
            subprocess.run(["rm", "-rf", str(self.dir)], check=False)


def _terminate(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL it if it lingers."""
    if process.poll() is not None:
        try:  # the leader is gone; its group may not be (e.g. gunicorn's workers)
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
