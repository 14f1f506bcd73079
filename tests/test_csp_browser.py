"""The service's own Content-Security-Policy in a real headless Chromium (Playwright).

The admin pages, the status page and /subscribe must work under the CSP the service sends (no
'unsafe-inline'): no violation reported, neither on the console nor as a
``securitypolicyviolation`` event. ``banner.js`` must work on a customer's page on another
loopback origin whose CSP allows scripts from 'self' and the service only, and styles from
'self' only. A witness test proves violations are seen at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask

from tests.browser import launch, serve, skip_without_chromium, stop
from tests.conftest import PASSWORD
from tests.helpers import publish

skip_without_chromium()
from playwright.sync_api import Browser, Page, expect  # noqa: E402  (after the skip)

CSP_TRAP = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__csp.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""
ANNOUNCEMENT = {
    "title": "Card payments fail",
    "body": "Card payments in shops fail since 09:10.",
    "severity": "critical",
    "status": "investigating",
    "audiences": ["consumers"],
    "channels": ["banner"],
    "translations": {"nl": {"title": "Pinnen mislukt", "body": "Pinnen mislukt sinds 09:10."}},
}
ADMIN_PAGES = (
    "Now",
    "Compose",
    "Incidents",
    "Approvals",
    "Subscribers",
    "Monitoring",
    "Drills",
    "Audit",
    "Users",
)


@dataclass
class Live:
    url: str
    app: Flask


@pytest.fixture
def live(make_app: Callable[..., Flask]) -> Iterator[Live]:
    """The app over real HTTP, PUBLIC_URL pointing at itself."""
    holder: dict[str, Flask] = {}
    server, thread = serve(lambda environ, start: holder["app"](environ, start))
    url = f"http://127.0.0.1:{server.port}"
    holder["app"] = make_app(PUBLIC_URL=url)
    yield Live(url, holder["app"])
    stop(server, thread)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from launch()


@dataclass
class Tab:
    page: Page
    console: list[str] = field(default_factory=list)

    def violations(self) -> list[str]:
        """CSP violations, from the console and from securitypolicyviolation events."""
        reported = [m for m in self.console if "Content Security Policy" in m]
        return reported + self.page.evaluate("window.__csp || []")


@pytest.fixture
def tab(browser: Browser) -> Iterator[Tab]:
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    tab = Tab(page)
    page.on("console", lambda message: tab.console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda exc: tab.console.append(f"pageerror: {exc}"))
    page.add_init_script(CSP_TRAP)
    yield tab
    context.close()


def sign_in(page: Page, url: str, email: str) -> None:
    page.goto(f"{url}/admin/signin")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".who")).to_be_visible()


def test_the_service_csp_is_enforced(live: Live, tab: Tab, people: Any) -> None:
    """The witness: an inline style on an admin page is blocked and reported."""
    sign_in(tab.page, live.url, people["admin"].email)
    tab.page.evaluate(
        "document.body.insertAdjacentHTML('beforeend', '<p id=\"x\" style=\"color: red\">x</p>')"
    )
    tab.page.wait_for_function("window.__csp.length >= 1")
    colour = tab.page.locator("#x").evaluate("e => getComputedStyle(e).color")
    assert colour != "rgb(255, 0, 0)"
    assert any("style-src" in v for v in tab.violations()), tab.violations()


def test_admin_pages_work_under_their_csp(
    live: Live, tab: Tab, people: Any, tokens: dict[str, dict[str, str]]
) -> None:
    created = publish(live.app.test_client(), tokens, ANNOUNCEMENT)
    page = tab.page
    sign_in(page, live.url, people["admin"].email)
    # The stylesheet applies: the header is laid out by admin.css, not the browser default.
    assert page.locator("header.top").evaluate("e => getComputedStyle(e).display") == "flex"
    for label in ADMIN_PAGES:
        page.locator("header.top nav").get_by_role("link", name=label, exact=True).click()
        expect(page.locator("h1")).to_be_visible()
    # Compose: the live preview is a script calling the API with the session and CSRF token.
    page.locator("header.top nav").get_by_role("link", name="Compose", exact=True).click()
    page.get_by_label("Title", exact=True).fill("Storm damage")
    page.get_by_label("Message", exact=True).fill("Some lines are down. Next update at 12:00.")
    page.locator("input[name=audiences][value=consumers]").check()
    expect(page.locator("#preview")).to_have_attribute("data-state", "ready")
    # The incident page polls delivery counts with its script.
    page.goto(f"{live.url}/admin/incidents/{created['incident_id']}")
    expect(page.locator("h1")).to_contain_text("Card payments fail")
    page.wait_for_timeout(500)
    # The post-incident report: its SVG pictures and the exercise strip's stripes, drawn
    # without inline style; the Drills page's Start drill button leads to a drill incident.
    page.goto(f"{live.url}/admin/incidents/{created['incident_id']}/report")
    expect(page.locator("figure.chart svg")).to_have_count(2)
    page.locator("header.top nav").get_by_role("link", name="Drills", exact=True).click()
    page.get_by_role("button", name="Start drill").first.click()
    strip = page.locator(".exercise-strip")
    expect(strip).to_be_visible()
    assert "gradient" in strip.evaluate("e => getComputedStyle(e).backgroundImage")
    assert tab.violations() == []
    assert not [m for m in tab.console if m.startswith("pageerror")], tab.console


def test_the_status_page_works_under_its_csp(
    live: Live, tab: Tab, tokens: dict[str, dict[str, str]]
) -> None:
    created = publish(live.app.test_client(), tokens, ANNOUNCEMENT)
    page = tab.page
    page.goto(f"{live.url}/status?lang=en")
    incident = page.locator(f"#{created['incident_id']}")
    expect(incident).to_contain_text("Card payments fail")
    # The severity colour comes from status.css (a class), no longer from a style attribute.
    border = incident.evaluate("e => getComputedStyle(e).borderLeftColor")
    assert border == "rgb(176, 0, 32)"
    assert page.locator("body").evaluate("e => getComputedStyle(e).maxWidth") != "none"
    page.get_by_role("link", name="NL").click()
    expect(incident).to_contain_text("Pinnen mislukt")
    assert tab.violations() == []


def test_the_component_history_opens_on_a_tap_under_the_csp(
    live: Live, tab: Tab, tokens: dict[str, dict[str, str]]
) -> None:
    """The 90-day bar is coloured by status.css and a day with incidents opens (no
    script) to name them."""
    publish(
        live.app.test_client(),
        tokens,
        ANNOUNCEMENT,
        components={"payments": "major_outage"},
    )
    page = tab.page
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live.url}/status?lang=en")
    payments = page.locator("#component-payments")
    expect(payments).to_contain_text("Major outage")
    days = payments.locator("li.day")
    expect(days).to_have_count(90)
    colour = "e => getComputedStyle(e).backgroundColor"
    assert days.nth(89).evaluate(colour) == "rgb(176, 0, 32)"  # major outage, today
    assert days.nth(0).evaluate(colour) == "rgb(46, 125, 50)"  # operational
    note = days.nth(89).locator(".day-note")
    expect(note).to_be_hidden()
    days.nth(89).locator("summary").click()
    expect(note).to_be_visible()
    expect(note).to_contain_text(ANNOUNCEMENT["title"])
    # Nothing scrolls sideways on a phone, bar included.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert tab.violations() == []


@pytest.fixture
def customer(live: Live) -> Iterator[str]:
    """A customer's site on another loopback origin, with the embed under a strict CSP:
    scripts from itself and the service only, styles from itself only."""
    policy = (
        f"default-src 'self'; script-src 'self' {live.url}; connect-src 'self' {live.url}; "
        "style-src 'self'; img-src 'self'"
    )

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        html = (
            "<!doctype html><html lang='nl'><head><meta charset='utf-8'><title>Acme</title>"
            f"<script src='{live.url}/banner.js' data-audience='consumers' data-lang='nl' "
            "data-poll='1' async></script></head><body><h1>Acme Energy</h1></body></html>"
        )
        start_response(
            "200 OK",
            [
                ("Content-Type", "text/html; charset=utf-8"),
                ("Content-Security-Policy", policy),
                ("Cache-Control", "no-store"),
            ],
        )
        return [html.encode()]

    server, thread = serve(wsgi)
    yield f"http://127.0.0.1:{server.port}"  # another port: another origin
    stop(server, thread)


def test_banner_js_works_on_a_customer_page_with_a_strict_csp(
    live: Live, customer: str, tab: Tab, tokens: dict[str, dict[str, str]]
) -> None:
    created = publish(live.app.test_client(), tokens, ANNOUNCEMENT)
    page = tab.page
    page.goto(customer + "/")
    banner = page.locator("[data-broadcaster-banner] [data-severity=critical]")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Pinnen mislukt sinds 09:10.")
    # Styled through CSSOM (element.style), which style-src 'self' does not block.
    assert banner.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(176, 0, 32)"
    assert banner.evaluate("e => getComputedStyle(e).display") == "flex"
    link = banner.locator("a")
    expect(link).to_have_attribute("href", f"{live.url}/status?lang=nl#{created['incident_id']}")
    banner.get_by_role("button").click()
    expect(banner).to_have_count(0)
    assert tab.violations() == []


def test_subscribing_in_the_browser_works_under_the_csp(live: Live, tab: Tab, sendgrid) -> None:
    page = tab.page
    page.goto(f"{live.url}/subscribe?lang=sv")
    # The stylesheet applies (page.css), no inline style was needed.
    assert page.locator("body").evaluate("e => getComputedStyle(e).maxWidth") != "none"
    page.get_by_label("E-postadress").fill("ola@example.com")
    page.get_by_label("Betalningar").check()
    page.get_by_role("button", name="Prenumerera").click()
    expect(page.get_by_role("status")).to_contain_text("Nästan klart")
    from tests.helpers import drain

    drain(live.app)
    [payload] = [p for to, p in sendgrid.accepted() if to == "ola@example.com"]
    link = payload["personalizations"][0]["substitutions"]["-confirm_url-"]
    assert link.startswith(live.url)
    page.goto(link)
    page.get_by_role("button", name="Bekräfta min prenumeration").click()
    expect(page.get_by_role("status")).to_contain_text("Du prenumererar nu")
    person = live.app.extensions["broadcaster"].subscribers
    found = person.find_by_contact("email", "ola@example.com")
    assert person.get(found)["components"] == ["payments"]
    assert tab.violations() == []
    assert not [m for m in tab.console if m.startswith("pageerror")], tab.console
