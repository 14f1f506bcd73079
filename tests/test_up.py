"""``broadcaster up``: one command starts Redis, web and workers; Ctrl-C stops all of it."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import urllib.request
from pathlib import Path

from broadcaster.cli import cores
from broadcaster.infra.redis_server import free_port
from tests.processes import (
    alive,
    broadcaster_command,
    clean_env,
    descendants,
    http,
    start,
    wait_for,
    web_command,
)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_up_runs_everything_and_ctrl_c_leaves_nothing_behind(tmp_path):
    data_dir = tmp_path / "var"
    env = clean_env(BROADCASTER_DATA_DIR=str(data_dir))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "up.log"

    up = start([*broadcaster_command(), "up", "--port", str(port)], env, tmp_path, log)
    try:
        wait_for(lambda: http("GET", base + "/readyz")[0] == 200, timeout=60, what="service ready")
        output = log.read_text()
        token = re.search(r"Admin API token \(shown once, keep it\): (\S+)", output).group(1)
        redis_port = int(re.search(r"Redis:\s+redis://127.0.0.1:(\d+)", output).group(1))
        assert "embedded" in output and f"http://127.0.0.1:{port}/api/v1/" in output

        status, report = http(
            "POST",
            base + "/api/v1/subscribers",
            token=token,
            body=[{"email": "a@example.com", "phone": "+31612345001", "audiences": ["consumers"]}],
        )
        assert status == 200 and report["created"] == 1
        status, accepted = http(
            "POST",
            base + "/api/v1/announcements",
            token=token,
            body={
                "title": "Test",
                "body": "Outbox demo",
                "severity": "minor",
                "audiences": ["consumers"],
                "channels": ["email", "sms"],
            },
        )
        assert status == 202
        ann = accepted["id"]

        def both_sent():
            items = http("GET", f"{base}/api/v1/announcements/{ann}/deliveries", token=token)[1][
                "items"
            ]
            return items if len(items) == 2 and all(d["state"] == "sent" for d in items) else None

        records = wait_for(both_sent, what="both channels sent through the outbox")
        assert all(d["message"] for d in records), "the outbox keeps the rendered message"

        children = descendants(up.pid)
        assert len(children) >= 4, "redis, gunicorn master + workers, rq worker"
        up.send_signal(signal.SIGINT)  # what Ctrl-C does
        assert up.wait(30) == 0, log.read_text()[-3000:]
        wait_for(lambda: not any(alive(pid) for pid in children), timeout=15, what="children gone")
        assert not port_open(port) and not port_open(redis_port)
        assert not (data_dir / "redis.url").exists()
    finally:
        if up.poll() is None:
            up.kill()

    # Start again: the earlier data is still there (AOF), and no second admin token is printed.
    up = start(
        [*broadcaster_command(), "up", "--port", str(port)], env, tmp_path, tmp_path / "up2.log"
    )
    try:
        wait_for(
            lambda: http("GET", base + "/healthz")[0] == 200, timeout=60, what="service restarted"
        )
        status, announcement = http("GET", f"{base}/api/v1/announcements/{ann}", token=token)
        assert status == 200 and announcement["deliveries"]["sms"]["sent"] == 1
        assert "Admin API token" not in (tmp_path / "up2.log").read_text()
        children = descendants(up.pid)
        up.send_signal(signal.SIGINT)
        assert up.wait(30) == 0
        wait_for(lambda: not any(alive(pid) for pid in children), timeout=15, what="children gone")
    finally:
        if up.poll() is None:
            up.kill()


def test_up_with_a_redis_url_starts_no_redis(redis_server, r, tmp_path):
    env = clean_env(
        BROADCASTER_DATA_DIR=str(tmp_path / "var"), BROADCASTER_REDIS_URL=redis_server.url
    )
    port = free_port()
    log = tmp_path / "up.log"
    up = start([*broadcaster_command(), "up", "--port", str(port)], env, tmp_path, log)
    try:
        wait_for(
            lambda: http("GET", f"http://127.0.0.1:{port}/readyz")[0] == 200,
            timeout=60,
            what="ready",
        )
        assert f"Redis:     {redis_server.url}\n" in log.read_text()
        assert not any(
            "redis-server" in open(f"/proc/{pid}/cmdline").read() for pid in descendants(up.pid)
        )
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(30)


def test_up_refuses_a_bad_plan(tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text("[organisation\n")
    env = clean_env(BROADCASTER_DATA_DIR=str(tmp_path / "var"), BROADCASTER_PLAN=str(plan))
    up = start(
        [*broadcaster_command(), "up", "--port", str(free_port())],
        env,
        tmp_path,
        tmp_path / "up.log",
    )
    assert up.wait(30) != 0
    assert "plan.toml: not valid TOML" in (tmp_path / "up.log").read_text()


def test_up_refuses_a_port_already_in_use(tmp_path):
    # Gunicorn runs with reuse_port: without this check a second service would bind too
    # and quietly take half of the first one's connections.
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        env = clean_env(BROADCASTER_DATA_DIR=str(tmp_path / "var"))
        log = tmp_path / "up.log"
        up = start([*broadcaster_command(), "up", "--port", str(port)], env, tmp_path, log)
        assert up.wait(30) != 0
    assert f"port {port} on 127.0.0.1 is already in use" in log.read_text()
    assert not (tmp_path / "var" / "redis.url").exists(), "nothing was started"


def test_gunicorn_with_our_config_refuses_a_port_already_in_use(redis_server, tmp_path):
    # The Procfile's path: gunicorn itself, with -c python:broadcaster.infra.gunicorn_config.
    env = clean_env(
        BROADCASTER_DATA_DIR=str(tmp_path / "var"), BROADCASTER_REDIS_URL=redis_server.url
    )
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        web = start(web_command(port), env, tmp_path, tmp_path / "web.log")
        assert web.wait(30) != 0
    assert f"Address 127.0.0.1:{port} is already in use" in (tmp_path / "web.log").read_text()


def test_up_takes_ports_workers_and_links_from_its_options(tmp_path):
    port, redis_port = free_port(), free_port()
    log = tmp_path / "up.log"
    command = [*broadcaster_command(), "up", "--port", str(port), "--redis-port", str(redis_port)]
    up = start([*command, "--workers", "2"], clean_env(), tmp_path, log)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: http("GET", base + "/readyz")[0] == 200, timeout=60, what="service ready")
        output = log.read_text()
        assert f"Redis:     redis://127.0.0.1:{redis_port}/0 (embedded" in output
        assert "Workers:   2" in output
        assert port_open(redis_port)
        # Our own children only: each RQ worker forks a scheduler of its own.
        workers = [
            pid
            for pid in descendants(up.pid)
            if b"worker" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[2:3]
            and int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]) == up.pid
        ]
        assert len(workers) == 2, workers
        # Links in what we publish point at the port we serve on, not at :8000.
        with urllib.request.urlopen(base + "/status.atom", timeout=10) as response:
            feed = response.read().decode()
        assert f'href="{base}/status.atom"' in feed
        up.send_signal(signal.SIGINT)
        assert up.wait(30) == 0
    finally:
        # A failed assertion above must not leave up's children (own sessions) running.
        left = descendants(up.pid) if up.poll() is None else set()
        if up.poll() is None:
            up.send_signal(signal.SIGINT)
            try:
                up.wait(30)
            except subprocess.TimeoutExpired:
                up.kill()
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_up_says_what_is_wrong_with_its_options(redis_server, tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        taken = busy.getsockname()[1]
        args = [*broadcaster_command(), "up", "--port", str(free_port())]
        result = subprocess.run(
            [*args, "--redis-port", str(taken)],
            env=clean_env(),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode != 0
        assert f"port {taken} on 127.0.0.1 is already in use" in result.stderr
        result = subprocess.run(
            [*args, "--redis-port", str(free_port())],
            env=clean_env(BROADCASTER_REDIS_URL=redis_server.url),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode != 0 and "BROADCASTER_REDIS_URL is set" in result.stderr
        result = subprocess.run(
            [*args, "--workers", "0"],
            env=clean_env(),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2 and "--workers" in result.stderr
    finally:
        busy.close()


def test_up_starts_one_worker_per_core_by_default():
    assert cores() == len(os.sched_getaffinity(0)) >= 1
