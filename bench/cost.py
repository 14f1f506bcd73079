"""``python -m bench.cost fanout|import [--size N]``: CPU per recipient (or row), by process.

The scenarios time whole runs; this says where the time goes. ``fanout`` seeds N email
subscribers, publishes one announcement and runs the jobs in this process with one RQ
worker (burst); ``import`` imports an N-row CSV through ``import_rows``. Both print the
CPU microseconds per recipient of this process, of Redis (``INFO cpu``) and of the fake
SendGrid, then Redis' own time per command (``INFO commandstats``), per recipient.
CPU time shows on a busy machine where wall time does not, but both grow with the load.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

import psutil
import redis

from bench import drive
from bench.scenarios.imports import write_csv
from bench.seed import seed
from bench.stack import ROOT, Stack


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def _children_cpu() -> float:
    """CPU of this process' children that ended (an import's checking child)."""
    times = os.times()
    return times.children_user + times.children_system


def _redis_cpu(r: redis.Redis) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def _measure(r: redis.Redis, fakes: list[psutil.Process], n: int, work: Callable[[], None]) -> None:
    """Run ``work`` and print its CPU per item, by process, and Redis' time per command."""
    me = psutil.Process()
    r.config_resetstat()
    before = (_cpu(me), _children_cpu(), _redis_cpu(r), sum(map(_cpu, fakes)))
    began = time.perf_counter()
    work()
    seconds = time.perf_counter() - began
    after = (_cpu(me), _children_cpu(), _redis_cpu(r), sum(map(_cpu, fakes)))
    print(f"{n:,} in {seconds:.2f} s: {n / seconds:,.0f}/s (wall, one process)")
    print("CPU µs per item:")
    names = ("this process", "its children", "redis", "fake")
    for name, start, end in zip(names, before, after, strict=True):
        print(f"  {name:<14} {1e6 * (end - start) / n:7.1f}")
    print("Redis time per item, by command (scripts include the commands they call):")
    stats = sorted(r.info("commandstats").items(), key=lambda kv: -kv[1]["usec"])
    for command, figures in stats[:10]:
        name = command.removeprefix("cmdstat_")
        print(f"  {name:<14} {figures['usec'] / n:7.2f}  ({figures['calls']:,} calls)")


def fanout(n: int) -> None:
    """One announcement to ``n`` email subscribers, every job run here by one worker."""
    with Stack("cost-fanout") as stack:
        stack.start_redis()
        fake = stack.start_fake("sendgrid")
        env = stack.service_env()
        stack.start_web()
        seed(stack.redis_server.url, n, email=True, phone=False)  # type: ignore[union-attr]
        os.environ.update(env)
        from broadcaster import create_app

        sys.path.insert(0, str(ROOT))
        import worker  # the repository's worker.py

        app = create_app({"REDIS_URL": stack.redis_server.url})  # type: ignore[union-attr]
        drive.publish(stack, drive.new_tag(), ["email"])
        fakes = [psutil.Process(p.pid) for p in stack.processes if "bench.fakes" in p.args]
        with app.app_context():
            burst = worker.build_worker("cost")
            _measure(stack.redis, fakes, n, lambda: burst.work(burst=True))
        accepted = fake.stats()["accepted"]
        if accepted != n:
            print(f"the fake accepted {accepted:,} of {n:,}")


def imports(n: int) -> None:
    """``n`` new people from a CSV, as ``broadcaster subscribers import`` reads them."""
    from broadcaster.domain.plan import BUNDLED_PLAN, load_plan
    from broadcaster.domain.subscriber_import import csv_rows, import_rows
    from broadcaster.domain.subscribers import SubscriberStore

    with Stack("cost-import") as stack:
        stack.start_redis()
        csv = stack.dir / "people.csv"
        write_csv(csv, n)
        plan, store = load_plan(str(BUNDLED_PLAN)), SubscriberStore(stack.redis)

        def work() -> None:
            with csv.open() as lines:
                import_rows(csv_rows(lines), plan, store)

        _measure(stack.redis, [], n, work)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cost", description=__doc__)
    parser.add_argument("what", choices=("fanout", "import"))
    parser.add_argument("--size", type=int, default=50_000, help="recipients or rows")
    args = parser.parse_args()
    (fanout if args.what == "fanout" else imports)(args.size)


if __name__ == "__main__":
    main()
