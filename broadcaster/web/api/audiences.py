"""``/api/v1/audiences``: the plan's audiences, their routes and subscriber counts."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from broadcaster.domain.plan import Audience, Plan, Route
from broadcaster.services import services
from broadcaster.web.api import reading_schemas
from broadcaster.web.auth import require, requires

blp = Blueprint("audiences", __name__, url_prefix="/api/v1", description="Audiences")


@blp.route("/audiences")
class Audiences(MethodView):
    @requires("read")
    @blp.response(200, reading_schemas.AudienceList)
    def get(self) -> dict[str, Any]:
        """Audiences from the crisis plan, each with its routes and number of subscribers."""
        require("read")
        svc = services()
        return {
            "items": [
                {**_audience(svc.plan, audience), "subscribers": svc.subscribers.count(name)}
                for name, audience in svc.plan.audiences.items()
            ]
        }


def _audience(plan: Plan, audience: Audience) -> dict[str, Any]:
    """An audience as the API shows it: texts in the default locale, and per locale."""
    default = plan.default_locale

    def route(r: Route) -> dict[str, Any]:
        return {
            **r.texts_in(default, default),
            "need": r.need,  # the table, as before: clients match on it
            "locales": {locale: r.texts_in(locale, default) for locale in plan.locales},
        }

    return {
        "name": audience.name,
        "description": audience.description_in(default, default),
        "descriptions": {
            locale: audience.description_in(locale, default) for locale in plan.locales
        },
        "channels": list(audience.channels),
        "routes": [route(r) for r in audience.routes],
    }
