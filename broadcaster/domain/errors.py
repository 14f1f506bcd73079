"""The domain's own errors. The web layer maps each to one HTTP status, in one place."""

from __future__ import annotations


class DomainError(Exception):
    """Something the caller asked for cannot be done; the message says why."""


class NotFound(DomainError):
    """No such announcement, incident or person (HTTP 404)."""


class Forbidden(DomainError):
    """This principal may not do this (HTTP 403)."""


class Conflict(DomainError):
    """The request does not fit the current state (HTTP 409)."""


class Invalid(DomainError):
    """The input breaks a rule of the plan or the text policy (HTTP 422).

    ``errors`` maps each field to its messages, as the API's validation errors do.
    """

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{field}: {msgs[0]}" for field, msgs in errors.items()))
