"""What the incident page and ``GET /api/v1/incidents/{id}`` show of confirmations.

Per announcement of the incident that asked to confirm: the live counts (asked, waiting,
confirmed, help, unreachable, escalated), whether escalation is over and why, and the
people a person must call — those who asked for help and those unreachable — with the
channels tried. Contacts are shown whole only to callers who may manage subscribers
(the ``subscribers`` permission); to anyone else they are masked as in the logs.
"""

from __future__ import annotations

from typing import Any

from broadcaster.domain.confirmations import Confirmations, incident_key
from broadcaster.domain.ledger import Ledger
from broadcaster.infra.logs import mask_contact
from broadcaster.services import Services
from channels import PERSONAL

PEOPLE_SHOWN = 1000  # per list and announcement: the page is for calling, not for export


def incident_confirmations(
    svc: Services, incident_id: str, show_contacts: bool
) -> list[dict[str, Any]]:
    """Every announcement of the incident that asked to confirm, oldest first."""
    ids = [m.decode() for m in svc.redis.zrange(incident_key(incident_id), 0, -1)]
    return [_one(svc, announcement_id, show_contacts) for announcement_id in ids]


def _one(svc: Services, announcement_id: str, show_contacts: bool) -> dict[str, Any]:
    book = Confirmations(svc.redis, announcement_id)
    lists: dict[str, list[str]] = {"help": [], "unreachable": []}
    for state, found in lists.items():
        for chunk in book.ids_in(state):
            found.extend(chunk[: PEOPLE_SHOWN - len(found)])
            if len(found) >= PEOPLE_SHOWN:
                break
    everyone = sorted({sid for found in lists.values() for sid in found})
    people = svc.subscribers.get_many(everyone)
    notes = book.notes(everyone)
    ledger = Ledger(svc.redis, announcement_id)
    tried: dict[str, list[dict[str, str]]] = {sid: [] for sid in everyone}
    for channel in PERSONAL:
        for sid, state in ledger.states(channel, everyone).items():
            if state:
                tried[sid].append({"channel": channel, "state": state})

    def person(sid: str, state: str) -> dict[str, Any]:
        found = people.get(sid) or {}
        note = notes.get(sid) or {}

        def contact(field: str) -> str | None:
            value = found.get(field)
            return (value if show_contacts else mask_contact(value)) if value else None

        return {
            "subscriber_id": sid,
            "external_id": found.get("external_id"),
            "phone": contact("phone"),
            "email": contact("email"),
            "locale": found.get("locale"),
            "state": state,
            "answered_by": note.get("channel"),
            "at": note.get("at"),
            "tried": tried.get(sid, []),
        }

    return {
        "announcement_id": announcement_id,
        "counts": book.counts(),
        "finished": book.finished(),
        "help": [person(sid, "help") for sid in lists["help"]],
        "unreachable": [person(sid, "unreachable") for sid in lists["unreachable"]],
    }
