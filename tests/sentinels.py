"""A real Redis primary, a replica and three sentinels on 127.0.0.1, for failover tests."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis

from broadcaster.infra.redis_server import find_redis_server, free_port
from tests.processes import wait_for

SERVICE = "mymaster"


def sentinel_binary() -> str | None:
    """A redis-server that runs as a sentinel (``--sentinel``), or None."""
    try:
        binary = find_redis_server()
    except Exception:  # noqa: BLE001 - no binary at all: the caller skips
        return None
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    # Sentinel mode is built into every redis-server since 2.8.
    return binary if out.returncode == 0 and "v=" in out.stdout else None


class SentinelSet:
    """A primary and two replicas (AOF on) watched by three sentinels, quorum 2.

    As docs/operations.md advises: ``min-replicas-to-write 1``, so a primary that lost its
    replicas (a switch-over took them) refuses writes instead of accepting what the new
    primary will never see; two replicas, so losing one node never stops writes. Short
    clocks so a test fails over in seconds: a node silent for 1 s is down, a failover may
    be retried after 5 s.
    """

    def __init__(self, base: Path, binary: str) -> None:
        self.base, self.binary = base, binary
        self.nodes: dict[int, subprocess.Popen[bytes]] = {}
        self.sentinels: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def _node(self, port: int, *extra: str) -> None:
        data = self.base / f"node{port}"
        data.mkdir(parents=True, exist_ok=True)
        command = [
            self.binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(data),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--min-replicas-to-write",
            "1",
            "--min-replicas-max-lag",
            "5",
            "--logfile",
            str(data / "redis.log"),
            *extra,
        ]
        self.nodes[port] = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        client = redis.Redis(port=port, socket_connect_timeout=0.5)
        wait_for(lambda: _pings(client), timeout=10, interval=0.05, what=f"redis on {port}")

    def _sentinel(self, port: int, primary: int) -> None:
        data = self.base / f"sentinel{port}"
        data.mkdir(parents=True, exist_ok=True)
        conf = data / "sentinel.conf"  # a sentinel rewrites its own config: a file each
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {data}\nlogfile {data / 'sentinel.log'}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {primary} 2\n"
            f"sentinel down-after-milliseconds {SERVICE} 1000\n"
            f"sentinel failover-timeout {SERVICE} 5000\n"
            f"sentinel parallel-syncs {SERVICE} 1\n"
        )
        self.sentinels[port] = subprocess.Popen(
            [self.binary, str(conf), "--sentinel"], stdout=subprocess.DEVNULL
        )
        client = redis.Redis(port=port, socket_connect_timeout=0.5)
        wait_for(lambda: _pings(client), timeout=10, interval=0.05, what=f"sentinel {port}")

    def start(self) -> SentinelSet:
        """Start everything; wait until the replica is in sync and every sentinel knows all."""
        primary = free_port()
        self._node(primary)
        for _ in range(2):
            self._node(free_port(), "--replicaof", "127.0.0.1", str(primary))
        for _ in range(3):
            self._sentinel(free_port(), primary)
        wait_for(self._settled, timeout=30, interval=0.2, what="sentinels settled")
        return self

    def _settled(self) -> bool:
        try:
            return self._in_sync()
        except redis.RedisError:
            return False

    def _in_sync(self) -> bool:
        for port in self.sentinels:
            state = redis.Redis(port=port).sentinel_master(SERVICE)
            if state["num-other-sentinels"] < 2 or state["num-slaves"] < 2:
                return False
        info = redis.Redis(port=self.primary_port()).info("replication")
        return info.get("connected_slaves") == 2

    def primary_port(self) -> int:
        """The primary's port, as the sentinels see it."""
        port = next(iter(self.sentinels))
        return int(redis.Redis(port=port).sentinel_get_master_addr_by_name(SERVICE)[1])

    def failover(self) -> None:
        """``SENTINEL FAILOVER``: promote the replica now (a planned switch-over)."""
        port = next(iter(self.sentinels))
        redis.Redis(port=port).execute_command("SENTINEL", "FAILOVER", SERVICE)

    def kill_primary(self) -> int:
        """SIGKILL the primary (its machine dies); returns its port."""
        port = self.primary_port()
        self.nodes[port].kill()
        self.nodes[port].wait()
        return port

    def wait_for_new_primary(self, old: int, timeout: float = 30) -> int:
        """Wait until every sentinel names a primary other than ``old`` and it accepts writes."""

        def switched() -> int | None:
            try:
                return _new_primary()
            except redis.RedisError:
                return None

        def _new_primary() -> int | None:
            ports = {
                int(redis.Redis(port=p).sentinel_get_master_addr_by_name(SERVICE)[1])
                for p in self.sentinels
            }
            if len(ports) != 1 or old in ports:
                return None
            new = ports.pop()
            role = redis.Redis(port=new).info("replication")["role"]
            return new if role == "master" else None

        return wait_for(switched, timeout=timeout, interval=0.1, what="a new primary")

    def stop(self) -> None:
        for process in [*self.sentinels.values(), *self.nodes.values()]:
            if process.poll() is None:
                process.terminate()
        for process in [*self.sentinels.values(), *self.nodes.values()]:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def logs(self) -> str:
        parts = []
        for path in sorted(self.base.glob("*/*.log")):
            parts.append(f"--- {path.parent.name}\n{path.read_text()[-2000:]}")
        return "\n".join(parts)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        time.sleep(0.01)
        return False
