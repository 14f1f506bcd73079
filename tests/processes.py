"""Helpers to run the service's real processes (CLI, gunicorn, worker.py) in tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent


def broadcaster_command() -> list[str]:
    """The installed console script (fall back to ``python -m broadcaster``)."""
    script = BIN / "broadcaster"
    if script.exists():
        return [str(script)]
    found = shutil.which("broadcaster")
    return [found] if found else [sys.executable, "-m", "broadcaster"]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any Redis or provider setting, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BROADCASTER_", "SENDGRID_", "TWILIO_")) and k != "REDIS_URL"
    }
    env["BROADCASTER_DOTENV"] = "/nonexistent/.env"
    env.update(extra)
    return env


def http(
    method: str, url: str, body: Any = None, token: str | None = None, timeout: float = 10
) -> tuple[int, Any]:
    """A JSON request with urllib; returns (status, parsed body)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def wait_for(predicate, timeout: float = 30, interval: float = 0.2, what: str = "condition"):  # type: ignore[no-untyped-def]
    """Poll until ``predicate()`` is truthy; return its value."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (OSError, urllib.error.URLError) as exc:
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last error: {last_error})")


def descendants(pid: int) -> set[int]:
    """All living descendants of ``pid`` (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def web_command(port: int, *options: str) -> list[str]:
    """gunicorn as the Procfile runs it (our config module), on 127.0.0.1:``port``.

    ``--no-control-socket``: not the ~/.gunicorn/gunicorn.ctl shared by every test's server.
    """
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "python:broadcaster.infra.gunicorn_config",
        "--bind",
        f"127.0.0.1:{port}",
        "--no-control-socket",
        *options,
        "broadcaster:create_app()",
    ]


def start(command: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    return subprocess.Popen(
        command, env=env, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
    )
