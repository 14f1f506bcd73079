"""Schemas of what people will read: the preview, the audiences and their routes, the agent
brief (the API's documented contract, beside ``schemas.py``)."""

from __future__ import annotations

from marshmallow import Schema, fields

from broadcaster.web.api.paging import QueryArgs


class RenderingOut(Schema):
    channel = fields.String()
    audience = fields.String()
    locale = fields.String(metadata={"description": "the subscriber locale this is for"})
    language = fields.String(
        metadata={"description": "the language used (default if untranslated)"}
    )
    content = fields.Dict(metadata={"description": "subject/text/html, or text"})
    measures = fields.Dict(
        metadata={"description": "lengths against limits; SMS encoding and segments"}
    )


class PublicRenderingOut(RenderingOut):
    places = fields.List(
        fields.String(),
        metadata={
            "description": "social renderings: the accounts that post this text "
            "(mastodon, or a [social.LOCALE] account such as mastodon:nl)"
        },
    )

    class Meta:
        exclude = ("audience",)


class SurfaceOut(Schema):
    surface = fields.String(
        metadata={"description": "status, banner, social:NETWORK[:LOCALE] or webhook:TARGET"}
    )
    label = fields.String()
    public = fields.Boolean(metadata={"description": "seen by anyone (false: internal target)"})
    reaches = fields.Boolean(metadata={"description": "this announcement goes there"})
    why = fields.String()


class PreviewOut(Schema):
    renderings = fields.List(fields.Nested(RenderingOut))
    public = fields.List(fields.Nested(PublicRenderingOut))
    recipients = fields.Dict(
        metadata={"description": "per channel: recipients, skipped (opted out)"}
    )
    visibility = fields.String(
        metadata={"description": "internal (every audience internal: nothing public) or public"}
    )
    surfaces = fields.List(fields.Nested(SurfaceOut))
    warnings = fields.List(fields.String())


class RouteOut(Schema):
    need = fields.Dict(metadata={"description": "locale → label ('' = every locale)"})
    channel = fields.String(metadata={"description": "in the plan's default locale"})
    contact = fields.String()
    hours = fields.String(metadata={"description": "in the plan's default locale"})
    locales = fields.Dict(
        metadata={
            "description": "each plan locale → the route as its readers see it "
            "{need, channel, contact, hours}"
        }
    )


class AudienceOut(Schema):
    name = fields.String()
    description = fields.String(metadata={"description": "in the plan's default locale"})
    descriptions = fields.Dict(metadata={"description": "each plan locale → description"})
    channels = fields.List(fields.String())
    routes = fields.List(fields.Nested(RouteOut))
    subscribers = fields.Integer()


class AudienceList(Schema):
    items = fields.List(fields.Nested(AudienceOut))


class BriefReply(Schema):
    locale = fields.String()
    language = fields.String()
    text = fields.String()


class BriefOut(Schema):
    incident_id = fields.String()
    title = fields.String()
    status = fields.String()
    severity = fields.String()
    facts = fields.String(metadata={"description": "the latest published announcement's body"})
    updated_at = fields.String()
    next_update_at = fields.String(allow_none=True)
    status_url = fields.String()
    replies = fields.List(fields.Nested(BriefReply), metadata={"description": "ready to paste"})
    routes = fields.List(fields.Dict())
    do_not_promise = fields.List(
        fields.String(), metadata={"description": "what agents must not promise ([staff])"}
    )
    timeline = fields.List(fields.Dict())
    locale = fields.String(metadata={"description": "the language of the routes; its reply first"})
    other_open = fields.List(
        fields.String(),
        metadata={"description": "current brief only: the other open incidents, most needed first"},
    )


class BriefArgs(QueryArgs):
    locale = fields.String(
        load_default=None, metadata={"description": "the agent's language (a plan locale)"}
    )
