"""signup-burst: 200 sign-ups/s on ``POST /api/v1/subscriptions``, every confirmation once.

50 clients offer the rate together (open loop, like api-accept: latency counts from each
request's scheduled time). Half sign up by email, half by phone, each a new address. Workers
run during the burst, as they would: the confirmations leave while sign-ups arrive
(``--workers 0``: they start after it, so the figures are the API's alone). Then
every address must have had exactly one confirmation message, at SendGrid or at Twilio.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

from bench import drive
from bench.report import Result, percentile
from bench.scenarios import Options
from bench.seed import email_of, phone_of
from bench.stack import Stack

OFFERED_RATE = 220.0  # a little above the 200/s target (see latency.OFFERED_RATE)
CLIENTS = 50


def _contact(n: int) -> dict[str, str]:
    return {"email": email_of(n)} if n % 2 == 0 else {"phone": phone_of(n)}


def signup_burst(opts: Options) -> Result:
    """``--requests`` sign-ups (default 2,000) at 220/s offered; confirmations exactly once."""
    total = opts.requests or 2000
    # --workers 0: no workers during the burst (acceptance alone, as api-accept measures
    # it); 2 start after it to send the confirmations.
    during = opts.workers if opts.workers is not None else 2
    workers = during or 2
    result = Result(
        "signup-burst",
        {
            "clients": CLIENTS,
            "offered": f"{OFFERED_RATE:.0f} sign-ups/s",
            "sign-ups": total,
            "workers": f"{workers} {'during' if during else 'after'} the burst",
            "runs": opts.runs,
        },
    )
    result.metric("p50 acceptance", "ms")
    result.metric("p99 acceptance", "ms", "<=", 50)
    result.metric("throughput", "sign-ups/s", ">=", 200)
    result.metric("last confirmation after the burst", "s")
    with Stack("signup-burst", keep=opts.keep) as stack:
        stack.start_redis()
        sendgrid = stack.start_fake("sendgrid")
        twilio = stack.start_fake("twilio")
        # Every client is 127.0.0.1 here: the per-caller limit would refuse the burst.
        stack.service_env(BROADCASTER_SUBSCRIBE_LIMIT_PER_IP="0")
        stack.start_web()
        if during:
            stack.start_workers(workers)
        for run in range(opts.runs):
            label = f"run {run + 1}: "
            sendgrid.rotate(f"run{run}")
            twilio.rotate(f"run{run}")
            first = run * total  # new addresses every run: nobody is "already subscribed"
            numbers = list(range(first, first + total))
            timings, wall = asyncio.run(_load(stack, numbers))
            ended = time.time()
            if not during:
                stack.start_workers(workers)
            bad = [status for status, _ in timings if status != 202]
            if bad:
                result.violations.append(f"{label}{len(bad)} answers were not 202: {bad[:5]}")
            latencies = [seconds for _, seconds in timings]
            result.add("p50 acceptance", 1000 * percentile(latencies, 0.50))
            result.add("p99 acceptance", 1000 * percentile(latencies, 0.99))
            result.add("throughput", len(timings) / wall)
            emails = {email_of(n) for n in numbers if n % 2 == 0}
            phones = {phone_of(n) for n in numbers if n % 2 == 1}
            ok = drive.wait_accepted(sendgrid, len(emails), timeout=120, settle=0.5)
            ok = drive.wait_accepted(twilio, len(phones), timeout=120, settle=1.0) and ok
            if not ok:
                result.violations.append(f"{label}confirmations did not all arrive")
            last = max(
                (line["t"] for fake in (sendgrid, twilio) for line in fake.read()), default=ended
            )
            result.add("last confirmation after the burst", max(0.0, last - ended))
            result.violations += drive.exactly_once(sendgrid.read(), emails, label=f"{label}email ")
            result.violations += drive.exactly_once(twilio.read(), phones, label=f"{label}sms ")
            if not during:
                stack.stop_workers()
    result.runs = opts.runs
    return result


async def _load(stack: Stack, numbers: list[int]) -> tuple[list[tuple[int, float]], float]:
    url = f"{stack.web_url}/api/v1/subscriptions"
    timings: list[tuple[int, float]] = []
    connector = aiohttp.TCPConnector(limit=CLIENTS)
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.2
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client(offset: int) -> None:
            for n in range(offset, len(numbers), CLIENTS):
                due = start + n / OFFERED_RATE
                await asyncio.sleep(max(0.0, due - loop.time()))
                async with session.post(url, json=_contact(numbers[n])) as answer:
                    await answer.read()
                    timings.append((answer.status, loop.time() - due))

        await asyncio.gather(*(client(i) for i in range(CLIENTS)))
    return timings, loop.time() - start
