"""RQ workers for the broadcaster's queues, inside the app context (``python worker.py``)."""

from __future__ import annotations

import logging

from rq.serializers import JSONSerializer

from broadcaster import config as settings
from broadcaster import create_app
from broadcaster.delivery.queues import QUEUE_NAMES, queue
from broadcaster.delivery.recovery import BroadcastWorker
from broadcaster.infra.local_redis import discover
from broadcaster.services import services


def build_worker(burst_name: str | None = None) -> BroadcastWorker:
    """A worker on every queue, plan first. Call inside an app context.

    It runs jobs in this process (RQ's SimpleWorker): channels keep their HTTP connection
    pools and SMS thread pools from job to job (a forked work-horse would lose both). Its
    short heartbeats let another worker take over a killed worker's batch within a minute.
    """
    svc = services()
    return BroadcastWorker(
        [queue(svc.redis, name) for name in QUEUE_NAMES],
        connection=svc.redis,
        serializer=JSONSerializer,
        name=burst_name,
    )


def main() -> None:
    """Work until stopped (SIGINT/SIGTERM finish the current job first)."""
    try:
        env = settings.from_environment()
        url = discover(env["REDIS_URL"], env["DATA_DIR"])
        if not url:
            raise SystemExit(
                "worker: no Redis. Set BROADCASTER_REDIS_URL, or start `broadcaster up` first."
            )
        app = create_app({"REDIS_URL": url})
    except settings.ConfigError as exc:
        raise SystemExit(f"worker: {exc}") from exc
    with app.app_context():
        build_worker().work(with_scheduler=True, logging_level=logging.INFO)


if __name__ == "__main__":
    main()
