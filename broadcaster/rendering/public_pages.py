"""What a publish changes on the public pages: the banner and the status documents.

The announcement service calls ``after_publish`` after its commit (wired by
``create_app``). Each refresh runs on its own (``isolation.each``): a status document that
fails must not keep the banner from changing, and neither turns a published announcement
into a 500.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import current_app, has_app_context

from broadcaster.domain.announcement import Announcement
from broadcaster.infra import microcache
from broadcaster.rendering import banners, isolation, status

if TYPE_CHECKING:
    from broadcaster.services import Services  # the composition root; types only


def after_publish(svc: Services, announcement: Announcement) -> None:
    """Refresh the banner (if this publish changes it) and mark the status documents."""
    if announcement.state != "published":
        return
    if has_app_context():  # the public pages changed: this process shows it at once
        microcache.clear(current_app)
    isolation.each(
        svc.redis,
        "after_publish",
        (banners.after_publish, status.after_publish),
        lambda refresh: refresh(svc, announcement),
        lambda refresh: f"{refresh.__module__}.after_publish after {announcement.id}",
    )
