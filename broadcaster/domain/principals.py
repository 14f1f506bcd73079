"""Who is acting: a principal is a token or a signed-in session, and the person behind it.

Roles and their permissions live here too, because tokens and users both grant them.
Four eyes compare *people*, never token names: a person may hold several tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

ROLES = ("helpdesk", "approver", "monitor", "admin")

# What each role may do; `admin` may do everything.
PERMISSIONS: dict[str, frozenset[str]] = {
    "helpdesk": frozenset({"draft", "preview", "read", "subscribers"}),
    "approver": frozenset({"draft", "preview", "read", "approve", "publish", "subscribers"}),
    "monitor": frozenset({"hooks"}),
    # Only admins manage people, read the audit log, publish without a second person and
    # withdraw a published announcement.
    "admin": frozenset(
        {"draft", "preview", "read", "approve", "publish", "subscribers", "hooks"}
        | {"users", "audit", "bypass", "withdraw"}
    ),
}


def grants_no_more(role: str, than: str) -> bool:
    """Whether ``role`` may do nothing that ``than`` may not (a token never outranks its person)."""
    return PERMISSIONS.get(role, frozenset()) <= PERMISSIONS.get(than, frozenset())


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's (or session's) name and role, and the person behind it.

    ``person`` is the user's email for user-backed tokens and sessions, else the token's
    name (such a token is its own person). ``since`` is when that person's account (or the
    token) was made; ``creators`` are who made it, nearest first. Both stay empty for
    principals the system makes itself (monitoring) and for records from before they existed.
    """

    name: str
    role: str
    person: str = ""
    since: float | None = None
    creators: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.person:
            object.__setattr__(self, "person", self.name)

    def may(self, permission: str) -> bool:
        return permission in PERMISSIONS.get(self.role, frozenset())
