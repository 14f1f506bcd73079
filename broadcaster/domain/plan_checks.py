"""Checking a plan's tables: every problem collected, with its key, so one start-up shows
them all (``domain/plan.py`` and the plan's other tables use it)."""

from __future__ import annotations

from typing import Any

from broadcaster.domain import text_policy
from broadcaster.domain.text_policy import LINE
from channels import CHANNELS

# Route facts, descriptions and names are shown on public pages as one line each.
PLAN_TEXT_MAX = 200


class PlanChecker:
    """Collects every problem in a plan so one start-up shows them all."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []

    def fail(self, key: str, reason: str) -> None:
        if not key.isprintable():  # a key with a line break would split the report's lines
            key = key.encode("unicode_escape").decode("ascii")
        self.problems.append(f"{self.source}: {key}: {reason}")

    def known_keys(self, data: dict[str, Any], prefix: str, known: tuple[str, ...]) -> None:
        """Flag keys we do not know: a typo must not silently disable part of the plan."""
        for key in data:
            if key not in known:
                where = f"{prefix}.{key}" if prefix else key
                self.fail(where, f"unknown key (expected one of: {', '.join(known)})")

    def table(self, data: dict[str, Any], key: str, required: bool = True) -> dict[str, Any]:
        value = data.get(key.rsplit(".", 1)[-1])
        if value is None:
            if required:
                self.fail(key, "missing")
            return {}
        if not isinstance(value, dict):
            self.fail(key, f"must be a table, not {type(value).__name__}")
            return {}
        return value

    def string(self, data: dict[str, Any], key: str, default: str | None = None) -> str:
        value = data.get(key.rsplit(".", 1)[-1], default)
        if value is None:
            self.fail(key, "missing")
            return ""
        if not isinstance(value, str) or not value.strip():
            self.fail(key, "must be a non-empty string")
            return ""
        return self.line(value, key)

    def line(self, value: str, key: str) -> str:
        """One line of plan text for the public pages: the text policy's rules, NFC."""
        problem = text_policy.problem(value, LINE, max_chars=PLAN_TEXT_MAX) if value else None
        if problem:
            self.fail(key, problem)
        return text_policy.normalise(value)

    def boolean(self, data: dict[str, Any], key: str, default: bool = False) -> bool:
        value = data.get(key.rsplit(".", 1)[-1], default)
        if not isinstance(value, bool):
            # "yes" or 1 would read as true to a person, but TOML says true or false.
            self.fail(key, f"must be true or false, not {value!r}")
            return default
        return value

    def channel_list(self, value: Any, key: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(key, "must be a list of channel names")
            return ()
        unknown = [v for v in value if v not in CHANNELS]
        if unknown:
            self.fail(key, f"unknown channel {unknown[0]!r} (known: {', '.join(CHANNELS)})")
        return tuple(v for v in value if v in CHANNELS)
