"""People who sign in to the admin pages: name, email, role and an argon2 password hash.

Each account also keeps who made it (and who made them, and so on), so four eyes can tell
an approver the author made for themselves from a second person.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass

import redis
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email

from broadcaster.domain import audit
from broadcaster.domain.principals import Principal

USER_ROLES = ("helpdesk", "approver", "admin")
USERS_KEY = "bc:users"
MIN_PASSWORD = 12
# A chain of creators longer than this is cut: only the nearest ones matter in practice,
# and the stored record stays small.
MAX_CREATORS = 20

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verifying against this keeps an unknown email as slow as a wrong password, so sign-in
    timing does not tell who has an account. Made on first use: a hash takes a tenth of a
    second, which every command would otherwise pay at start-up."""
    return _hasher.hash("not a real password, only for equal timing")


class UserError(ValueError):
    """The user cannot be created as asked (bad email, role or password, or a duplicate)."""


@dataclass(frozen=True)
class User:
    email: str
    name: str
    role: str
    created_at: float
    # Who made the account, nearest first ("cli:<login>" or an admin's email); empty for
    # accounts made before this was recorded.
    creators: tuple[str, ...] = ()

    @property
    def principal(self) -> Principal:
        """The user acting through a session: the email is the person four eyes compare."""
        return self.principal_as(self.email, self.role)

    def principal_as(self, name: str, role: str) -> Principal:
        """The user acting under ``name`` (a token of theirs) with ``role``."""
        return Principal(
            name=name, role=role, person=self.email, since=self.created_at, creators=self.creators
        )


def _key(email: str) -> str:
    return f"bc:user:{email}"


def normalise_email(value: str) -> str:
    """The account's email in its one stored form (lower-case), or UserError."""
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise UserError(f"email: {exc}") from None


def create_user(
    r: redis.Redis,
    email: str,
    name: str,
    role: str,
    password: str,
    created_by: str = "cli",
    ip: str | None = None,
) -> User:
    """Store a new user; the password is kept only as an argon2 hash. The creation is audited."""
    email = normalise_email(email)
    if role not in USER_ROLES:
        raise UserError(f"role: must be one of {', '.join(USER_ROLES)}, not {role!r}")
    if len(password) < MIN_PASSWORD:
        raise UserError(f"password: at least {MIN_PASSWORD} characters")
    name = name.strip() or email.split("@")[0]
    creators = creators_from(r, created_by)
    now = time.time()
    created = r.hsetnx(_key(email), "email", email)
    if not created:
        raise UserError(f"email: a user {email} already exists")
    with r.pipeline(transaction=True) as pipe:
        pipe.hset(
            _key(email),
            mapping={
                "name": name,
                "role": role,
                "hash": _hasher.hash(password),
                "created_at": now,
                "creators": json.dumps(creators),
            },
        )
        pipe.sadd(USERS_KEY, email)
        audit.record(pipe, created_by, "user.created", ip=ip, email=email, role=role)
        pipe.execute()
    return User(email=email, name=name, role=role, created_at=now, creators=creators)


def creators_from(r: redis.Redis, created_by: str) -> tuple[str, ...]:
    """Who made what ``created_by`` makes now: them, then whoever made them, nearest first."""
    maker = get_user(r, created_by) if "@" in created_by else None
    return ((created_by,) + (maker.creators if maker else ()))[:MAX_CREATORS]


def get_user(r: redis.Redis, email: str) -> User | None:
    """The user with this email, or None."""
    data = r.hgetall(_key(email.strip().lower()))
    if b"role" not in data:
        return None
    return User(
        email=data[b"email"].decode(),
        name=data[b"name"].decode(),
        role=data[b"role"].decode(),
        created_at=float(data[b"created_at"]),
        creators=tuple(json.loads(data.get(b"creators", b"[]"))),
    )


def all_users(r: redis.Redis) -> list[User]:
    """Every user, sorted by email."""
    users = (get_user(r, e.decode()) for e in sorted(r.smembers(USERS_KEY)))
    return [u for u in users if u]


def authenticate(r: redis.Redis, email: str, password: str) -> User | None:
    """The user if the password matches, else None (same cost whether or not the user exists)."""
    key = _key(email.strip().lower())
    stored = r.hget(key, "hash")
    try:
        _hasher.verify(stored.decode() if stored else _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return None
    if stored is None:
        return None
    if _hasher.check_needs_rehash(stored.decode()):
        r.hset(key, "hash", _hasher.hash(password))  # parameters got stronger since
    return get_user(r, email)
