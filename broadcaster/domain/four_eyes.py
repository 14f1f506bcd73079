"""Four eyes: whether whoever decides on an announcement is a second person.

A pure rule on the announcement and the principal (no Redis): the service asks it before
approving or rejecting, and audits a refusal.
"""

from __future__ import annotations

from broadcaster.domain.announcement import Announcement
from broadcaster.domain.principals import Principal


def refusal(announcement: Announcement, approver: Principal, action: str) -> tuple[str, str] | None:
    """Why ``approver`` is not a second person for ``announcement`` (rule, message), or None.

    Four eyes means two people: the same person under another token is the author; so is
    an account the author made (directly or through accounts they made). And a person
    whose account is newer than the announcement may not approve it: an account made after
    the fact to get something out is the pattern, and bypass is the honest way to do that.
    Rejecting publishes nothing, so a newer account may still reject.
    """
    author = announcement.author_person
    if approver.person == author:
        return "same_person", "the author cannot approve or reject their own announcement"
    if author in approver.creators:
        return (
            "made_by_author",
            f"{approver.person} was given access by the author; a second person must decide",
        )
    newer = approver.since is not None and approver.since > announcement.created_at
    if action == "approve" and newer:
        return (
            "newer_than_announcement",
            f"{approver.person} got access after this announcement was submitted; "
            "someone who had access then must approve it",
        )
    return None
