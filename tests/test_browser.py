"""The banner embed and the status page in a real headless Chromium, through Playwright.

The app is served over HTTP on one port; a customer's "site" with a strict CSP is served on
another, so the embed runs cross-origin exactly as it would on a real website.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.browser import launch, serve, skip_without_chromium, stop
from tests.helpers import publish

skip_without_chromium()
from playwright.sync_api import Browser, Page, expect  # noqa: E402  (after the skip)

EMBED = Path(__file__).resolve().parent.parent / "broadcaster" / "static" / "banner.js"
BANNER = "[data-broadcaster-banner]"
# Collects securitypolicyviolation events too: a second witness next to the console messages.
CSP_TRAP = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__csp.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""


@dataclass
class Live:
    """The real app over HTTP, plus an API client (same Redis) to publish with."""

    url: str
    app: Flask
    client: FlaskClient
    tokens: dict[str, dict[str, str]]

    def publish(
        self, title: str, body: str, nl: tuple[str, str], severity: str = "critical", **extra: Any
    ) -> dict[str, Any]:
        """Publish through the API, with the second approval major/critical need."""
        data = {
            "title": title,
            "body": body,
            "severity": severity,
            "status": extra.pop("status", "investigating"),
            "audiences": ["consumers"],
            "channels": ["banner"],
            "translations": {"nl": {"title": nl[0], "body": nl[1]}},
            **extra,
        }
        return publish(self.client, self.tokens, data)

    def banner(self, incident_id: str) -> dict[str, Any]:
        """The incident's entry in /banner.json as the embed on the test site asks for it."""
        body = self.client.get("/banner.json?audience=consumers&lang=nl").get_json()
        return next(b for b in body["banners"] if b["incident_id"] == incident_id)


@pytest.fixture
def live(make_app: Callable[..., Flask], tokens: dict[str, dict[str, str]]) -> Iterator[Live]:
    # Bind first so the app's PUBLIC_URL (the banner's status link) is this very server.
    holder: dict[str, Flask] = {}
    server, thread = serve(lambda environ, start: holder["app"](environ, start))
    url = f"http://127.0.0.1:{server.port}"
    app = holder["app"] = make_app(PUBLIC_URL=url)
    yield Live(url, app, app.test_client(), tokens)
    stop(server, thread)


@dataclass
class Site:
    url: str


@pytest.fixture
def site(live: Live) -> Iterator[Site]:
    """A customer's website on another origin: ``/`` under a strict CSP with the embed tag,
    ``/blank`` the same without it, ``/nocsp`` the embed without CSP, ``/trap`` a page that
    violates the CSP on purpose (proves violations are noticed at all)."""
    csp = (
        f"default-src 'none'; script-src {live.url}; connect-src {live.url}; "
        "style-src 'self'; img-src 'self'"
    )
    tag = (
        f'<script src="{live.url}/banner.js" data-audience="consumers" data-lang="nl" '
        'data-poll="1" async></script>'
    )

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        path = environ["PATH_INFO"]
        if path not in ("/", "/blank", "/nocsp", "/trap"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found"]
        head = "" if path == "/blank" else tag
        extra = ""
        if path == "/trap":
            extra = '<p style="color: red">inline style</p><script>document.title = "x"</script>'
        html = (
            "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Acme</title>"
            f"{head}</head><body><main><h1>Acme Energy</h1><p>Welcome.</p>{extra}</main>"
            "</body></html>"
        )
        headers = [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")]
        if path != "/nocsp":
            headers.append(("Content-Security-Policy", csp))
        start_response("200 OK", headers)
        return [html.encode()]

    server, thread = serve(wsgi)
    yield Site(f"http://127.0.0.1:{server.port}")
    stop(server, thread)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from launch()


@dataclass
class Tab:
    page: Page
    console: list[str] = field(default_factory=list)

    def csp_violations(self) -> list[str]:
        reported = [m for m in self.console if "Content Security Policy" in m]
        return reported + self.page.evaluate("window.__csp || []")


@pytest.fixture
def tab(browser: Browser) -> Iterator[Tab]:
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    page.set_default_timeout(10_000)
    tab = Tab(page)
    page.on("console", lambda message: tab.console.append(f"{message.type}: {message.text}"))
    page.add_init_script(CSP_TRAP)
    yield tab
    context.close()


def banner_json(response: Any) -> bool:
    return "/banner.json" in response.url


def test_csp_violations_are_noticed(site: Site, tab: Tab) -> None:
    """The witness for the "no CSP violations" assertions below: it does see violations."""
    tab.page.goto(f"{site.url}/trap")
    expect(tab.page.locator("h1")).to_be_visible()
    tab.page.wait_for_function("window.__csp.length >= 2")
    assert any("Content Security Policy" in m for m in tab.console), tab.console


def test_critical_banner_in_dutch_under_strict_csp(live: Live, site: Site, tab: Tab) -> None:
    created = live.publish(
        "Power outage",
        "No power in Amsterdam-Noord.",
        nl=("Stroomstoring", "Geen stroom in Amsterdam-Noord."),
    )
    expected = live.banner(created["incident_id"])
    page = tab.page
    page.goto(site.url + "/")

    banner = page.locator(f'{BANNER} [data-key="{expected["key"]}"]')
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Geen stroom in Amsterdam-Noord.")
    expect(banner).to_have_attribute("role", "alert")
    expect(banner).to_have_attribute("data-severity", "critical")
    assert banner.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(176, 0, 32)"
    assert banner.evaluate("e => getComputedStyle(e).color") == "rgb(255, 255, 255)"
    link = banner.locator("a")
    expect(link).to_have_text("Meer informatie")
    expect(link).to_have_attribute("href", f"{live.url}/status?lang=nl#{created['incident_id']}")
    dismiss = banner.get_by_role("button", name="Sluiten")
    expect(dismiss).to_have_attribute("type", "button")
    # One container, at the top of the body.
    assert page.evaluate("document.body.firstElementChild.hasAttribute('data-broadcaster-banner')")
    assert page.locator(BANNER).count() == 1

    assert tab.csp_violations() == []
    # Nothing added to window: compare with the same page without the embed.
    with_embed = set(page.evaluate("Object.getOwnPropertyNames(window)"))
    page.goto(site.url + "/blank")
    without = set(page.evaluate("Object.getOwnPropertyNames(window)"))
    assert with_embed - without == set()


def test_announcement_html_is_shown_as_text(live: Live, site: Site, tab: Tab) -> None:
    hostile = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
    created = live.publish("Outage", hostile, nl=("Storing", hostile))
    key = live.banner(created["incident_id"])["key"]
    page = tab.page
    page.goto(site.url + "/nocsp")  # no CSP to save us: only the embed's own care
    banner = page.locator(f'{BANNER} [data-key="{key}"]')
    expect(banner).to_be_visible()
    text = banner.text_content() or ""
    assert "<script>window.__pwned=2</script>" in text
    assert '<img src=x onerror="window.__pwned=1">' in text
    assert page.locator(f"{BANNER} img, {BANNER} script").count() == 0
    page.wait_for_timeout(300)  # an onerror would have fired by now
    assert page.evaluate("typeof window.__pwned") == "undefined"


def test_dismissal_lasts_until_the_next_update(live: Live, site: Site, tab: Tab) -> None:
    critical = live.publish(
        "Power outage", "No power in Noord.", nl=("Stroomstoring", "Geen stroom in Noord.")
    )
    first_key = live.banner(critical["incident_id"])["key"]
    page = tab.page
    page.goto(site.url + "/")
    first = page.locator(f'{BANNER} [data-key="{first_key}"]')
    expect(first).to_be_visible()

    first.get_by_role("button", name="Sluiten").click()
    expect(first).to_have_count(0)
    expect(page.locator(BANNER)).to_have_count(0)

    with page.expect_response(banner_json):  # a poll after the reload was handled…
        page.reload()
    with page.expect_response(banner_json):
        pass
    assert first.count() == 0, "a dismissed update came back"  # …and it stays away

    live.publish(
        "Cause found",
        "A damaged cable in Noord.",
        nl=("Oorzaak gevonden", "Een beschadigde kabel in Noord."),
        status="identified",
        incident_id=critical["incident_id"],
    )
    new_key = live.banner(critical["incident_id"])["key"]
    assert new_key != first_key
    update = page.locator(f'{BANNER} [data-key="{new_key}"]')
    expect(update).to_be_visible(timeout=5_000)  # by polling, without a reload
    expect(update).to_contain_text("Een beschadigde kabel in Noord.")
    expect(update).to_have_attribute("role", "alert")


def test_one_banner_with_more_a_correction_and_a_withdrawal(
    live: Live, site: Site, tab: Tab
) -> None:
    """One banner per site: the most severe, "+N meer" to the status page; a correction
    says which update it corrects; a withdrawn one leaves by polling."""
    live.publish("Slow website", "Pages load slowly.", severity="minor", nl=("Traag", "Traag."))
    wrong = live.publish("Gas leak", "Leak in Noord.", nl=("Gaslek", "Lek in Noord."))
    fixed = live.publish(
        "Gas leak",
        "Leak in Zuid, not Noord.",
        nl=("Gaslek", "Lek in Zuid, niet in Noord."),
        corrects=wrong["id"],
    )
    expected = live.banner(fixed["incident_id"])
    page = tab.page
    page.goto(site.url + "/")
    banner = page.locator(f'{BANNER} [data-key="{expected["key"]}"]')
    expect(banner).to_be_visible()
    assert page.locator(f"{BANNER} [data-key]").count() == 1
    expect(banner.locator("strong")).to_have_text(expected["correction"])
    assert expected["correction"].startswith("Corrigeert de update van ")
    more = banner.locator("a[data-more]")
    expect(more).to_have_text("+1 meer")
    expect(more).to_have_attribute("href", f"{live.url}/status?lang=nl#current")
    assert tab.csp_violations() == []

    for announcement in (wrong, fixed):
        answer = live.client.post(
            f"/api/v1/announcements/{announcement['id']}/withdraw",
            json={"reason": "Sent by mistake."},
            headers=live.tokens["admin"],
        )
        assert answer.status_code == 200, answer.get_json()
    # The gas leak is withdrawn: the slow website leads, with nothing more.
    slow = page.locator(f'{BANNER} [data-severity="minor"]')
    expect(slow).to_be_visible(timeout=5_000)
    expect(banner).to_have_count(0)
    assert slow.locator("a[data-more]").count() == 0


def test_minor_is_a_status_and_nothing_renders_nothing(live: Live, site: Site, tab: Tab) -> None:
    page = tab.page
    with page.expect_response(banner_json) as first:
        page.goto(site.url + "/")
    assert first.value.ok and first.value.json()["banners"] == []
    with page.expect_response(banner_json):  # the poll after the first answer was handled
        pass
    assert page.locator(BANNER).count() == 0
    assert page.evaluate("document.body.firstElementChild.tagName") == "MAIN"

    created = live.publish(
        "Slow website",
        "Pages load slowly.",
        severity="minor",
        nl=("Trage website", "Pagina's laden langzaam."),
    )
    banner = page.locator(f'{BANNER} [data-severity="minor"]')
    expect(banner).to_be_visible(timeout=5_000)
    expect(banner).to_have_attribute("role", "status")
    expect(banner).to_have_attribute("data-key", live.banner(created["incident_id"])["key"])
    expect(banner).to_contain_text("Pagina's laden langzaam.")
    assert banner.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(154, 103, 0)"
    assert tab.csp_violations() == []


def test_hostile_banner_json_is_defused(live: Live, site: Site, tab: Tab) -> None:
    """What the server would never send, the embed still handles safely."""
    body = {
        "banners": [
            {
                "key": "inc_x:ann_x",
                "severity": "critical",
                "all_clear": True,
                "text": "<b>All clear</b>",
                "link": "javascript:window.__pwned=1",
            }
        ],
        "poll": 30,
        "status_url": "javascript:void 0",
        "locale": "sv",
    }
    page = tab.page
    page.route(
        f"{live.url}/banner.json*",
        lambda route: route.fulfill(
            status=200,
            content_type="application/json",
            body=json.dumps(body),
            headers={"Access-Control-Allow-Origin": "*"},
        ),
    )
    page.goto(site.url + "/")
    banner = page.locator(f'{BANNER} [data-key="inc_x:ann_x"]')
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("<b>All clear</b>")
    expect(banner).to_have_attribute("role", "status")  # an all clear is not an alarm
    assert banner.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(46, 125, 50)"
    assert banner.locator("a, b").count() == 0  # the javascript: link is dropped
    expect(banner.get_by_role("button", name="Stäng")).to_be_visible()


def test_embed_source_stays_csp_safe() -> None:
    source = EMBED.read_text()
    for banned in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
        "<style",
        "setAttribute('style'",
        "cssText",
    ):
        assert banned not in source, banned
    assert len(source.splitlines()) < 150


def test_status_page_timeline_correction_and_language(live: Live, tab: Tab) -> None:
    first = live.publish(
        "Power outage",
        "No power in Noord.",
        severity="minor",
        nl=("Stroomstoring", "Geen stroom in Noord."),
    )
    incident = first["incident_id"]
    second = live.publish(
        "Cause found",
        "A damaged cable.",
        severity="minor",
        nl=("Oorzaak gevonden", "Een beschadigde kabel."),
        status="identified",
        incident_id=incident,
    )
    fix = live.publish(
        "Area corrected",
        "It is Oost, not Noord.",
        severity="minor",
        nl=("Gebied rechtgezet", "Het is Oost, niet Noord."),
        status="identified",
        corrects=first["id"],
    )
    assert fix["incident_id"] == incident
    newest_first = [fix["id"], second["id"], first["id"]]
    page = tab.page
    page.goto(f"{live.url}/status?lang=en")

    updates = page.locator(f"article#{incident} ol.timeline > li")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    assert updates.evaluate_all("els => els.map(e => e.id)") == newest_first
    correction = page.locator(f"li#{fix['id']}.correction")
    expect(correction).to_have_attribute("data-corrects", first["id"])
    expect(correction.locator("strong", has_text="Correction")).to_be_visible()
    expect(updates.locator("h4")).to_have_text(["Area corrected", "Cause found", "Power outage"])
    expect(page.locator("#current h2")).to_have_text("Current incidents")

    page.locator("nav a[hreflang=nl]").click()
    expect(page.locator("html")).to_have_attribute("lang", "nl")
    assert page.url.endswith("?lang=nl")
    expect(page.locator("nav a[hreflang=nl]")).to_have_attribute("aria-current", "true")
    expect(page.locator("#current h2")).to_have_text("Actuele storingen")
    assert updates.evaluate_all("els => els.map(e => e.id)") == newest_first  # nothing removed
    expect(updates.locator("h4")).to_have_text(
        ["Gebied rechtgezet", "Oorzaak gevonden", "Stroomstoring"]
    )
    expect(correction.locator("strong", has_text="Correctie")).to_be_visible()
    expect(correction).to_contain_text("Het is Oost, niet Noord.")


def test_screenshot_of_the_site_with_a_banner(
    live: Live, site: Site, tab: Tab, tmp_path: Path
) -> None:
    created = live.publish(
        "Power outage",
        "No power in Amsterdam-Noord.",
        nl=("Stroomstoring", "Geen stroom in Amsterdam-Noord."),
    )
    key = live.banner(created["incident_id"])["key"]
    page = tab.page
    page.set_viewport_size({"width": 1000, "height": 400})
    page.goto(site.url + "/")
    expect(page.locator(f'{BANNER} [data-key="{key}"]')).to_be_visible()
    shot = tmp_path / "banner.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 0
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
