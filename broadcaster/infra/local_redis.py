"""Finding the Redis of a local, embedded set-up from other commands.

``broadcaster up`` writes the embedded server's URL into the data dir, so that
``broadcaster token create`` or ``broadcaster worker`` in another terminal find it; when
it is not running, they start the embedded server on the same files for a moment.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from broadcaster.infra.redis_connect import client
from broadcaster.infra.redis_server import EmbeddedRedis

URL_FILE = "redis.url"


def _answers(url: str) -> bool:
    try:
        return bool(client(url, retries=0, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


def discover(configured: str | None, data_dir: str | Path) -> str | None:
    """The configured Redis URL, else that of a running ``broadcaster up``, else None."""
    if configured:
        return configured
    url_file = Path(data_dir) / URL_FILE
    if url_file.exists():
        url = url_file.read_text().strip()
        if _answers(url):
            return url
    return None


@contextmanager
def redis_url(configured: str | None, data_dir: str | Path) -> Iterator[str]:
    """Yield a Redis URL: the configured one, the running embedded one, or a temporary one."""
    found = discover(configured, data_dir)
    if found:
        yield found
        return
    server = EmbeddedRedis(Path(data_dir)).start()
    try:
        yield server.url
    finally:
        server.stop()


def publish_url(data_dir: str | Path, url: str) -> None:
    """Record the embedded server's URL for other commands (and our child processes)."""
    Path(data_dir, URL_FILE).write_text(url + "\n")
    os.environ["BROADCASTER_REDIS_URL"] = url


def forget_url(data_dir: str | Path) -> None:
    Path(data_dir, URL_FILE).unlink(missing_ok=True)
