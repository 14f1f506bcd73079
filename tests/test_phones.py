"""Phones (issue 16): the status page, an email, compose and the incident page in a real
headless Chromium at 390 × 844 (an iPhone 12–15), one-handed.

No page scrolls sideways (``document.documentElement.scrollWidth <= innerWidth``); every
route shows its hours on screen; phone contacts are ``tel:`` links in E.164, web contacts
links, email contacts ``mailto:`` links; on compose the preview comes before Submit. The
email is the HTML the real SendGrid SDK sent to the fake SendGrid. The contact-link helper
has its own tests at the end, Hypothesis included: no contact ever makes a script link.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markupsafe import escape

from broadcaster.rendering.contacts import contact_html, contact_link
from tests.browser import launch, serve, skip_without_chromium, stop
from tests.conftest import PASSWORD
from tests.helpers import drain, publish, subscribe

try:
    from playwright.sync_api import expect
except ImportError:  # the browser tests skip (tests/browser.py); the helper's tests still run
    expect = None

PHONE = {"width": 390, "height": 844}

# Every kind of contact: web, international and national phone numbers, email, plain text;
# long hours and a long unbroken address, as a real plan has them.
PLAN = """
[organisation]
name = "Acme Energy"
default_locale = "en"
locales = ["en", "nl"]
default_region = "NL"
timezone = "Europe/Amsterdam"

[policy]
approval_required = []

[channels_by_severity]
info = ["banner"]
minor = ["banner"]
major = ["banner", "email"]
critical = ["banner", "email"]

[audiences.consumers]
description = "Private customers"
channels = ["email", "banner"]

[[audiences.consumers.routes]]
need = { en = "Technical problem", nl = "Technisch probleem" }
channel = "Live chat"
contact = "https://acme.example/chat"
hours = "24/7"

[[audiences.consumers.routes]]
need = "Emergency"
channel = "Phone"
contact = "+31 20 123 4567"
hours = "24/7"

[[audiences.consumers.routes]]
need = "Complaints"
channel = "Email"
contact = "complaints@acme.example"
hours = "Answered within two working days"

[[audiences.consumers.routes]]
need = "Outage map"
channel = "App"
contact = "Open the Acme app, tab Outages"
hours = "24/7"

[audiences.business]
description = "Business customers"
channels = ["email", "banner"]

[[audiences.business.routes]]
need = "Account manager"
channel = "Phone"
contact = "020 765 4321"
hours = "Mon-Fri 08:00-18:00, Sat 09:00-13:00"

[[audiences.business.routes]]
need = "Invoices and contracts for large connections"
channel = "Business portal"
contact = "https://business.acme.example/portal/invoices-and-contracts/large-connections"
hours = "Mon-Fri 08:00-18:00"
"""

# need → (channel, contact as written, expected href or None, hours)
ROUTES = {
    "Technical problem": ("Live chat", "https://acme.example/chat", "https://acme.example/chat"),
    "Emergency": ("Phone", "+31 20 123 4567", "tel:+31201234567"),
    "Complaints": ("Email", "complaints@acme.example", "mailto:complaints@acme.example"),
    "Outage map": ("App", "Open the Acme app, tab Outages", None),
    "Account manager": ("Phone", "020 765 4321", "tel:+31207654321"),
    "Invoices and contracts for large connections": (
        "Business portal",
        "https://business.acme.example/portal/invoices-and-contracts/large-connections",
        "https://business.acme.example/portal/invoices-and-contracts/large-connections",
    ),
}
HOURS = {
    "Technical problem": "24/7",
    "Emergency": "24/7",
    "Complaints": "Answered within two working days",
    "Outage map": "24/7",
    "Account manager": "Mon-Fri 08:00-18:00, Sat 09:00-13:00",
    "Invoices and contracts for large connections": "Mon-Fri 08:00-18:00",
}
LONG_WORD = "Storingsmeldingsformulierverwerkingssysteemonderhoudswerkzaamheden"
ANNOUNCEMENT = {
    "title": f"Power outage in Amsterdam-Noord: {LONG_WORD}",
    "body": (
        "Parts of Amsterdam-Noord have no power since 09:10. Engineers are on site.\n\n"
        f"Details: https://acme.example/outages/2026-12-02/amsterdam-noord/{LONG_WORD}"
    ),
    "severity": "major",
    "status": "investigating",
    "audiences": ["consumers", "business"],
    "channels": ["email", "banner"],
}
CSP_TRAP = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__csp.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""
# The elements that stick out on the right of the phone's screen: what widened the page.
WIDE = """width => Array.from(document.querySelectorAll('body *'))
  .filter(e => e.getBoundingClientRect().right > width + 0.5).slice(0, 8)
  .map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))"""


@dataclass
class Live:
    url: str
    app: Flask


@pytest.fixture
def live(make_app: Callable[..., Flask], tmp_path: Path) -> Iterator[Live]:
    """The app over real HTTP with the plan above, PUBLIC_URL pointing at itself."""
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN)
    holder: dict[str, Flask] = {}
    server, thread = serve(lambda environ, start: holder["app"](environ, start))
    url = f"http://127.0.0.1:{server.port}"
    holder["app"] = make_app(PUBLIC_URL=url, PLAN=str(plan))
    yield Live(url, holder["app"])
    stop(server, thread)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    skip_without_chromium()
    yield from launch()


@dataclass
class Phone:
    """A tab on a phone: touch, the page's viewport honoured, its errors collected."""

    page: Any
    problems: list[str] = field(default_factory=list)

    def fits(self) -> None:
        """The page is 390 px wide and does not scroll sideways."""
        width, inner = self.page.evaluate(
            "[document.documentElement.scrollWidth, window.innerWidth]"
        )
        # A phone zooms out to show a page wider than its screen: innerWidth grows with it.
        assert inner == PHONE["width"], (
            inner,
            self.page.evaluate(WIDE.replace("window.innerWidth", "390")),
        )
        assert width <= inner, (width, self.page.evaluate(WIDE))

    def on_screen(self, locator: Any) -> None:
        """Visible, and from its left to its right edge within the screen's width."""
        assert locator.is_visible()
        box = locator.bounding_box()
        assert box is not None and box["x"] >= 0, box
        assert box["x"] + box["width"] <= PHONE["width"] + 0.5, box


@pytest.fixture
def phone(browser: Any) -> Iterator[Phone]:
    context = browser.new_context(
        locale="en-US", viewport=PHONE, device_scale_factor=3, is_mobile=True, has_touch=True
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    tab = Phone(page)
    page.on("pageerror", lambda exc: tab.problems.append(f"pageerror: {exc}"))
    page.on(
        "console",
        lambda m: tab.problems.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.add_init_script(CSP_TRAP)
    yield tab
    context.close()
    assert tab.problems == [], tab.problems  # no script error, no CSP complaint


def sign_in(page: Any, url: str, email: str) -> None:
    page.goto(f"{url}/admin/signin")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".who")).to_be_visible()


def assert_contact_links(scope: Any, needs: list[str]) -> None:
    """Each route's contact links where it should (exact href), and is text where not."""
    for need in needs:
        _, contact, href = ROUTES[need]
        if href is None:
            assert scope.locator("a", has_text=contact).count() == 0
            continue
        link = scope.locator(f'a[href="{href}"]')
        assert link.count() >= 1, (need, href)
        assert link.first.inner_text().strip() == contact


# --- the status page ---------------------------------------------------------------------


def test_the_status_page_fits_a_phone_with_every_routes_hours(
    live: Live, phone: Phone, tokens: dict[str, dict[str, str]]
) -> None:
    created = publish(live.app.test_client(), tokens, ANNOUNCEMENT)
    page = phone.page
    page.goto(f"{live.url}/status?lang=en")
    expect(page.locator(f"#{created['incident_id']}")).to_contain_text("Amsterdam-Noord")
    phone.fits()
    cards = page.locator("#routes .route")
    assert cards.count() == len(ROUTES)
    for need, hours in HOURS.items():
        card = cards.filter(has=page.locator("h4", has_text=need))
        assert card.count() == 1, need
        card.scroll_into_view_if_needed()
        phone.on_screen(card.locator(".hours"))
        expect(card.locator(".hours")).to_have_text(hours)
        phone.on_screen(card.locator(".contact"))
    assert_contact_links(page.locator("#routes"), list(ROUTES))
    # A thumb can hit the number: at least as tall as a line of text, on one line.
    call = page.locator('#routes a[href="tel:+31201234567"]')
    assert call.bounding_box()["height"] >= 24
    assert page.evaluate("window.__csp") == []


def test_the_status_page_in_another_language_fits_too(
    live: Live, phone: Phone, tokens: dict[str, dict[str, str]]
) -> None:
    publish(live.app.test_client(), tokens, ANNOUNCEMENT)
    phone.page.goto(f"{live.url}/status?lang=nl")
    phone.fits()
    card = phone.page.locator("#routes .route", has_text="Technisch probleem")
    # The Dutch labels are longer ("Openingstijden"): label and hours still fit.
    phone.on_screen(card.locator("dt", has_text="Openingstijden"))
    phone.on_screen(card.locator(".hours"))
    assert_contact_links(phone.page.locator("#routes"), ["Emergency", "Account manager"])


# --- an email, as SendGrid got it ----------------------------------------------------------


def test_an_email_fits_a_phone_and_its_contacts_are_links(
    live: Live, phone: Phone, tokens: dict[str, dict[str, str]], providers: Any
) -> None:
    sendgrid, _ = providers
    client = live.app.test_client()
    subscribe(
        client,
        tokens["admin"],
        [{"email": "ann@example.com", "locale": "en", "audiences": ["consumers", "business"]}],
    )
    publish(client, tokens, ANNOUNCEMENT)
    drain(live.app)
    [(address, payload)] = sendgrid.accepted()
    assert address == "ann@example.com"
    html = next(c["value"] for c in payload["content"] if c["type"] == "text/html")
    page = phone.page
    page.set_content(html)
    phone.fits()
    section = page.locator("table[role=presentation]")
    for need, hours in HOURS.items():
        cell = section.locator("td", has=page.locator("strong", has_text=need))
        assert cell.count() == 1, need
        line = cell.locator("span", has_text=f"Hours: {hours}")
        line.scroll_into_view_if_needed()
        phone.on_screen(line)
    assert_contact_links(section, list(ROUTES))
    # The long word in the title and the long link in the body wrap, not widen the mail.
    phone.on_screen(page.locator("h1"))


# --- compose -------------------------------------------------------------------------------


def test_compose_on_a_phone_shows_the_preview_before_submit(
    live: Live, phone: Phone, people: Any
) -> None:
    page = phone.page
    sign_in(page, live.url, people["admin"].email)
    page.goto(f"{live.url}/admin/compose")
    phone.fits()
    submit = page.get_by_role("button", name="Submit")
    preview = page.locator("#preview")
    # A link to the preview, in sight at the bottom of the screen while the form is filled
    # in, and before Submit in the page.
    jump = page.locator('a[href="#preview"]')
    phone.on_screen(jump)
    assert jump.bounding_box()["y"] + jump.bounding_box()["height"] <= PHONE["height"]
    assert jump.evaluate(
        "(a, b) => !!(a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING)",
        submit.element_handle(),
    )

    page.get_by_label("Title", exact=True).fill(ANNOUNCEMENT["title"])
    page.get_by_label("Message", exact=True).fill(ANNOUNCEMENT["body"])
    page.locator("input[name=audiences][value=consumers]").check()
    page.locator("input[name=channels][value=email]").check()
    expect(preview).to_have_attribute("data-state", "ready")
    phone.fits()  # the preview's renderings and tables included
    # The preview comes first: its top is above the Submit button's.
    assert preview.bounding_box()["y"] < submit.bounding_box()["y"]
    jump.tap()
    expect(preview).to_be_in_viewport()
    phone.on_screen(preview.locator(".rendering").first)

    submit.tap()  # the button sits outside the form and still submits it
    expect(page.locator(".flash")).to_be_visible()
    expect(page.locator("h1")).to_contain_text("Amsterdam-Noord")
    phone.fits()


def test_compose_on_a_wide_screen_keeps_submit_under_the_form(
    live: Live, browser: Any, people: Any
) -> None:
    """Beside the preview on a laptop: Submit right under the form, not under the preview."""
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        sign_in(page, live.url, people["admin"].email)
        page.goto(f"{live.url}/admin/compose")
        form = page.locator("form#compose").bounding_box()
        preview = page.locator("#preview").bounding_box()
        submit = page.locator(".submit-bar").bounding_box()
        assert preview["x"] > form["x"] + form["width"] - 1  # side by side
        assert submit["x"] == form["x"]
        assert 0 < submit["y"] - (form["y"] + form["height"]) <= 24  # right under the form
        assert not page.locator('a[href="#preview"]').is_visible()  # no jump needed here
    finally:
        context.close()


# --- the incident page and its agent brief ----------------------------------------------


def test_the_incident_page_fits_a_phone_and_the_brief_links_contacts(
    live: Live, phone: Phone, people: Any, tokens: dict[str, dict[str, str]]
) -> None:
    created = publish(live.app.test_client(), tokens, ANNOUNCEMENT)
    page = phone.page
    sign_in(page, live.url, people["admin"].email)
    page.goto(f"{live.url}/admin/incidents/{created['incident_id']}")
    expect(page.locator("h1")).to_contain_text("Amsterdam-Noord")
    phone.fits()
    brief = page.locator("#brief")
    expect(brief).to_contain_text("Thank you for contacting us.")
    assert_contact_links(brief, list(ROUTES))
    for need, hours in HOURS.items():
        route = brief.locator("li.route", has_text=need)
        route.scroll_into_view_if_needed()
        phone.on_screen(route.locator(".hours"))
        expect(route.locator(".hours")).to_have_text(f"({hours})")


# --- the contact-link helper (no browser) -------------------------------------------------


@pytest.mark.parametrize(
    ("contact", "region", "kind", "href"),
    [
        ("+31 20 123 4567", None, "tel", "tel:+31201234567"),
        ("+31 (0)20 123 4567", None, "tel", "tel:+31201234567"),
        ("020 123 4567", "NL", "tel", "tel:+31201234567"),
        ("020-1234567", "NL", "tel", "tel:+31201234567"),
        ("+1 415 555 0132", "NL", "tel", "tel:+14155550132"),
        ("+45 33 12 34 56", None, "tel", "tel:+4533123456"),
        ("020 123 4567", None, "text", None),  # no country code, no region: can't tell
        ("112", "NL", "text", None),  # a short code is not an E.164 number
        ("+31 20 12", None, "text", None),  # too short to be valid
        ("Call +31 20 123 4567", None, "text", None),  # a sentence stays a sentence
        ("https://acme.example/chat", None, "web", "https://acme.example/chat"),
        ("HTTPS://acme.example/a?b=1&c=2#d", None, "web", "HTTPS://acme.example/a?b=1&c=2#d"),
        ("http://acme.example", None, "web", "http://acme.example"),
        ("https://", None, "text", None),
        ("https://acme.example/a b", None, "text", None),
        ("ftp://acme.example/file", None, "text", None),
        ("help@acme.example", None, "email", "mailto:help@acme.example"),
        ("help@acme", None, "text", None),
        ("javascript:alert(1)", None, "text", None),
        ("JavaScript://acme.example/%0Aalert(1)", None, "text", None),
        ("data:text/html,<script>alert(1)</script>", None, "text", None),
        ("tel:+31201234567", None, "text", None),  # written as a link already: left as text
        ("  +31 20 123 4567  ", None, "tel", "tel:+31201234567"),
    ],
)
def test_contact_links(contact: str, region: str | None, kind: str, href: str | None) -> None:
    link = contact_link(contact, region)
    assert (link.kind, link.href, link.text) == (kind, href, contact)


def test_contact_html_escapes_text_and_address() -> None:
    hostile = 'https://acme.example/"><script>alert(1)</script>'
    assert contact_html(hostile) == escape(hostile)  # not a URL: quotes and brackets
    assert str(contact_html("https://acme.example/?a=1&b=2")) == (
        '<a href="https://acme.example/?a=1&amp;b=2" data-contact="web">'
        "https://acme.example/?a=1&amp;b=2</a>"
    )
    assert str(contact_html("+31 20 123 4567")) == (
        '<a href="tel:+31201234567" data-contact="tel">+31 20 123 4567</a>'
    )


class _Parsed(HTMLParser):
    """Tags, attributes and text of a fragment, as a browser's tokenizer would read them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text += data


HOSTILE_PREFIXES = st.sampled_from(
    [
        "",
        "javascript:",
        " JAVASCRIPT:",
        "java\tscript:",
        "vbscript:",
        "data:text/html,",
        "https://",
        "http://",
        "tel:",
        "mailto:",
        "+31 20 ",
        "020 ",
        '"><',
        "&#106;avascript:",
    ]
)
CONTACTS = st.one_of(
    st.text(max_size=80),
    st.builds(lambda a, b: a + b, HOSTILE_PREFIXES, st.text(max_size=60)),
    st.from_regex(r"\+?[0-9 ()./\-]{3,20}", fullmatch=True),
    st.from_regex(r"https?://[a-z0-9.\-]{1,20}(/[!-~]{0,20})?", fullmatch=True),
    st.emails(),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(contact=CONTACTS, region=st.sampled_from([None, "NL", "US", "DK"]))
def test_any_contact_renders_escaped_and_never_as_a_script_link(
    contact: str, region: str | None
) -> None:
    html = str(contact_html(contact, region))
    parsed = _Parsed()
    parsed.feed(html)
    parsed.close()
    assert parsed.text == contact  # the reader sees the contact exactly as written
    assert all(tag == "a" for tag, _ in parsed.tags), parsed.tags  # no other element
    assert len(parsed.tags) <= 1
    if parsed.tags:
        _, attrs = parsed.tags[0]
        assert set(attrs) == {"href", "data-contact"}
        href = attrs["href"] or ""
        scheme = href.split(":", 1)[0].lower()
        assert scheme in {"tel", "https", "http", "mailto"}, href
        assert re.fullmatch(r"[!#-;=?-~]+", href), href  # nothing a browser would strip
        if scheme == "tel":
            assert re.fullmatch(r"tel:\+[1-9][0-9]{6,15}", href), href
