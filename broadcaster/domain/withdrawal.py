"""What withdrawing a published announcement requires, and what it makes of it.

The announcement service does the withdrawing (one transaction with the incident and the
audit entry); this module holds the rules so that service stays about storing.
"""

from __future__ import annotations

import dataclasses
import time

from broadcaster.domain import announcement_checks as checks
from broadcaster.domain import text_policy
from broadcaster.domain.announcement import Announcement
from broadcaster.domain.errors import Conflict, Invalid
from broadcaster.domain.principals import Principal
from broadcaster.domain.text_policy import BLOCK


def checked_reason(reason: str | None) -> str:
    """The reason, normalised; Invalid when it is missing or breaks the text policy.

    The public reads it ("withdrawn: …"), so it passes the same policy as any text.
    """
    problem = text_policy.problem(reason or "", BLOCK, max_chars=checks.REASON_MAX)
    if problem:
        raise Invalid({"reason": [f"say why it is withdrawn: the public reads it ({problem})"]})
    return text_policy.normalise(reason or "")


def withdrawn(current: Announcement, principal: Principal, reason: str) -> Announcement:
    """``current`` withdrawn by ``principal``; Conflict unless it is published and standing."""
    if not current.published:
        raise Conflict(
            f"announcement is {current.state}, not published: only a published announcement "
            "can be withdrawn"
        )
    if current.withdrawn_at is not None:
        raise Conflict(f"announcement was already withdrawn by {current.withdrawn_by}")
    return dataclasses.replace(
        current, withdrawn_at=time.time(), withdrawn_by=principal.name, withdrawn_reason=reason
    )
