"""One stored item that fails to render never takes a surface down.

Nothing published is ever deleted, so an item that breaks a page would break it forever.
Surfaces (banner, status page and feeds, admin lists) render item by item through
``each``: an item that raises is skipped, logged with its id and counted in
``broadcaster_render_failures_total{surface=…}``; the rest of the page is served.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TypeVar

import redis

from broadcaster.infra import metrics

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Rendered = TypeVar("Rendered")


def each(
    r: redis.Redis | None,
    surface: str,
    items: Iterable[Item],
    render: Callable[[Item], Rendered],
    name: Callable[[Item], str],
) -> list[Rendered]:
    """``render`` of every item that renders; the others skipped, logged and counted."""
    done: list[Rendered] = []
    for item in items:
        try:
            done.append(render(item))
        except Exception:  # a bug we have not found yet costs one item, not the page
            log.exception("%s: skipped %s, which failed to render", surface, name(item))
            failed(r, surface)
    return done


def failed(r: redis.Redis | None, surface: str) -> None:
    """Count one skipped item; counting must never fail the page either."""
    try:
        metrics.count(r, "render_failures", surface)
    except redis.RedisError:
        log.warning("could not count a render failure on %s", surface)
