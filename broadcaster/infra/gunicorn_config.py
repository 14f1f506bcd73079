"""gunicorn settings the web process always runs with.

Loaded as ``-c python:broadcaster.infra.gunicorn_config``.

Workers, threads and the bind address stay on the command line (Procfile, ``broadcaster
up``); this module holds what is measured to matter (``python -m bench run banner-load``).
"""

from __future__ import annotations

import errno
import gc
import socket
import sys
from typing import Any

from gunicorn import glogging

from broadcaster import config as settings
from broadcaster.infra import logs

# Each worker listens on its own socket and the kernel spreads new connections over them.
# With one shared socket the worker that wins the accept race takes nearly all of a burst
# of connections — in the benchmark often all 50, halving throughput and doubling p99.
reuse_port = True


def address_in_use(host: str, port: int) -> bool:
    """Whether something already listens on ``host:port`` (a plain bind attempt fails)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def on_starting(server: Any) -> None:
    """Refuse a port that is already taken, as gunicorn does without ``reuse_port``.

    With ``reuse_port`` a second service on the same port would bind too and silently get
    half of the first one's traffic.
    """
    for address in server.cfg.address:
        if isinstance(address, tuple) and address_in_use(address[0], address[1]):
            server.log.error("Address %s:%s is already in use", address[0], address[1])
            sys.exit(1)


def when_ready(server: Any) -> None:
    """Say where we listen: with ``reuse_port`` gunicorn's own line shows no address."""
    bound = [f"http://{a[0]}:{a[1]}" for a in server.cfg.address if isinstance(a, tuple)]
    server.log.info("Listening at: %s (a socket per worker: reuse_port)", ", ".join(bound))


def post_worker_init(worker: Any) -> None:
    """Move the loaded app out of the garbage collector's sight, once per worker.

    A worker's first full collection after start-up walks the ~160k objects of the imported
    app and stalls every thread for ~80 ms, in the middle of the traffic it then serves:
    the benchmark's p99 for /banner.json. Those objects live as long as the worker, so
    freezing them (what Instagram does for its Django workers) loses nothing.
    """
    gc.collect()
    gc.freeze()


class Logger(glogging.Logger):
    """gunicorn's own log (start, workers booting and exiting) in the app's log format.

    With ``BROADCASTER_LOG_FORMAT=json`` a log shipper would otherwise get gunicorn's
    plain-text lines mixed into the JSON ones; contacts and secrets are masked as in the
    app's lines.
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        try:
            env = settings.from_environment()
        except settings.ConfigError:
            return  # the app names the bad setting when it starts
        if str(env.get("LOG_FORMAT") or "text").lower() != "json":
            return
        for handler in self.error_log.handlers:
            handler.setFormatter(logs.formatter("json"))
            handler.addFilter(logs.redactor(env))


logger_class = Logger
