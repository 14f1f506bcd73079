"""What a publish changes on the public pages: the banner and the status documents.

The announcement service calls ``after_publish`` after its commit (wired by
``create_app``). Each refresh runs on its own (``isolation.each``): a status document that
fails must not keep the banner from changing, and neither turns a published announcement
into a 500.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from flask import current_app, has_app_context

from broadcaster.domain.announcement import Announcement
from broadcaster.infra import microcache
from broadcaster.rendering import banners, component_status, isolation, status

if TYPE_CHECKING:
    from broadcaster.services import Services  # the composition root; types only

PLAN_KEY = "bc:public:plan"  # digest of the plan the stored public documents were built with
# Changed whenever the stored documents change shape (2: one banner per site, "+N more",
# withdrawn updates; 3: each update's component states): the first start of a new version
# builds them again, as a new plan does.
DOCUMENT_FORMAT = "3"


def after_publish(svc: Services, announcement: Announcement) -> None:
    """Refresh the banner (if this publish changes it) and mark the status documents."""
    if announcement.state != "published":
        return
    if has_app_context():  # the public pages changed: this process shows it at once
        microcache.clear(current_app)
    isolation.each(
        svc.redis,
        "after_publish",
        (banners.after_publish, status.after_publish, component_status.after_publish),
        lambda refresh: refresh(svc, announcement),
        lambda refresh: f"{refresh.__module__}.after_publish after {announcement.id}",
    )


def plan_loaded(svc: Services) -> None:
    """Have the banner and status documents built again when the plan (or the documents'
    format) is not the one they were built with (called at start-up).

    They are stored, and a plan change may change what is public: an audience marked
    ``internal`` must leave the pages now, not at the next publish. A repeat start with
    the same plan costs one Redis command.
    """
    digest = hashlib.sha256((DOCUMENT_FORMAT + repr(svc.plan)).encode()).hexdigest()[:16]
    previous = svc.redis.set(PLAN_KEY, digest, get=True)
    if previous is not None and previous.decode() == digest:
        return
    banners.forget(svc)
    status.invalidate(svc)
    component_status.forget(svc)
