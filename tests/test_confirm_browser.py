"""The incident page's confirmation counts follow the answers live, in headless Chromium.

The app runs as a live HTTP server (tests/browser.py); the announcement goes out through
real RQ workers to the fake SendGrid; answers arrive as signed Twilio inbound requests and
confirm-link POSTs while the page stays open.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.browser import launch, serve, skip_without_chromium, stop
from tests.test_confirm import MINUTE, OUTAGE, PLAN, confirm_links, medical, run
from tests.test_webhook import SECRET, Receiver

skip_without_chromium()
from playwright.sync_api import Browser, Page, expect  # noqa: E402  (after the skip)

from tests.test_admin_browser import sign_in  # noqa: E402


@pytest.fixture
def live(make_app: Callable[..., Flask], tmp_path: Path) -> Iterator[tuple[str, Flask]]:
    receiver = Receiver()
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN.replace("{url}", receiver.url).replace("{secret}", SECRET), "utf-8")
    holder: dict[str, Flask] = {}
    server, thread = serve(lambda e, s: holder["app"](e, s))
    url = f"http://127.0.0.1:{server.port}"
    # A long plan minute: the step must not run while the page watches the answers.
    app = holder["app"] = make_app(PLAN=str(plan), PUBLIC_URL=url, CONFIRM_MINUTE_SECONDS=600)
    yield url, app
    stop(server, thread)
    receiver.release.set()
    receiver.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from launch()


def test_the_counts_follow_the_answers_without_a_reload(
    live: tuple[str, Flask],
    browser: Browser,
    people: dict[str, Any],
    tokens: dict[str, dict[str, str]],
    sendgrid: Any,
) -> None:
    url, app = live
    assert MINUTE < 600
    client = app.test_client()
    group = medical(client, tokens, 3, 90)
    answer = client.post("/api/v1/announcements", json=OUTAGE, headers=tokens["admin"])
    incident_id = answer.get_json()["incident_id"]
    run(app)
    links = confirm_links(sendgrid)

    context = browser.new_context(locale="en-US")
    page: Page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None,
    )
    sign_in(page, url, people["helpdesk"].email)
    page.goto(f"{url}/admin/incidents/{incident_id}")
    table = page.locator("table.confirm-counts")
    expect(table.locator('td[data-count="waiting"]')).to_have_text("3")
    expect(table).to_have_attribute("data-live", "polling")
    page.evaluate("window.__samePage = true")

    for person in group[:2]:
        client.post(links[person["email"]], data={"answer": "confirm"})
    expect(table.locator('td[data-count="confirmed"]')).to_have_text("2")
    expect(table.locator('td[data-count="waiting"]')).to_have_text("1")
    assert page.evaluate("window.__samePage") is True
    context.close()
    assert errors == [], errors  # no script error, no CSP complaint
