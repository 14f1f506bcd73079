"""Lists in the API: query parameters checked strictly, and the next page as a ``Link``.

A filter the endpoint does not know is a 400 naming it, never silently ignored: a client
asking ``?state=failed`` of an endpoint that cannot filter must not get everything back
as if it were the answer. The next page is an absolute URL in a ``Link: <…>; rel="next"``
header (RFC 8288), so clients follow it without building URLs.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from flask import request, url_for
from flask_smorest import abort
from marshmallow import EXCLUDE, Schema, ValidationError, fields, pre_load, validate


class QueryArgs(Schema):
    """Query parameters: the documented ones, or a 400 naming the rest."""

    class Meta:
        unknown = EXCLUDE  # never reached: unknown names are refused in ``_known_only``

    @pre_load
    def _known_only(self, data: Any, **_: Any) -> Any:
        unknown = sorted(set(data) - {f.data_key or name for name, f in self.fields.items()})
        if unknown:
            takes = ", ".join(sorted(f.data_key or n for n, f in self.fields.items()))
            abort(
                400,
                message=f"unknown query parameter {unknown[0]!r}: this endpoint takes {takes}",
            )
        return data


class Cursor(fields.String):
    """An opaque position in a list: what ``next_cursor`` gave, base64url-encoded."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise ValidationError("not a cursor this API gave (use next_cursor as is)") from exc
        if not decoded or len(decoded) > 600:
            raise ValidationError("not a cursor this API gave (use next_cursor as is)")
        return decoded


def encode_cursor(position: str) -> str:
    return base64.urlsafe_b64encode(position.encode()).decode().rstrip("=")


class PageQuery(QueryArgs):
    # Capped so the offset stays a 64-bit integer: Redis refuses anything larger (a 500).
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    per_page = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


def next_link(**changes: Any) -> dict[str, str]:
    """The ``Link`` header for this same request with ``changes`` to its query."""
    query = {**request.args.to_dict(), **{k: str(v) for k, v in changes.items()}}
    url = url_for(request.endpoint or "", **(request.view_args or {}), **query, _external=True)
    return {"Link": f'<{url}>; rel="next"'}


def page_links(page: int, per_page: int, total: int) -> dict[str, str]:
    """A next link while pages remain (offset paging), else no header."""
    return next_link(page=page + 1) if page * per_page < total else {}
