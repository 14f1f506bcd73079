"""Crisis broadcaster: one announcement in, every channel out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the Flask app (see ``broadcaster.app.create_app``).

    Imported lazily so ``import broadcaster`` (the CLI, gunicorn's config) stays cheap.
    """
    from broadcaster.app import create_app as factory

    return factory(config)


__all__ = ["create_app"]
