"""Crash safety: a killed worker's batch is picked up by another worker within a minute.

Three short clocks make that happen, all RQ's own machinery except the claim leases:

- every running job's execution is kept alive by a heartbeat thread (every
  ``HEARTBEAT_INTERVAL`` s, TTL ``JOB_TTL`` s) instead of RQ's default TTL of the job
  timeout + 60 s, so a dead worker's job is *abandoned* within ``JOB_TTL`` s;
- workers clean the registries every ``MAINTENANCE_INTERVAL`` s (RQ's default: 10 minutes),
  idle ones from their loop and busy ones from the heartbeat thread, so
  ``StartedJobRegistry.cleanup`` requeues the abandoned job at once (its ``Retry``);
- the re-run takes over the dead worker's claims once their ``CLAIM_LEASE`` runs out, so
  only the messages that were in flight at the moment of the kill can go out twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from types import TracebackType
from typing import Any

import redis
from rq import SimpleWorker
from rq.executions import Execution
from rq.job import Job
from rq.queue import Queue
from rq.worker import WorkerStatus

from broadcaster.delivery import stopping
from broadcaster.delivery.queues import LEGACY_JOB_NAMES
from broadcaster.domain.ledger import Ledger

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 5  # seconds between heartbeats of a running job and its claims
JOB_TTL = 20  # a job not heartbeaten for this long is abandoned
WORKER_TTL = 30  # RQ's worker key TTL; an idle worker wakes every WORKER_TTL - 15 s
MAINTENANCE_INTERVAL = 10  # seconds between registry clean-ups (requeues abandoned jobs)
CLAIM_LEASE = 15  # seconds a batch's claim outlives its last renewal


class LeaseKeeper:
    """Renews the leases of the claims a batch job holds, from a thread, while it works."""

    def __init__(self, ledger: Ledger, channel: str, lease: float = CLAIM_LEASE) -> None:
        self.ledger, self.channel, self.lease = ledger, channel, lease
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)

    def hold(self, ids: Iterable[str]) -> None:
        with self._lock:
            self._held.update(ids)

    def drop(self, ids: Iterable[str]) -> None:
        with self._lock:
            self._held.difference_update(ids)

    def _run(self) -> None:
        while not self._stop.wait(self.lease / 3):
            with self._lock:
                held = list(self._held)
            try:
                self.ledger.renew(self.channel, held, self.lease)
            except redis.RedisError as exc:  # Redis restarting: the next round renews
                log.warning("could not renew %d claims: %s", len(held), exc)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class BroadcastWorker(SimpleWorker):
    """RQ's SimpleWorker with short heartbeats and frequent clean-ups (see the module doc).

    SimpleWorker runs jobs in this process (channels keep their connection pools), so no
    work-horse monitor heartbeats a running job: a thread does it here.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("worker_ttl", WORKER_TTL)
        kwargs.setdefault("maintenance_interval", MAINTENANCE_INTERVAL)
        kwargs.setdefault("job_monitoring_interval", HEARTBEAT_INTERVAL)
        super().__init__(*args, **kwargs)
        stopping.install()

    def handle_warm_shutdown_request(self) -> None:
        """SIGTERM / Ctrl-C: RQ waits for the current job, so tell the job too: a paced
        batch then stops within seconds and requeues its rest (``stopping.py``)."""
        super().handle_warm_shutdown_request()
        stopping.request()

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        """How long a running job's execution lives without a heartbeat."""
        return JOB_TTL

    def execute_job(self, job: Job, queue: Queue) -> None:
        """Run the job in this process while a thread keeps its execution alive."""
        job.func_name = LEGACY_JOB_NAMES.get(job.func_name or "", job.func_name)
        execution = self.prepare_execution(job)
        done = threading.Event()
        beat = threading.Thread(
            target=self._beat, args=(job, execution, done), name="rq-heartbeat", daemon=True
        )
        beat.start()
        try:
            self.perform_job(job, queue, execution)
        finally:
            done.set()
            beat.join(timeout=5)
        self.set_state(WorkerStatus.IDLE)

    def _beat(self, job: Job, execution: Execution, done: threading.Event) -> None:
        while not done.wait(HEARTBEAT_INTERVAL):
            try:
                self.maintain_heartbeats(job, execution)
                # A busy worker also requeues a dead worker's jobs: nobody may be idle.
                if self.should_run_maintenance_tasks:
                    self.clean_registries()
            except redis.RedisError as exc:  # Redis restarting: the next beat catches up
                self.log.warning("heartbeat of %s failed: %s", job.id, exc)
