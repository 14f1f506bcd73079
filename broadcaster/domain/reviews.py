"""The team's own review of an incident: what went well, what did not, actions with owners.

Written after the incident in the admin pages and kept append-only: an edit is a new
version, every version stays, and each is audited (``review.written``). The post-incident
report shows the latest version and how many came before it.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from broadcaster.domain import audit, text_policy
from broadcaster.domain.errors import Conflict, Invalid
from broadcaster.domain.text_policy import BLOCK, LINE

SECTION_MAX = 10_000  # characters per section: a review, not a report of its own
ACTIONS_MAX = 50
VERSIONS_MAX = 500


def _key(incident_id: str) -> str:
    return f"bc:review:{incident_id}"


def checked(data: dict[str, Any]) -> dict[str, Any]:
    """The review ``data`` describes, normalised; Invalid naming each bad field."""
    errors: dict[str, list[str]] = {}
    out: dict[str, Any] = {}
    for field in ("went_well", "went_badly"):
        value = data.get(field, "")
        if not isinstance(value, str):
            errors[field] = ["must be text"]
            continue
        problem = text_policy.problem(value, BLOCK, max_chars=SECTION_MAX) if value else None
        if problem:
            errors[field] = [problem]
        out[field] = text_policy.normalise(value).strip()
    actions = data.get("actions", [])
    if not isinstance(actions, list) or len(actions) > ACTIONS_MAX:
        errors["actions"] = [f"must be a list of at most {ACTIONS_MAX} {{action, owner}}"]
        actions = []
    out["actions"] = []
    for i, item in enumerate(actions):
        if not isinstance(item, dict) or not isinstance(item.get("action"), str):
            errors[f"actions[{i}]"] = ["must be {action, owner}"]
            continue
        action, owner = item["action"].strip(), str(item.get("owner") or "").strip()
        if not action:
            continue  # an empty row of the form
        if not owner:
            errors[f"actions[{i}].owner"] = ["every action needs an owner"]
        for name, value in (("action", action), ("owner", owner)):
            problem = text_policy.problem(value, LINE, max_chars=200) if value else None
            if problem:
                errors[f"actions[{i}].{name}"] = [problem]
        out["actions"].append({"action": action, "owner": owner})
    if errors:
        raise Invalid(errors)
    return out


def write(
    r: redis.Redis, incident_id: str, data: dict[str, Any], author: str, ip: str | None = None
) -> dict[str, Any]:
    """Add a new version of the incident's review; returns it (with its version number)."""
    review = checked(data)
    if r.llen(_key(incident_id)) >= VERSIONS_MAX:
        raise Invalid({"review": [f"at most {VERSIONS_MAX} versions"]})
    with r.pipeline(transaction=True) as pipe:
        pipe.watch(_key(incident_id))
        version = int(pipe.llen(_key(incident_id))) + 1
        entry = {"version": version, "at": time.time(), "by": author, **review}
        pipe.multi()
        pipe.rpush(_key(incident_id), json.dumps(entry))
        audit.record(
            pipe, author, "review.written", ip=ip, incident_id=incident_id, version=version
        )
        try:
            pipe.execute()
        except redis.WatchError as exc:
            raise Conflict("someone saved the review meanwhile: reload and try again") from exc
    return entry


def versions(r: redis.Redis, incident_id: str) -> list[dict[str, Any]]:
    """Every version, oldest first."""
    return [json.loads(raw) for raw in r.lrange(_key(incident_id), 0, -1)]
