"""A route's contact as a link a phone can follow: ``tel:`` for a phone number, the web
address itself for a web contact, ``mailto:`` for an email address; anything else stays text.

A contact comes from the crisis plan as written ("+31 20 123 4567", "https://acme.example/
chat", "billing@acme.example", "the app's chat tab"). Only the three shapes below become a
link, so no contact can ever make a ``javascript:`` or ``data:`` link, and the text and
address are always escaped where HTML is produced.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import phonenumbers
from markupsafe import Markup, escape

# Digits with the separators people write in phone numbers, an optional leading "+". A
# stricter gate than phonenumbers.parse, which would pick a number out of any sentence.
_PHONE = re.compile(r"\+?[0-9][0-9 ()./\-]{2,30}")
# One address, no spaces, no characters that need quoting in a mailto: link.
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)+")
# Printable ASCII without spaces, quotes or angle brackets: what a web address is written as.
_URL_CHARS = re.compile(r"[!#-;=?-~]+")


@dataclass(frozen=True)
class ContactLink:
    """How a contact is shown: ``kind`` is tel, web, email or text (no ``href``)."""

    text: str
    kind: str
    href: str | None = None


def phone_href(contact: str, region: str | None) -> str | None:
    """``tel:+31201234567`` (E.164) for a valid phone number, else None.

    ``region`` (the plan's ``default_region``) reads numbers written without a country code.
    """
    if not _PHONE.fullmatch(contact):
        return None
    try:
        number = phonenumbers.parse(contact, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return "tel:" + phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def web_href(contact: str) -> str | None:
    """The address itself for an ``https://`` (or ``http://``) URL with a host, else None."""
    if not _URL_CHARS.fullmatch(contact):
        return None
    try:
        parts = urlsplit(contact)
    except ValueError:  # e.g. an unbalanced "[" in the host
        return None
    if parts.scheme.lower() not in ("https", "http") or not parts.hostname:
        return None
    return contact


def email_href(contact: str) -> str | None:
    """``mailto:`` for one plain email address, else None."""
    if not _EMAIL.fullmatch(contact):
        return None
    return "mailto:" + quote(contact, safe="@.+-_")


def contact_link(contact: str, region: str | None = None) -> ContactLink:
    """What ``contact`` links to, if anything: phone, then web, then email."""
    text = contact.strip()
    for kind, href in (
        ("tel", phone_href(text, region)),
        ("web", web_href(text)),
        ("email", email_href(text)),
    ):
        if href:
            return ContactLink(contact, kind, href)
    return ContactLink(contact, "text")


def contact_html(contact: str, region: str | None = None) -> Markup:
    """The contact as HTML: an escaped ``<a href>`` where it links, escaped text otherwise."""
    link = contact_link(contact, region)
    if link.href is None:
        return escape(contact)
    return Markup('<a href="{}" data-contact="{}">{}</a>').format(link.href, link.kind, contact)
