"""Crisis broadcaster: one announcement in, every channel out."""

from __future__ import annotations


def create_app(config=None):  # type: ignore[no-untyped-def]
    """Build the Flask app (see ``broadcaster.app.create_app``)."""
    from broadcaster.app import create_app as factory

    return factory(config)


__all__ = ["create_app"]
