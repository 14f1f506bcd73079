"""``/api/v1/subscriptions``: anyone may ask to be subscribed (double opt-in), no token.

The answer is 202 and the same body whether the address was subscribed already or not
(domain/signups.py): a stranger learns nothing about who is subscribed. Confirming by the
texted code is ``POST /api/v1/subscriptions/confirm``; the emailed link opens
``/subscribe/confirm/<token>`` (web/subscribe.py).
"""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from flask.typing import ResponseReturnValue
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import Schema, ValidationError, fields

from broadcaster.domain.signups import SelfSubscriptionOff, TooManySignups
from broadcaster.infra import metrics
from broadcaster.services import services
from broadcaster.web.auth import client_ip
from broadcaster.web.errors import error_body, summarise
from broadcaster.web.gate import public

blp = Blueprint(
    "subscriptions", __name__, url_prefix="/api/v1", description="Self-subscription (public)"
)

PENDING_MESSAGE = (
    "If this address can be subscribed, a message to confirm it is on its way. "
    "Nothing else is sent to it until it is confirmed."
)
OFF_MESSAGE = "self-subscription is not offered here (the crisis plan has no [subscriptions])"


class SubscriptionIn(Schema):
    """One sign-up: exactly one of email and phone (the domain checks it, field by field)."""

    email = fields.String(metadata={"description": "an email address"})
    phone = fields.String(metadata={"description": "a mobile number (E.164 or national)"})
    locale = fields.String(metadata={"description": "one of the plan's locales"})
    first = fields.Boolean(
        metadata={"description": "contact me by this channel first (heads their channel order)"}
    )
    whatsapp = fields.Boolean(
        metadata={
            "description": "with phone only: also send alerts on WhatsApp (recorded as the "
            "WhatsApp opt-in when the number is confirmed); default false"
        }
    )
    whatsapp_first = fields.Boolean(
        metadata={"description": "with whatsapp: WhatsApp comes before SMS in their order"}
    )
    components = fields.List(
        fields.String(), metadata={"description": "component ids; none: everything"}
    )


class ConfirmIn(Schema):
    phone = fields.String(required=True)
    code = fields.String(required=True)


class SubscriptionOut(Schema):
    status = fields.String()
    message = fields.String()


def too_many(exc: TooManySignups) -> ResponseReturnValue:
    """429 in the one error shape, with Retry-After."""
    response = jsonify(error_body(429, str(exc)))
    response.headers["Retry-After"] = str(exc.retry_after)
    return response, 429


@blp.route("/subscriptions")
class Subscriptions(MethodView):
    @public("anyone may ask to subscribe; nothing is sent but the request to confirm")
    @blp.doc(security=[], requestBody={"content": {"application/json": {"schema": SubscriptionIn}}})
    @blp.response(202, SubscriptionOut)
    @blp.alt_response(404, description="Self-subscription is not offered")
    @blp.alt_response(422, description="The body names what is wrong, field by field")
    @blp.alt_response(429, description="Too many sign-ups for this address or from this caller")
    def post(self) -> Any:
        """Ask to be subscribed; a message to confirm goes to the address (double opt-in).

        Body: ``{"email": …}`` or ``{"phone": …}``, optional ``locale``, ``components``,
        ``first``, and with a phone ``whatsapp`` (+ ``whatsapp_first``).
        The same answer whether the address is subscribed already or not.
        """
        svc = services()
        try:
            svc.signups.request(request.get_json(silent=True), client_ip())
        except SelfSubscriptionOff:
            abort(404, message=OFF_MESSAGE)
        except ValidationError as exc:
            errors = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
            abort(422, message=summarise(errors), errors=errors)
        except TooManySignups as exc:
            return too_many(exc)
        metrics.count(svc.redis, "signups", "request", "accepted")
        return {"status": "pending", "message": PENDING_MESSAGE}, 202


@blp.route("/subscriptions/confirm")
class Confirm(MethodView):
    @public("confirms a sign-up with the code texted to the person who asked for it")
    @blp.doc(security=[], requestBody={"content": {"application/json": {"schema": ConfirmIn}}})
    @blp.response(200, SubscriptionOut)
    @blp.alt_response(404, description="No pending sign-up with this code (wrong or expired)")
    @blp.alt_response(422, description="phone and code are both required, as text")
    @blp.alt_response(429, description="Too many attempts from this caller")
    def post(self) -> Any:
        """Confirm a phone sign-up with the code from the SMS: ``{"phone": …, "code": …}``."""
        svc = services()
        if svc.plan.subscriptions is None:
            abort(404, message=OFF_MESSAGE)
        body = request.get_json(silent=True)
        try:
            data = ConfirmIn().load(body if isinstance(body, dict) else {})
        except ValidationError as exc:
            abort(422, message=summarise(exc.messages), errors=exc.messages)
        try:
            svc.signups.count_caller(client_ip())
        except TooManySignups as exc:
            return too_many(exc)
        if svc.signups.confirm_code(data["phone"], data["code"]) is None:
            abort(404, message="no pending sign-up has this code: it is wrong or has expired")
        metrics.count(svc.redis, "signups", "confirmed", "code")
        return {"status": "subscribed", "message": "Subscribed."}
