"""The Statuspage-compatible read API (``/api/v2``), checked against a JSON Schema written
from Statuspage's documented fields and value sets, with a scripted set of incidents."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from broadcaster.infra import microcache
from tests.helpers import publish
from tests.test_components import OUTAGE

# ISO 8601 / RFC 3339 as a pattern too: jsonschema checks "date-time" only where an extra
# package is installed.
STAMP = {
    "type": "string",
    "format": "date-time",
    "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$",
}
URL = {"type": "string", "format": "uri", "pattern": r"^https?://[^\s]+$"}
STAMP_OR_NULL = {"anyOf": [STAMP, {"type": "null"}]}
COMPONENT_STATES = [
    "operational",
    "degraded_performance",
    "partial_outage",
    "major_outage",
    "under_maintenance",
]
INCIDENT_STATES = ["investigating", "identified", "monitoring", "resolved", "postmortem"]
IMPACTS = ["none", "minor", "major", "critical"]


def closed(properties: dict, optional: tuple[str, ...] = ()) -> dict:
    """An object with exactly these fields, all required unless named optional."""
    return {
        "type": "object",
        "properties": properties,
        "required": [k for k in properties if k not in optional],
        "additionalProperties": False,
    }


PAGE = closed(
    {
        "id": {"type": "string", "minLength": 1},
        "name": {"type": "string"},
        "url": URL,
        "time_zone": {"type": "string"},
        "updated_at": STAMP,
    }
)
STATUS = closed(
    {
        "indicator": {"enum": IMPACTS},
        "description": {
            "enum": [
                "All Systems Operational",
                "Minor Service Outage",
                "Partial System Outage",
                "Major System Outage",
                "Partially Degraded Service",
                "Service Under Maintenance",
            ]
        },
    }
)
COMPONENT = closed(
    {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "status": {"enum": COMPONENT_STATES},
        "created_at": STAMP,
        "updated_at": STAMP,
        "position": {"type": "integer", "minimum": 1},
        "description": {"type": ["string", "null"]},
        "showcase": {"type": "boolean"},
        "start_date": {"anyOf": [{"type": "string", "format": "date"}, {"type": "null"}]},
        "group_id": {"type": ["string", "null"]},
        "page_id": {"type": "string"},
        "group": {"type": "boolean"},
        "only_show_if_degraded": {"type": "boolean"},
        "components": {"type": "array", "items": {"type": "string"}},
    },
    optional=("components",),
)
AFFECTED = closed(
    {
        "code": {"type": "string"},
        "name": {"type": "string"},
        "old_status": {"enum": COMPONENT_STATES},
        "new_status": {"enum": COMPONENT_STATES},
    }
)
UPDATE = closed(
    {
        "id": {"type": "string"},
        "status": {"enum": INCIDENT_STATES},
        "body": {"type": "string"},
        "incident_id": {"type": "string"},
        "created_at": STAMP,
        "updated_at": STAMP,
        "display_at": STAMP,
        "affected_components": {"anyOf": [{"type": "array", "items": AFFECTED}, {"type": "null"}]},
        "deliver_notifications": {"type": "boolean"},
        "custom_tweet": {"type": ["string", "null"]},
        "tweet_id": {"type": ["string", "null"]},
    }
)
INCIDENT = closed(
    {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "status": {"enum": INCIDENT_STATES},
        "impact": {"enum": IMPACTS},
        "shortlink": URL,
        "created_at": STAMP,
        "updated_at": STAMP,
        "monitoring_at": STAMP_OR_NULL,
        "resolved_at": STAMP_OR_NULL,
        "started_at": STAMP,
        "page_id": {"type": "string"},
        "incident_updates": {"type": "array", "items": UPDATE, "minItems": 1},
        "components": {"type": "array", "items": COMPONENT},
    }
)
MAINTENANCE_STATES = ["scheduled", "in_progress", "verifying", "completed"]
MAINTENANCE = closed(
    {
        **INCIDENT["properties"],
        "status": {"enum": MAINTENANCE_STATES},
        "impact": {"enum": ["maintenance"]},
        "incident_updates": {
            "type": "array",
            "items": {
                **UPDATE,
                "properties": {**UPDATE["properties"], "status": {"enum": MAINTENANCE_STATES}},
            },
            "minItems": 1,
        },
        "scheduled_for": STAMP,
        "scheduled_until": STAMP,
    }
)
MAINTENANCES = {"type": "array", "items": MAINTENANCE}
SCHEMAS = {
    "/api/v2/summary.json": closed(
        {
            "page": PAGE,
            "components": {"type": "array", "items": COMPONENT},
            "incidents": {"type": "array", "items": INCIDENT},
            "scheduled_maintenances": MAINTENANCES,
            "status": STATUS,
        }
    ),
    "/api/v2/status.json": closed({"page": PAGE, "status": STATUS}),
    "/api/v2/components.json": closed(
        {"page": PAGE, "components": {"type": "array", "items": COMPONENT}}
    ),
    "/api/v2/incidents.json": closed(
        {"page": PAGE, "incidents": {"type": "array", "items": INCIDENT}}
    ),
    "/api/v2/incidents/unresolved.json": closed(
        {"page": PAGE, "incidents": {"type": "array", "items": INCIDENT}}
    ),
    **{
        f"/api/v2/scheduled-maintenances{suffix}.json": closed(
            {"page": PAGE, "scheduled_maintenances": MAINTENANCES}
        )
        for suffix in ("", "/upcoming", "/active")
    },
}


def valid(client, path: str) -> dict:
    response = client.get(path)
    assert response.status_code == 200, path
    assert response.mimetype == "application/json"
    body = response.get_json()
    validator = Draft202012Validator(SCHEMAS[path.split("?")[0]], format_checker=FormatChecker())
    problems = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]
    assert not problems, (path, problems)
    return body


def script(client, tokens) -> dict[str, str]:
    """Open, resolved, withdrawn and internal incidents, as an operator would make them."""
    ids = {}
    opened = publish(client, tokens, OUTAGE)
    ids["open"] = opened["incident_id"]
    publish(
        client,
        tokens,
        OUTAGE,
        incident_id=ids["open"],
        status="monitoring",
        severity="major",
        components={"payments": "partial_outage"},
        title="Payments recovering",
    )
    past = publish(
        client, tokens, OUTAGE, components={"website": "degraded_performance"}, title="Slow site"
    )
    ids["resolved"] = past["incident_id"]
    publish(
        client,
        tokens,
        OUTAGE,
        incident_id=ids["resolved"],
        status="resolved",
        components={},
        title="Site fast again",
    )
    gone = publish(client, tokens, OUTAGE, components={}, title="Sent by mistake")
    ids["withdrawn"] = gone["incident_id"]
    withdrawn = client.post(
        f"/api/v1/announcements/{gone['id']}/withdraw",
        json={"reason": "Sent for the wrong region."},
        headers=tokens["admin"],
    )
    assert withdrawn.status_code == 200
    internal = publish(
        client,
        tokens,
        {**OUTAGE, "audiences": ["staff"], "channels": ["email"], "title": "Staff only"},
        components={"website": "major_outage"},
    )
    ids["internal"] = internal["incident_id"]
    return ids


def test_every_document_matches_statuspages_fields_and_values(client, tokens):
    # Empty first: a page with nothing to report is valid too.
    for path in SCHEMAS:
        valid(client, path)
    ids = script(client, tokens)
    for path in SCHEMAS:
        valid(client, path)

    summary = valid(client, "/api/v2/summary.json")
    assert summary["status"] == {"indicator": "major", "description": "Partial System Outage"}
    assert [i["id"] for i in summary["incidents"]] == [ids["open"]]
    states = {c["id"]: c["status"] for c in summary["components"]}
    assert states == {
        "group-customer-services": "partial_outage",
        "payments": "partial_outage",
        "portal": "degraded_performance",
        "website": "operational",  # the internal announcement changed nothing public
    }
    group = summary["components"][0]
    assert group["group"] is True and group["components"] == ["payments", "portal"]
    assert summary["components"][1]["group_id"] == group["id"]

    incident = summary["incidents"][0]
    assert incident["status"] == "monitoring" and incident["impact"] == "major"
    assert incident["monitoring_at"] == incident["incident_updates"][0]["created_at"]
    assert incident["resolved_at"] is None
    assert incident["shortlink"].endswith(f"/status#{ids['open']}")
    newest, oldest = incident["incident_updates"]
    assert oldest["affected_components"] == [
        {
            "code": "payments",
            "name": "Payments",
            "old_status": "operational",
            "new_status": "major_outage",
        },
        {
            "code": "portal",
            "name": "Customer portal",
            "old_status": "operational",
            "new_status": "degraded_performance",
        },
    ]
    assert newest["affected_components"] == [
        {
            "code": "payments",
            "name": "Payments",
            "old_status": "major_outage",
            "new_status": "partial_outage",
        }
    ]
    assert {c["id"] for c in incident["components"]} == {"payments", "portal"}

    listed = valid(client, "/api/v2/incidents.json")["incidents"]
    by_id = {i["id"]: i for i in listed}
    assert set(by_id) == {ids["open"], ids["resolved"], ids["withdrawn"]}  # never the internal
    resolved = by_id[ids["resolved"]]
    assert resolved["status"] == "resolved" and resolved["resolved_at"]
    # The resolution returned the website to operational, and says so.
    assert resolved["incident_updates"][0]["affected_components"] == [
        {
            "code": "website",
            "name": "Website",
            "old_status": "degraded_performance",
            "new_status": "operational",
        }
    ]
    withdrawn = by_id[ids["withdrawn"]]
    assert withdrawn["status"] == "resolved"
    assert withdrawn["incident_updates"][0]["body"].startswith("Withdrawn: Sent for the wrong")
    unresolved = valid(client, "/api/v2/incidents/unresolved.json")["incidents"]
    assert [i["id"] for i in unresolved] == [ids["open"]]
    for path in SCHEMAS:
        assert "Staff only" not in client.get(path).get_data(as_text=True)


def test_names_follow_lang_and_answers_are_public_and_cacheable(client, tokens):
    publish(client, tokens, OUTAGE)
    response = client.get("/api/v2/components.json?lang=nl")
    names = {c["id"]: c["name"] for c in response.get_json()["components"]}
    assert names["payments"] == "Betalingen" and names["group-klantdiensten"] == "Klantdiensten"
    assert response.headers["Cache-Control"].startswith("public")
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    again = client.get(
        "/api/v2/components.json?lang=nl", headers={"If-None-Match": response.headers["ETag"]}
    )
    assert again.status_code == 304
    # Kept by every web process's microcache, like the banner.
    assert set(SCHEMAS) <= microcache.PATHS


@pytest.mark.parametrize("path", sorted(SCHEMAS))
def test_no_token_needed_and_no_write_methods(client, path):
    assert client.get(path).status_code == 200
    assert client.post(path, json={}).status_code == 405


def test_served_from_the_microcache_between_publishes(make_app, tokens):
    app = make_app(BANNER_PROCESS_CACHE=60)
    client = app.test_client()
    first = client.get("/api/v2/summary.json").get_json()
    assert first["incidents"] == []
    # Another process publishes (this one's cache is not cleared): the answer stays cached.
    other = make_app().test_client()
    publish(other, tokens, OUTAGE)
    assert client.get("/api/v2/summary.json").get_json()["incidents"] == []
    assert other.get("/api/v2/summary.json").get_json()["incidents"]


def test_scheduled_maintenances_match_statuspages_fields_and_values(client, tokens):
    """Upcoming, in progress (its component under maintenance) and cancelled maintenances, as
    Statuspage lists them; an open incident beside them stays among the incidents."""
    from datetime import UTC, datetime, timedelta

    from tests.helpers import drain

    def at(seconds: float) -> str:
        return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()

    def plan(title: str, starts: float, ends: float) -> str:
        body = {
            "title": title,
            "body": "Servers get new parts.",
            "starts_at": at(starts),
            "ends_at": at(ends),
            "audiences": ["consumers"],
            "components": ["portal"],
        }
        response = client.post("/api/v1/maintenances", json=body, headers=tokens["admin"])
        assert response.status_code == 202, response.get_json()
        return response.get_json()

    upcoming = plan("Portal upgrade", 3600, 7200)
    running = plan("Payments move", 2, 3600)
    off = plan("Website move", 3600, 7200)
    cancel = client.post(
        f"/api/v1/maintenances/{off['id']}/cancel",
        json={"reason": "Not needed after all."},
        headers=tokens["approver"],
    )
    assert cancel.status_code == 200
    drain(client.application, timeout=8)  # the running one starts
    opened = publish(client, tokens, OUTAGE, components={})
    for path in SCHEMAS:
        valid(client, path)
    summary = valid(client, "/api/v2/summary.json")
    assert [i["id"] for i in summary["incidents"]] == [opened["incident_id"]]
    assert [m["id"] for m in summary["scheduled_maintenances"]] == [
        running["incident_id"],
        upcoming["incident_id"],
    ]
    states = {c["id"]: c["status"] for c in summary["components"]}
    assert states["portal"] == "under_maintenance"
    every = valid(client, "/api/v2/scheduled-maintenances.json")["scheduled_maintenances"]
    by_id = {m["id"]: m for m in every}
    assert by_id[off["incident_id"]]["status"] == "completed"
    assert by_id[running["incident_id"]]["status"] == "in_progress"
    assert by_id[upcoming["incident_id"]]["name"] == "Portal upgrade"
    assert (
        by_id[upcoming["incident_id"]]["scheduled_until"]
        > by_id[upcoming["incident_id"]]["scheduled_for"]
    )
    active = valid(client, "/api/v2/scheduled-maintenances/active.json")
    assert [m["id"] for m in active["scheduled_maintenances"]] == [running["incident_id"]]
    soon = valid(client, "/api/v2/scheduled-maintenances/upcoming.json")
    assert [m["id"] for m in soon["scheduled_maintenances"]] == [upcoming["incident_id"]]
    unresolved = valid(client, "/api/v2/incidents/unresolved.json")["incidents"]
    assert [i["id"] for i in unresolved] == [opened["incident_id"]]
