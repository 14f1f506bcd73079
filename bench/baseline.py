"""The baseline: what a team writes by hand — one SDK call per recipient, in a loop.

Same SDKs, same fakes, no queue, no ledger, no concurrency. It runs for at most
``--budget`` seconds and prints ``{"sent", "seconds", "rate"}`` as JSON; the runner
compares rates (ours / baseline).

Run: ``python -m bench.baseline sms --url http://127.0.0.1:9002 --count 100000 --budget 10``.
"""

from __future__ import annotations

import argparse
import json
import time

from bench import fakes
from bench.seed import email_of, phone_of

SUBJECT = "Bench Energy: Payments down BM-baseline."
TEXT = "Card payments fail since 09:10. We are on it; next update by 10:30."


def send_emails(url: str, start: int, count: int, budget: float) -> int:
    """One SendGrid request per recipient, as the SDK's README shows it."""
    from sendgrid import SendGridAPIClient
    from sendgrid.helpers.mail import Mail

    client = SendGridAPIClient(api_key=fakes.SENDGRID_KEY, host=url)
    deadline = time.monotonic() + budget
    sent = 0
    for n in range(start, start + count):
        if time.monotonic() >= deadline:
            break
        message = Mail(
            from_email="alerts@bench.example",
            to_emails=email_of(n),
            subject=SUBJECT,
            plain_text_content=TEXT,
            html_content=f"<p>{TEXT}</p>",
        )
        client.send(message)
        sent += 1
    return sent


def send_sms(url: str, start: int, count: int, budget: float) -> int:
    """One Twilio ``messages.create`` per recipient, as the SDK's README shows it."""
    from twilio.rest import Client

    client = Client(fakes.TWILIO_SID, fakes.TWILIO_TOKEN)
    client.api.base_url = url  # the only change from the README: talk to the fake
    deadline = time.monotonic() + budget
    sent = 0
    for n in range(start, start + count):
        if time.monotonic() >= deadline:
            break
        client.messages.create(to=phone_of(n), from_="+3197010000000", body=f"{SUBJECT} {TEXT}")
        sent += 1
    return sent


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline")
    parser.add_argument("channel", choices=("email", "sms"))
    parser.add_argument("--url", required=True)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--budget", type=float, default=10.0, help="seconds at most")
    args = parser.parse_args(argv)
    send = send_emails if args.channel == "email" else send_sms
    began = time.monotonic()
    sent = send(args.url, args.start, args.count, args.budget)
    seconds = time.monotonic() - began
    print(json.dumps({"sent": sent, "seconds": seconds, "rate": sent / seconds if seconds else 0}))


if __name__ == "__main__":
    main()
