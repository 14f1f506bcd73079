"""Request and response schemas (marshmallow): the API's documented contract."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate

from broadcaster.domain import audit, text_policy
from broadcaster.domain.incidents import SEVERITIES, STATUSES
from broadcaster.domain.ledger import STATES
from broadcaster.web.api.paging import Cursor, PageQuery, QueryArgs
from channels import CHANNELS, PERSONAL


def not_blank(value: str) -> None:
    """Refuse text that is only whitespace (a reason must say something)."""
    if not value.strip():
        raise ValidationError("must not be blank")


# The types and shapes are checked here; the plan (audiences, locales) and the text policy
# by the announcement service, the one way in (domain/announcement_checks.py).
TITLE = [validate.Length(min=1, max=text_policy.TITLE_MAX)]


class TranslationSchema(Schema):
    title = fields.String(required=True, validate=TITLE)
    body = fields.String(required=True, validate=validate.Length(min=1))


class AnnouncementIn(Schema):
    """A new announcement: what happened, for whom, on which channels."""

    title = fields.String(required=True, validate=TITLE)
    body = fields.String(required=True, validate=validate.Length(min=1))
    severity = fields.String(required=True, validate=validate.OneOf(SEVERITIES))
    status = fields.String(load_default="investigating", validate=validate.OneOf(STATUSES))
    audiences = fields.List(fields.String(), required=True, validate=validate.Length(min=1))
    channels = fields.List(
        fields.String(validate=validate.OneOf(list(CHANNELS))), load_default=None
    )
    incident_id = fields.String(load_default=None)
    translations = fields.Dict(
        keys=fields.String(), values=fields.Nested(TranslationSchema), load_default=dict
    )
    corrects = fields.String(load_default=None)
    next_update_at = fields.AwareDateTime(
        load_default=None, metadata={"description": "when the next update is promised (ISO 8601)"}
    )
    need = fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=200),
        metadata={
            "description": "the need this is about: a route's need label in the plan's default "
            "locale; SMS, banner and social posts show that route"
        },
    )
    components = fields.Dict(
        keys=fields.String(validate=validate.Length(min=1, max=64)),
        values=fields.String(validate=validate.Length(min=1, max=64)),
        load_default=dict,
        metadata={
            "description": 'component states this sets, e.g. {"payments": "major_outage"}: '
            "operational, degraded_performance, partial_outage, major_outage or "
            "under_maintenance, for components the plan declares"
        },
    )
    bypass_reason = fields.String(
        load_default=None,
        validate=[validate.Length(min=5, max=2000), not_blank],
        metadata={
            "description": "admins only: publish at once without a second person's approval; "
            "the reason is recorded on the announcement and in the audit log"
        },
    )


class Links(Schema):
    self = fields.String()
    deliveries = fields.String()
    incident = fields.String()
    preview = fields.String()


class AcceptedSchema(Schema):
    id = fields.String()
    incident_id = fields.String()
    state = fields.String()
    links = fields.Nested(Links)


class AnnouncementOut(Schema):
    id = fields.String()
    incident_id = fields.String()
    title = fields.String()
    body = fields.String()
    severity = fields.String()
    status = fields.String()
    audiences = fields.List(fields.String())
    channels = fields.List(fields.String())
    translations = fields.Dict()
    corrects = fields.String(allow_none=True)
    next_update_at = fields.Float(allow_none=True)
    need = fields.String(allow_none=True)
    components = fields.Dict(metadata={"description": "component states it sets"})
    author = fields.String(metadata={"description": "the token or user that wrote it"})
    author_person = fields.String(metadata={"description": "the person behind `author`"})
    state = fields.String()
    created_at = fields.Float()
    published_at = fields.Float(allow_none=True)
    approved_by = fields.String(allow_none=True)
    rejected_by = fields.String(allow_none=True)
    decided_by_person = fields.String(
        allow_none=True, metadata={"description": "the person who approved or rejected it"}
    )
    reason = fields.String(allow_none=True)
    bypass_reason = fields.String(allow_none=True)
    preapproved = fields.Boolean(
        metadata={"description": "approved with the plan (a holding statement)"}
    )
    corrects_published_at = fields.Float(
        allow_none=True, metadata={"description": "when the corrected announcement was published"}
    )
    withdrawn_at = fields.Float(allow_none=True)
    withdrawn_by = fields.String(allow_none=True)
    withdrawn_reason = fields.String(
        allow_none=True, metadata={"description": "shown to the public: 'withdrawn: reason'"}
    )
    exercise = fields.Boolean(metadata={"description": "part of a drill (never public)"})
    deliveries = fields.Dict(
        metadata={"description": "per channel: queued, sending, sent, delivered, failed, skipped"}
    )
    staff = fields.Dict(
        allow_none=True,
        metadata={
            "description": "staff first: lead_seconds, briefed_at, customers_at and the staff "
            "deliveries per channel (not counted in `deliveries`); null when staff are not "
            "told first"
        },
    )
    links = fields.Nested(Links)


class RejectIn(Schema):
    reason = fields.String(required=True, validate=[validate.Length(min=1, max=2000), not_blank])


class WithdrawIn(Schema):
    reason = fields.String(
        required=True,
        validate=[validate.Length(min=1, max=2000), not_blank],
        metadata={"description": "why it is withdrawn; the public reads it"},
        error_messages={"required": "say why it is withdrawn: the public reads the reason"},
    )


class AuditArgs(QueryArgs):
    incident_id = fields.String(load_default=None)
    actor = fields.String(load_default=None, metadata={"description": "user email or token name"})
    action = fields.String(load_default=None, validate=validate.OneOf(audit.ACTIONS))
    before = fields.String(
        load_default=None,
        # Both parts fit Redis' unsigned 64-bit ids, and nothing precedes 0-0 (Redis refuses).
        validate=validate.Regexp(
            r"^[1-9]\d{0,18}-\d{1,19}$", error="a stream id such as 1700000000000-0"
        ),
        metadata={"description": "the `id` of the last entry of the previous page"},
    )
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))


class AuditEntry(Schema):
    id = fields.String()
    at = fields.Float()
    actor = fields.String()
    action = fields.String()
    ip = fields.String(allow_none=True)
    incident_id = fields.String(allow_none=True)
    announcement_id = fields.String(allow_none=True)
    details = fields.Dict()


class AuditPage(Schema):
    items = fields.List(fields.Nested(AuditEntry))
    next_before = fields.String(allow_none=True)


class PageArgs(PageQuery):
    pass


class DeliveryPageArgs(PageArgs):
    staff = fields.Boolean(
        load_default=False,
        metadata={"description": "list the staff deliveries (the brief staff got first)"},
    )
    channel = fields.String(
        load_default=None,
        validate=validate.OneOf(CHANNELS),
        metadata={"description": "only this channel's records"},
    )
    state = fields.String(
        load_default=None,
        validate=validate.OneOf(STATES),
        metadata={"description": "only records in this state (e.g. failed)"},
    )
    cursor = Cursor(
        load_default=None,
        metadata={
            "description": "where to go on: the previous page's next_cursor (or follow the "
            "Link header); with a cursor, page is not used"
        },
    )


class SubscriberPageArgs(PageArgs):
    audience = fields.String(load_default=None)


class DeliveryOut(Schema):
    channel = fields.String()
    subscriber_id = fields.String()
    state = fields.String()
    attempts = fields.Integer()
    to = fields.String(allow_none=True)
    provider_id = fields.String(allow_none=True)
    error = fields.String(allow_none=True)
    message = fields.Dict(
        allow_none=True, metadata={"description": "rendered message (outbox transport)"}
    )
    fallback = fields.String(
        allow_none=True, metadata={"description": "the channel used instead (SMS failed for good)"}
    )
    fallback_from = fields.String(
        allow_none=True, metadata={"description": "the channel this delivery stands in for"}
    )
    escalation = fields.Integer(
        allow_none=True,
        metadata={"description": "sent by escalation step N: the person had not confirmed"},
    )
    # A voice call's course (web/hooks/voice.py).
    receipt = fields.String(
        allow_none=True, metadata={"description": "the provider's final status (a receipt)"}
    )
    answered_by = fields.String(
        allow_none=True,
        metadata={"description": "voice: human, machine_end_beep… (answering-machine detection)"},
    )
    duration = fields.String(allow_none=True, metadata={"description": "voice: seconds"})
    left_message = fields.Boolean(
        allow_none=True, metadata={"description": "voice: the short message went to a machine"}
    )
    pressed = fields.String(
        allow_none=True, metadata={"description": "voice: the latest key pressed (1, 2, …)"}
    )
    pressed_at = fields.Float(allow_none=True)
    updated_at = fields.Float(allow_none=True)


class DeliveryPage(Schema):
    items = fields.List(fields.Nested(DeliveryOut))
    page = fields.Integer(allow_none=True, metadata={"description": "null when read by cursor"})
    per_page = fields.Integer()
    total = fields.Integer(metadata={"description": "records matching the filters"})
    next_cursor = fields.String(
        allow_none=True, metadata={"description": "the next page's cursor; null: last page"}
    )


class PendingEntry(AnnouncementOut):
    class Meta:
        exclude = ("deliveries",)  # nothing is delivered before approval


class PendingPage(Schema):
    items = fields.List(fields.Nested(PendingEntry), metadata={"description": "newest first"})
    page = fields.Integer()
    per_page = fields.Integer()
    total = fields.Integer(metadata={"description": "every announcement waiting for approval"})


class TimelineEntry(AnnouncementOut):
    class Meta:
        exclude = ("deliveries", "links")


class IncidentSummary(Schema):
    id = fields.String()
    title = fields.String()
    status = fields.String()
    severity = fields.String()
    opened_at = fields.Float()
    updated_at = fields.Float()
    resolved_at = fields.Float(allow_none=True)
    withdrawn_at = fields.Float(
        allow_none=True, metadata={"description": "set when every announcement was withdrawn"}
    )
    exercise = fields.Boolean(
        dump_default=False, metadata={"description": "a drill's incident (never public)"}
    )
    drill_id = fields.String(allow_none=True, dump_default=None)


class ReplyOut(Schema):
    at = fields.Float()
    from_ = fields.String(
        attribute="from", data_key="from", metadata={"description": "the phone number, masked"}
    )
    subscriber_id = fields.String()
    announcement_id = fields.String(metadata={"description": "the message it answers"})
    body = fields.String()
    provider_id = fields.String(allow_none=True)


class ToCallOut(Schema):
    subscriber_id = fields.String()
    external_id = fields.String(allow_none=True)
    phone = fields.String(
        allow_none=True, metadata={"description": "whole with the subscribers permission"}
    )
    email = fields.String(allow_none=True)
    locale = fields.String(allow_none=True)
    state = fields.String(metadata={"description": "help or unreachable"})
    answered_by = fields.String(allow_none=True, metadata={"description": "channel of answer"})
    at = fields.Float(allow_none=True)
    tried = fields.List(fields.Dict(), metadata={"description": "channel and delivery state"})


class ConfirmationOut(Schema):
    announcement_id = fields.String()
    counts = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        metadata={"description": "people: asked, waiting, confirmed, help, unreachable, escalated"},
    )
    finished = fields.String(
        allow_none=True, metadata={"description": "why escalation stopped: done, resolved…"}
    )
    help = fields.List(fields.Nested(ToCallOut), metadata={"description": "call them back"})
    unreachable = fields.List(fields.Nested(ToCallOut), metadata={"description": "call them"})


class IncidentOut(IncidentSummary):
    timeline = fields.List(fields.Nested(TimelineEntry))
    confirmations = fields.List(
        fields.Nested(ConfirmationOut),
        metadata={"description": "announcements that asked their people to confirm"},
    )
    monitoring = fields.List(
        fields.Dict(), metadata={"description": "events that opened, updated or resolved it"}
    )
    replies = fields.List(
        fields.Nested(ReplyOut),
        metadata={"description": "customers' SMS replies, oldest first (the latest 1,000)"},
    )
    helpdesks = fields.Dict(
        metadata={
            "description": "per configured helpdesk: its saved reply ids per locale and the "
            "last sync's outcome"
        }
    )


class IncidentPage(Schema):
    items = fields.List(fields.Nested(IncidentSummary))
    page = fields.Integer()
    per_page = fields.Integer()
    total = fields.Integer()


class SubscriberOut(Schema):
    id = fields.String()
    external_id = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    locale = fields.String()
    audiences = fields.List(fields.String())
    channels = fields.List(fields.String(), allow_none=True)
    opt_outs = fields.List(fields.String())
    # Chosen on /subscribe: only announcements touching these reach them (null: all).
    components = fields.List(fields.String(), allow_none=True)
    created_at = fields.Float()
    updated_at = fields.Float()
    whatsapp_opt_in_at = fields.Float(
        allow_none=True,
        metadata={"description": "when they agreed to WhatsApp messages (null: never)"},
    )
    whatsapp_opt_in_source = fields.String(
        allow_none=True, metadata={"description": "how they agreed (form, call centre…)"}
    )


class SubscriberPage(Schema):
    items = fields.List(fields.Nested(SubscriberOut))
    page = fields.Integer()
    per_page = fields.Integer()
    total = fields.Integer()


class RejectedRow(Schema):
    index = fields.Integer(metadata={"description": "position in the request list (0-based)"})
    external_id = fields.String(allow_none=True)
    errors = fields.Dict()


class ImportReport(Schema):
    created = fields.Integer()
    updated = fields.Integer()
    rejected = fields.List(fields.Nested(RejectedRow))


class OptOutIn(Schema):
    channels = fields.List(
        fields.String(validate=validate.OneOf(list(PERSONAL))), load_default=None
    )


class HookEventPage(Schema):
    items = fields.List(fields.Dict())
    page = fields.Integer()
    per_page = fields.Integer()
    total = fields.Integer()
