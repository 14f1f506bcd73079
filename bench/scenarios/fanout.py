"""Fan-out scenarios: one announcement to many people (email, SMS, paced SMS, memory).

Each seeds once, then per run publishes one announcement, waits until the fake accepted
every recipient, and checks the fake's ledger: every recipient exactly once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import psutil

from bench import drive
from bench.report import Result
from bench.scenarios import Options
from bench.seed import email_of, phone_of, seed
from bench.stack import ROOT, FakeServer, Stack


@dataclass
class Fanout:
    """What distinguishes one fan-out scenario from another."""

    name: str
    channel: str  # "email" or "sms"
    recipients: int
    workers: int
    latency: float = 0.0  # the fake's answer time
    rate: float = 0.0  # the fake's limit (0: none)
    env: dict[str, str] = field(default_factory=dict)
    target_seconds: float | None = None
    target_rate: float | None = None
    baseline: bool = False
    fresh_worker: bool = False  # restart the workers each run (memory: a per-run peak)


def _contact(channel: str) -> object:
    return email_of if channel == "email" else phone_of


def run_fanout(spec: Fanout, opts: Options) -> Result:
    """Seed, then publish one announcement per run and measure until all are accepted."""
    n = opts.recipients or spec.recipients
    workers = opts.workers or spec.workers
    result = Result(spec.name, {"recipients": n, "workers": workers, "runs": opts.runs})
    result.metric("time to all accepted", "s", "<=", spec.target_seconds)
    result.metric("throughput", "recipients/s", ">=", spec.target_rate)
    if spec.channel == "email":
        result.metric("personalizations per request", "mean", ">=", min(1000, n))
    if spec.rate:
        result.metric("429s after the first second", "count", "<=", 0)
        result.metric("429s in the first second", "count")
    if spec.fresh_worker:
        result.metric("worker peak RSS", "MB", "<=", 250)
        result.metric("worker idle RSS", "MB")
    if spec.baseline:
        result.metric("baseline (one SDK call at a time)", "recipients/s")
        result.metric("ratio ours / baseline", "x")
    kind = "sendgrid" if spec.channel == "email" else "twilio"
    contact = _contact(spec.channel)
    expected = {contact(i) for i in range(n)}  # type: ignore[operator]
    # Generous: a missed target still finishes and is reported, a hang is not.
    timeout = 60 + 3 * (spec.target_seconds or n / (spec.target_rate or 1000))

    with Stack(spec.name, keep=opts.keep) as stack:
        stack.start_redis()
        fake = stack.start_fake(kind, latency=spec.latency, rate=spec.rate)
        stack.service_env(**spec.env)
        stack.start_web()
        seconds = seed(
            stack.redis_server.url,  # type: ignore[union-attr]
            n,
            email=spec.channel == "email",
            phone=spec.channel == "sms",
        )
        result.notes.append(f"seeded {n:,} subscribers in {seconds:.1f}s (not measured)")
        if not spec.fresh_worker:
            stack.start_workers(workers)
        for run in range(opts.runs):
            if spec.fresh_worker:
                stack.stop_workers()
                stack.start_workers(workers)
            fake.rotate(f"run{run}")
            sampler = _RssSampler(stack) if spec.fresh_worker else None
            announcement_id, began, _ = drive.publish(stack, drive.new_tag(), [spec.channel])
            done = _wait_done(stack, fake, announcement_id, spec.channel, n, timeout)
            if sampler:
                sampler.stop()
                result.add("worker peak RSS", sampler.peak / 2**20)
                result.add("worker idle RSS", sampler.idle / 2**20)
            stats, lines = fake.stats(), fake.read()
            label = f"run {run + 1}: "
            if not done:
                result.violations.append(
                    f"{label}{stats['accepted']:,} of {n:,} accepted when the service had "
                    f"nothing left to try (or after the {timeout:.0f}s timeout)"
                )
            result.violations += drive.exactly_once(lines, expected, label=label)
            if stats["violations"]:
                result.violations.append(f"{label}{stats['violations']} malformed requests")
            elapsed = (stats["last_accepted"] or time.time()) - began
            result.add("time to all accepted", elapsed)
            result.add("throughput", stats["accepted"] / elapsed)
            accepted = [line for line in lines if 200 <= line["s"] < 300]
            if spec.channel == "email" and accepted:
                result.add("personalizations per request", stats["accepted"] / len(accepted))
            if spec.rate:
                first = min(line["t"] for line in lines)
                late = sum(1 for line in lines if line["s"] == 429 and line["t"] > first + 1)
                result.add("429s after the first second", late)
                result.add("429s in the first second", drive.statuses(lines)[429] - late)
            if spec.baseline:
                rate = _baseline(result, fake, spec.channel, n, opts.baseline_budget, label)
                result.add("baseline (one SDK call at a time)", rate)
                result.add("ratio ours / baseline", stats["accepted"] / elapsed / rate)
    result.runs = opts.runs
    return result


def _wait_done(
    stack: Stack, fake: FakeServer, announcement_id: str, channel: str, n: int, timeout: float
) -> bool:
    """Until the fake accepted all ``n``, or the service has nothing left to try."""
    last_look = [0.0]

    def finished() -> bool:
        if fake.stats()["accepted"] >= n:
            return True
        if time.monotonic() - last_look[0] < 2:  # the service's counts: a slower question
            return False
        last_look[0] = time.monotonic()
        state = drive.counts(stack, announcement_id).get(channel, {})
        open_ = state.get("queued", 0) + state.get("sending", 0)
        return sum(state.values()) >= n and open_ == 0

    done = drive.wait_until(finished, timeout, 0.05)
    time.sleep(1.0)  # let a late duplicate arrive, so the ledger check can catch it
    return done and fake.stats()["accepted"] >= n


def _baseline(
    result: Result, fake: FakeServer, channel: str, n: int, budget: float, label: str
) -> float:
    """Run the one-at-a-time loop against the same fake; its rate in recipients/s."""
    fake.rotate("baseline")
    command = [sys.executable, "-m", "bench.baseline", channel, f"--url={fake.url}"]
    command += [f"--count={n}", f"--budget={budget}"]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    contact = _contact(channel)
    expected = {contact(i) for i in range(answer["sent"])}  # type: ignore[operator]
    result.violations += drive.exactly_once(fake.read(), expected, label=f"{label}baseline: ")
    return float(answer["rate"])


class _RssSampler:
    """Samples the workers' resident memory every 50 ms; keeps the peak."""

    def __init__(self, stack: Stack) -> None:
        self.processes = [psutil.Process(p.pid) for p in stack.workers]
        self.idle = max(p.memory_info().rss for p in self.processes)
        self.peak = self.idle
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.peak = max(self.peak, *(p.memory_info().rss for p in self.processes))
            except psutil.NoSuchProcess:
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


# A million emails in a minute (issue 20): with 4 workers, each worker's RSS ≤ 250 MB.
MILLION = 1_000_000


def fanout_email(opts: Options) -> Result:
    """100,000 email subscribers → all accepted by SendGrid in ≤ 20 s (≥ 5,000/s), 2 workers;
    from a million on, 4 workers and a million a minute (≥ 16,667/s), worker RSS ≤ 250 MB."""
    n = opts.recipients or 100_000
    if n >= MILLION:
        rate = MILLION / 60
        spec = Fanout("fanout-email", "email", n, 4, target_seconds=n / rate, target_rate=rate)
        spec.fresh_worker = True  # the memory of each run's workers, from a fresh start
    else:
        spec = Fanout("fanout-email", "email", n, 2, target_seconds=n / 5000, target_rate=5000)
    spec.baseline = True
    return run_fanout(spec, opts)


def fanout_sms(opts: Options) -> Result:
    """100,000 SMS subscribers, Twilio answering in 20 ms → ≥ 1,000 messages/s."""
    n = opts.recipients or 100_000
    spec = Fanout("fanout-sms", "sms", n, 4, latency=0.02, target_rate=1000, baseline=True)
    return run_fanout(spec, opts)


def paced_sms(opts: Options) -> Result:
    """10,000 SMS to a fake allowing 100/s (429 above) with 3 workers → ≤ 101 s, no late 429s."""
    n = opts.recipients or 10_000
    rate = 100.0
    spec = Fanout(
        "paced-sms",
        "sms",
        n,
        3,
        latency=0.02,
        rate=rate,
        # The provider's rate, for the service's limiter (ignored where there is none).
        env={"BROADCASTER_TWILIO_RATE": str(rate)},
        target_seconds=n / rate + 1,
    )
    return run_fanout(spec, opts)


def memory(opts: Options) -> Result:
    """One worker fanning out to 1,000,000 email subscribers: peak RSS ≤ 250 MB."""
    n = opts.recipients or 1_000_000
    spec = Fanout("memory", "email", n, 1, fresh_worker=True)
    return run_fanout(spec, opts)
