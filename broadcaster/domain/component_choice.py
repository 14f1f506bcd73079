"""Which components a subscriber chose, and whether an announcement concerns them.

A self-subscriber may choose components (``payments``, ``website``…); they then hear only
of announcements that touch one of those. Nobody chose anything: they hear everything their
audience hears. An announcement that names no components (or a version of the model
without the field) touches everything: a general announcement reaches everyone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

MAX_CHOSEN = 100  # a plan's components are at most this many (domain/components.py)


def known_components(plan: Any) -> tuple[str, ...]:
    """The component ids a plan declares (``[components.ID]``); none without such a table."""
    return tuple(getattr(c, "id", c) for c in getattr(plan, "components", None) or ())


def check_choice(plan: Any, chosen: Any) -> tuple[list[str], str | None]:
    """(the chosen component ids, deduplicated in order; the first problem or None)."""
    if chosen is None:
        return [], None
    if not isinstance(chosen, list) or not all(isinstance(c, str) for c in chosen):
        return [], "must be a list of component ids"
    if len(chosen) > MAX_CHOSEN:
        return [], f"at most {MAX_CHOSEN} components"
    known = known_components(plan)
    ids = list(dict.fromkeys(chosen))
    if ids and not known:
        return [], "this service declares no components to choose from"
    unknown = [c for c in ids if c not in known]
    if unknown:
        return [], f"unknown component {unknown[0][:64]!r} (known: {', '.join(known)})"
    return ids, None


def touches(components: Mapping[str, Any] | None, chosen: Iterable[str] | None) -> bool:
    """Whether an announcement setting ``components`` concerns someone who chose ``chosen``."""
    wanted = set(chosen or ())
    if not wanted or not components:
        return True
    return not wanted.isdisjoint(components)


def announcement_components(announcement: Any) -> Mapping[str, Any] | None:
    """The component states an announcement sets (None where the model has no such field)."""
    value = getattr(announcement, "components", None)
    return value if isinstance(value, Mapping) else None
