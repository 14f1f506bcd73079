"""``/api/v1/audiences``: the plan's audiences, their routes and subscriber counts."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from broadcaster.services import services
from broadcaster.web.api import schemas
from broadcaster.web.auth import require, requires

blp = Blueprint("audiences", __name__, url_prefix="/api/v1", description="Audiences")


@blp.route("/audiences")
class Audiences(MethodView):
    @requires("read")
    @blp.response(200, schemas.AudienceList)
    def get(self) -> dict[str, Any]:
        """Audiences from the crisis plan, each with its routes and number of subscribers."""
        require("read")
        svc = services()
        return {
            "items": [
                {**asdict(audience), "subscribers": svc.subscribers.count(name)}
                for name, audience in svc.plan.audiences.items()
            ]
        }
