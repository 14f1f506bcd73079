"""The admin pages in a real headless Chromium (Playwright): compose with the live preview,
four-eyes approval by a second person, and delivery counts that follow the real sending.

The app runs as a live HTTP server; real RQ workers send through the real Twilio and
SendGrid SDKs to the fake providers on 127.0.0.1. With ``UPDATE_SCREENSHOTS=1`` the test
also refreshes ``docs/compose.png``, the screenshot the README shows.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from broadcaster.domain.subscriber_import import import_rows
from broadcaster.services import services
from tests.browser import launch, serve, skip_without_chromium, stop
from tests.conftest import PASSWORD
from tests.helpers import drain

skip_without_chromium()
from playwright.sync_api import Browser, Page, expect  # noqa: E402  (after the skip)

SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "compose.png"
TITLE = "Card payments fail"
BODY = "Card payments in shops fail since 09:10. Cash and the app still work. Next update 10:30."
NL_TITLE = "Pinbetalingen mislukken"
NL_BODY = "Pinnen in winkels mislukt sinds 09:10. Contant en de app werken nog. Update om 10:30."
PEOPLE_ROWS = [
    {
        "email": "ann@example.com",
        "phone": "+31612345678",
        "locale": "nl",
        "audiences": ["consumers"],
    },
    {
        "email": "bob@example.com",
        "phone": "+31612345670",
        "locale": "en",
        "audiences": ["consumers"],
    },
]


@pytest.fixture
def live(make_app: Callable[..., Flask]) -> Iterator[tuple[str, Flask]]:
    """The app over real HTTP (threaded), PUBLIC_URL pointing at itself."""
    holder: dict[str, Flask] = {}
    server, thread = serve(lambda e, s: holder["app"](e, s))
    url = f"http://127.0.0.1:{server.port}"
    app = holder["app"] = make_app(PUBLIC_URL=url)
    with app.app_context():
        svc = services()
        import_rows(enumerate(PEOPLE_ROWS), svc.plan, svc.subscribers)
    yield url, app
    stop(server, thread)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from launch()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None,
    )
    yield page
    context.close()
    assert errors == [], errors  # no script error, no CSP complaint on any admin page


def sign_in(page: Page, url: str, email: str) -> None:
    page.goto(f"{url}/admin/signin")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".who")).to_contain_text(email.split("@")[0].capitalize())


def test_compose_preview_approve_and_watch_delivery(
    live: tuple[str, Flask],
    page: Page,
    people: dict[str, Any],
    providers: Any,
    tokens: dict[str, dict[str, str]],
    tmp_path: Path,
) -> None:
    url, app = live
    sendgrid, twilio = providers
    sign_in(page, url, people["helpdesk"].email)
    page.get_by_role("link", name="Compose").click()
    expect(page.locator("h1")).to_have_text("Compose an announcement")

    page.get_by_label("Title", exact=True).fill(TITLE)
    page.get_by_label("Message", exact=True).fill(BODY)
    page.get_by_label("Severity").select_option("major")
    # The plan's major channels came with the severity; SMS is added by hand.
    assert page.locator("input[name=channels]:checked").evaluate_all(
        "els => els.map(e => e.value)"
    ) == ["email", "banner", "social", "webhook"]
    page.locator("input[name=channels][value=sms]").check()
    page.locator("input[name=audiences][value=consumers]").check()
    page.locator('details[data-locale="nl"] summary').click()
    page.get_by_label("Title (nl)").fill(NL_TITLE)
    page.get_by_label("Message (nl)").fill(NL_BODY)

    preview = page.locator("#preview")
    nl_sms = preview.locator(
        '.rendering[data-channel="sms"][data-audience="consumers"][data-locale="nl"]'
    )
    expect(nl_sms.locator("pre")).to_contain_text("Pinnen in winkels mislukt")
    expect(preview).to_have_attribute("data-state", "ready")
    # The page shows what the preview API computes: ask it the same question with a token.
    same = {
        "title": TITLE,
        "body": BODY,
        "severity": "major",
        "audiences": ["consumers"],
        "channels": ["email", "sms", "banner", "social", "webhook"],
        "translations": {"nl": {"title": NL_TITLE, "body": NL_BODY}},
    }
    answer = app.test_client().post("/api/v1/preview", json=same, headers=tokens["helpdesk"])
    expected = next(
        r["measures"]["segments"]
        for r in answer.get_json()["renderings"]
        if (r["channel"], r["locale"]) == ("sms", "nl")
    )
    segments = nl_sms.locator(".segments")
    expect(segments).to_have_attribute("data-segments", str(expected))
    expect(segments).to_have_text(re.compile(rf"^{expected} SMS segments?$"))
    expect(preview.locator('tr[data-channel="sms"] .recipients-count')).to_have_text("2")
    expect(preview.locator('tr[data-channel="email"] .recipients-count')).to_have_text("2")
    expect(preview.locator(".warning", has_text="no da translation")).to_be_visible()
    expect(
        preview.locator('.rendering[data-channel="email"][data-locale="nl"] .subject')
    ).to_have_text(f"Acme Energy: {NL_TITLE}")
    page.evaluate("window.scrollTo(0, 0)")
    # The README's picture is refreshed on request only: it shows a port and a time, so
    # writing it on every run would leave the tree modified.
    shot = SCREENSHOT if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path / "compose.png"
    shot.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    page.get_by_role("button", name="Submit").click()
    expect(page.locator(".flash")).to_contain_text("waiting for approval")
    expect(page.locator("ol.timeline li")).to_have_attribute("data-state", "pending_approval")
    assert sendgrid.accepted() == [] and twilio.accepted() == []  # nobody heard anything yet

    page.get_by_role("button", name="Sign out").click()
    sign_in(page, url, people["approver"].email)
    page.get_by_role("link", name="Approvals").click()
    card = page.locator("section.card", has_text=TITLE)
    expect(card).to_contain_text("by hanna@acme.example")
    card.get_by_role("button", name="Approve and publish").click()
    expect(page.locator(".flash")).to_contain_text("Approved and published")
    counts = page.locator("table.counts")
    expect(counts).to_have_attribute("data-live", "polling")
    page.evaluate("window.__samePage = true")

    drain(app)  # real RQ workers: plan job, then email and SMS batches to the fakes

    # The counts change on the open page, without a reload, as the page polls the API.
    expect(counts.locator('tr[data-channel="sms"] td[data-state="sent"]')).to_have_text("2")
    expect(counts.locator('tr[data-channel="email"] td[data-state="sent"]')).to_have_text("2")
    expect(counts).to_have_attribute("data-live", "settled")
    assert page.evaluate("window.__samePage") is True
    texts = {f["To"]: f["Body"] for f in twilio.accepted()}
    assert set(texts) == {"+31612345678", "+31612345670"}
    assert "Pinnen in winkels mislukt" in texts["+31612345678"]
    assert "Card payments in shops fail" in texts["+31612345670"]
    assert sorted(a for a, _ in sendgrid.accepted()) == ["ann@example.com", "bob@example.com"]
    expect(page.locator("#brief")).to_contain_text("Thank you for contacting us.")


def test_preview_shows_markup_as_text(live: tuple[str, Flask], page: Page, people: Any) -> None:
    url, _ = live
    sign_in(page, url, people["helpdesk"].email)
    page.goto(f"{url}/admin/compose")
    hostile = '<img src=x onerror="window.__pwned=1"><b>bold</b>'
    page.get_by_label("Title", exact=True).fill(hostile)
    page.get_by_label("Message", exact=True).fill(hostile)
    page.locator("input[name=audiences][value=consumers]").check()
    page.locator("input[name=channels][value=email]").check()
    email = page.locator('#preview .rendering[data-channel="email"][data-locale="en"]')
    expect(email.locator(".subject")).to_contain_text(hostile)
    assert page.locator("#preview img, #preview b").count() == 0
    page.wait_for_timeout(200)  # an onerror would have fired by now
    assert page.evaluate("typeof window.__pwned") == "undefined"
    # On a phone the page, preview included, fits the width: no sideways scrolling.
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_preview_says_an_internal_draft_reaches_no_public_surface(
    live: tuple[str, Flask], page: Page, people: Any
) -> None:
    url, _ = live
    sign_in(page, url, people["helpdesk"].email)
    page.goto(f"{url}/admin/compose")
    expect(page.locator("#internal-hint")).to_contain_text("only for staff stays internal")
    page.get_by_label("Title", exact=True).fill("Failover tonight")
    page.get_by_label("Message", exact=True).fill("The primary database fails over at 23:00.")
    page.locator("input[name=audiences][value=staff]").check()
    page.locator("input[name=channels][value=banner]").check()
    surfaces = page.locator("#preview-surfaces")
    expect(surfaces).to_have_attribute("data-visibility", "internal")
    expect(surfaces).to_contain_text("Internal: reaches no public surface")
    status = surfaces.locator('[data-surface="status"]')
    expect(status).to_have_attribute("data-reaches", "no")
    expect(status).to_contain_text("every audience is internal")
    expect(surfaces.locator('[data-surface="banner"]')).to_have_attribute("data-reaches", "no")
    # A public audience too: the status page and the banner carry it.
    page.locator("input[name=audiences][value=consumers]").check()
    expect(surfaces).to_have_attribute("data-visibility", "public")
    expect(status).to_have_attribute("data-reaches", "yes")
    expect(surfaces.locator('[data-surface="banner"]')).to_have_attribute("data-reaches", "yes")
