"""The messages of self-subscription: "confirm your subscription" and "you are subscribed
already", by email and SMS, in the language the person chose on /subscribe.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from broadcaster.domain import unsubscribe_links
from broadcaster.domain.signups import Signup, link_token
from broadcaster.rendering.i18n import gettext_for
from channels.base import UNSUBSCRIBE_PLACEHOLDER

if TYPE_CHECKING:
    from broadcaster.services import Services  # the composition root; types only

CONFIRM_PATH = "/subscribe/confirm/"
# Where each person's own link goes in a confirmation email (a SendGrid substitution, like
# the unsubscribe link): the emails of one language are then alike and share a request.
CONFIRM_PLACEHOLDER = "-confirm_url-"
CODE_PATH = "/subscribe/code"


def confirm_url(svc: Services, signup: Signup) -> str:
    """The signed link that confirms an email sign-up."""
    token = link_token(str(svc.config["SECRET_KEY"]), signup.id)
    return f"{svc.renderer.public_url}{CONFIRM_PATH}{token}"


def render(svc: Services, signup: Signup) -> tuple[dict[str, str], dict[str, str]]:
    """(content, personal placeholders) of the message for ``signup``."""
    _ = gettext_for(signup.locale)
    organisation = svc.plan.organisation
    hours = max(1, round(svc.signups.ttl / 3600))
    personal: dict[str, str] = {}
    if signup.kind == "already":
        personal[UNSUBSCRIBE_PLACEHOLDER] = unsubscribe_links.link(
            str(svc.config["SECRET_KEY"]),
            svc.renderer.public_url,
            signup.subscriber_id,
            signup.channel,
        )
    if signup.channel == "sms":
        if signup.kind == "already":
            text = _(
                "%(organisation)s: this number is already subscribed to our incident updates."
                " Reply STOP to unsubscribe.",
                organisation=organisation,
            )
        elif signup.whatsapp:
            # They asked for WhatsApp too: the YES (or the code) agrees to both, so say so.
            text = _(
                "%(organisation)s: reply YES to receive our incident updates by SMS and"
                " WhatsApp, or enter code %(code)s at %(url)s within %(hours)d hours. Reply"
                " STOP to opt out at any time. Not you? Ignore this message.",
                organisation=organisation,
                code=signup.code,
                url=svc.renderer.public_url + CODE_PATH,
                hours=hours,
            )
        else:
            text = _(
                "%(organisation)s: reply YES to receive our incident updates, or enter code"
                " %(code)s at %(url)s within %(hours)d hours. Reply STOP to opt out at any"
                " time. Not you? Ignore this message.",
                organisation=organisation,
                code=signup.code,
                url=svc.renderer.public_url + CODE_PATH,
                hours=hours,
            )
        return {"text": text}, personal
    if signup.kind == "already":
        subject = _("You are already subscribed to %(organisation)s", organisation=organisation)
        lines = [
            _(
                "Someone asked to subscribe this address to the incident updates of"
                " %(organisation)s. It is subscribed already: nothing has changed.",
                organisation=organisation,
            ),
            _("To unsubscribe:") + " " + UNSUBSCRIBE_PLACEHOLDER,
        ]
        link = UNSUBSCRIBE_PLACEHOLDER
    else:
        subject = _("Confirm your subscription to %(organisation)s", organisation=organisation)
        link = CONFIRM_PLACEHOLDER
        personal[CONFIRM_PLACEHOLDER] = confirm_url(svc, signup)
        lines = [
            _(
                "Someone (we hope you) asked to receive the incident updates of"
                " %(organisation)s at this address.",
                organisation=organisation,
            ),
            _("To confirm, open this link within %(hours)d hours:", hours=hours) + " " + link,
            _("Not you? Ignore this message: we will send nothing more."),
        ]
    html = "".join(f"<p>{escape(line).replace(escape(link), _anchor(link))}</p>" for line in lines)
    return {"subject": subject, "text": "\n\n".join(lines), "html": html}, personal


def _anchor(link: str) -> str:
    return f'<a href="{escape(link)}">{escape(link)}</a>'
