"""Self-subscription with double opt-in: pending sign-ups, their confirmation, the limits.

Anyone may ask to be subscribed (``/subscribe``, ``POST /api/v1/subscriptions``) to the
plan's ``[subscriptions]`` audience. Nothing is sent to the address until its owner
confirms: a pending sign-up waits in Redis for ``SUBSCRIBE_CONFIRM_TTL`` seconds (24 h) and
is gone after that. It is confirmed by the signed link we email, or for a phone by
replying YES (in any plan language) or by typing the code we texted on the page.

The answer to a request never says whether the address is subscribed already: the same
status and body either way. An address already subscribed gets no second subscription,
only a message (to that address alone) that it is subscribed already.

``SignupService`` is the one way in: it validates, counts the limits, stores the pending
sign-up and puts its message in the outbox list, waking the sender (``wake_sender``: an
RQ job, wired in services.py) when none is awake;
confirming goes through ``confirm`` here, whichever way the person confirms. Which
channels a confirmed sign-up gives, in what order, and the WhatsApp choice that may ride on
a phone number: domain/signup_channels.py.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import redis
from itsdangerous import BadSignature, URLSafeTimedSerializer
from marshmallow import ValidationError

from broadcaster.domain import signup_channels
from broadcaster.domain.component_choice import check_choice
from broadcaster.domain.phone_numbers import PhonePolicy
from broadcaster.domain.plan import Plan
from broadcaster.domain.subscriber_rows import normalise_email
from broadcaster.domain.subscribers import INDEX_KEY, SubscriberStore

CONTACT_FIELDS = {"email": "email", "sms": "phone"}
CODE_DIGITS = 6
CODE_ATTEMPTS = 5  # wrong codes before a pending sign-up is dropped (10^6 codes, 5 guesses)
_SALT = "subscribe-confirm"
# Sign-ups whose message is still to be sent, oldest first; the sender drains it.
OUTBOX_KEY = "bc:signup:outbox"
# Set while a sender job is queued or running: sign-ups meanwhile need not wake another.
# Its TTL bounds how long messages could wait if a sender died without clearing it.
SENDER_AWAKE_KEY = "bc:signup:sender"
SENDER_AWAKE_TTL = 60


class SelfSubscriptionOff(Exception):
    """The plan has no ``[subscriptions]`` table: nobody can subscribe themselves."""


class TooManySignups(Exception):
    """A limit per address or per caller was reached; ``retry_after`` in seconds."""

    def __init__(self, what: str, retry_after: int) -> None:
        super().__init__(f"too many sign-ups from this {what}; try again later")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Signup:
    """A pending sign-up, or (``kind == "already"``) the note to someone subscribed already."""

    id: str
    kind: str  # "confirm" | "already"
    channel: str  # "email" | "sms"
    contact: str  # normalised address or E.164 number
    locale: str
    components: tuple[str, ...] = ()
    code: str = ""
    subscriber_id: str = ""  # "already": who is subscribed (for their unsubscribe link)
    first: bool = False  # "contact me here first": this channel heads their channel order
    whatsapp: bool = False  # with a phone: they agree to WhatsApp once the number is confirmed
    whatsapp_first: bool = False  # … and want it before SMS

    def to_redis(self) -> dict[str, str]:
        return {
            "id": self.id,
            "kind": self.kind,
            "channel": self.channel,
            "contact": self.contact,
            "locale": self.locale,
            "components": ",".join(self.components),
            "code": self.code,
            "subscriber_id": self.subscriber_id,
            "first": "1" if self.first else "",
            "whatsapp": "1" if self.whatsapp else "",
            "whatsapp_first": "1" if self.whatsapp_first else "",
        }

    @classmethod
    def from_redis(cls, raw: dict[bytes, bytes]) -> Signup:
        data = {k.decode(): v.decode() for k, v in raw.items()}
        return cls(
            id=data["id"],
            kind=data["kind"],
            channel=data["channel"],
            contact=data["contact"],
            locale=data["locale"],
            components=tuple(c for c in data.get("components", "").split(",") if c),
            code=data.get("code", ""),
            subscriber_id=data.get("subscriber_id", ""),
            first=data.get("first") == "1",
            whatsapp=data.get("whatsapp") == "1",
            whatsapp_first=data.get("whatsapp_first") == "1",
        )


def _key(signup_id: str) -> str:
    return f"bc:signup:{signup_id}"


def _contact_key(channel: str, contact: str) -> str:
    return f"bc:signup:by:{channel}:{contact}"


def link_token(secret: str, signup_id: str) -> str:
    """The signed token of an email confirmation link."""
    return URLSafeTimedSerializer(secret, salt=_SALT).dumps(signup_id)


def read_link_token(secret: str, token: str, max_age: int) -> str | None:
    """The sign-up a confirmation token names, or None if forged or older than ``max_age``."""
    try:
        value = URLSafeTimedSerializer(secret, salt=_SALT).loads(token, max_age=max_age)
    except BadSignature:
        return None
    return value if isinstance(value, str) else None


class SignupService:
    """The one way in for self-subscription: request, confirm."""

    def __init__(
        self,
        r: redis.Redis,
        plan: Plan,
        config: dict[str, Any],
        wake_sender: Callable[[], None],
        senders: Iterable[str] = (),
    ) -> None:
        self.r = r
        self.plan = plan
        self.ttl = max(1, int(config.get("SUBSCRIBE_CONFIRM_TTL", 24 * 3600)))
        self.per_address = int(config.get("SUBSCRIBE_LIMIT_PER_ADDRESS", 3))
        self.per_caller = int(config.get("SUBSCRIBE_LIMIT_PER_IP", 30))
        self.window = max(1, int(config.get("SUBSCRIBE_LIMIT_WINDOW", 3600)))
        self.wake_sender = wake_sender
        self.phones = PhonePolicy(plan.default_region, plan.sms_countries, frozenset(senders))

    @property
    def subscribers(self) -> SubscriberStore:
        return SubscriberStore(self.r)

    def _settings(self) -> Any:
        if self.plan.subscriptions is None:
            raise SelfSubscriptionOff("self-subscription is not offered (no [subscriptions])")
        return self.plan.subscriptions

    def validate(self, body: Any) -> dict[str, Any]:
        """The request as (channel, contact, locale, components); ValidationError naming fields."""
        settings = self._settings()
        if not isinstance(body, dict):
            raise ValidationError({"_schema": ["send a JSON object"]})
        errors: dict[str, list[str]] = {}
        allowed = ("email", "phone", "locale", "components", "first", *signup_channels.FIELDS)
        unknown = [k for k in body if k not in allowed]
        if unknown:
            errors[str(unknown[0])[:64]] = [f"unknown field (known: {', '.join(allowed)})"]
        given = [f for f in ("email", "phone") if body.get(f) not in (None, "")]
        if len(given) != 1:
            errors["_schema"] = ["give exactly one contact: email or phone"]
        out: dict[str, Any] = {}
        for field in given[:1]:
            channel = "email" if field == "email" else "sms"
            value = body[field]
            if channel not in settings.channels:
                errors[field] = [f"subscribing by {field} is not offered here"]
            elif not isinstance(value, str) or len(value) > 320:
                errors[field] = ["must be text of at most 320 characters"]
            else:
                try:
                    check = normalise_email if channel == "email" else self.phones.check
                    out.update(channel=channel, contact=check(value.strip()))
                except ValidationError as exc:
                    messages = exc.messages
                    errors[field] = messages if isinstance(messages, list) else [str(exc)]
        locale = body.get("locale") or self.plan.default_locale
        if not isinstance(locale, str) or locale not in self.plan.locales:
            errors["locale"] = [f"must be one of: {', '.join(self.plan.locales)}"]
        out["locale"] = locale
        components, problem = check_choice(self.plan, body.get("components"))
        if problem:
            errors["components"] = [problem]
        out["components"] = components
        first = body.get("first", False)
        if not isinstance(first, bool):
            errors["first"] = ["must be true or false"]
        out["first"] = first is True
        contact = {"email": "email", "phone": "sms"}[given[0]] if len(given) == 1 else None
        choice, problems = signup_channels.check_whatsapp(body, settings.whatsapp, contact)
        out.update(choice)
        errors.update({k: v for k, v in problems.items() if k not in errors})
        if errors:
            raise ValidationError(errors)
        return out

    def request(self, body: Any, caller: str) -> None:
        """Ask to subscribe: validate, count the limits, store and send the message.

        The outcome is the same whether the address was subscribed or not; only the
        message that goes to the address differs. Two round trips in the common case: a
        burst of sign-ups must not keep the API busy.
        """
        wanted = self.validate(body)
        channel, contact = wanted["channel"], wanted["contact"]
        # Case-blind: Mia@ and mia@ reach one mailbox almost everywhere.
        limits = [
            (f"ip:{caller}", self.per_caller, "address (IP)"),
            (f"{channel}:{contact.casefold()}", self.per_address, "contact"),
        ]
        pipe = self.r.pipeline(transaction=False)
        self._count_in(pipe, limits)
        pipe.hget(INDEX_KEY, f"{CONTACT_FIELDS[channel]}:{contact}")
        *counts, existing = pipe.execute()
        self._check_counts(limits, counts)
        person = self.subscribers.get(existing.decode()) if existing else None
        audience = self._settings().audience
        signup_id = secrets.token_urlsafe(16)
        if (
            person
            and audience in person["audiences"]
            and channel not in person["opt_outs"]
            and list(wanted["components"]) == list(person.get("components") or [])
            and signup_channels.unchanged(person, wanted)
        ):
            # Subscribed already, to the same: tell only them, subscribe nobody again.
            signup = Signup(
                signup_id, "already", channel, contact, wanted["locale"], subscriber_id=person["id"]
            )
        else:
            code = "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))
            signup = Signup(
                signup_id,
                "confirm",
                channel,
                contact,
                wanted["locale"],
                tuple(wanted["components"]),
                code=code if channel == "sms" else "",
                first=wanted["first"],
                whatsapp=wanted["whatsapp"],
                whatsapp_first=wanted["whatsapp_first"],
            )
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(_key(signup_id), mapping=signup.to_redis())
        pipe.expire(_key(signup_id), self.ttl)
        if signup.kind == "confirm":
            # The latest pending sign-up of a number is the one YES or a code confirms.
            pipe.set(_contact_key(channel, contact), signup_id, ex=self.ttl)
        # Its message waits in the outbox; the first sign-up of a burst wakes the sender,
        # which sends what gathered meanwhile together (one job, not one per sign-up).
        pipe.rpush(OUTBOX_KEY, signup_id)
        pipe.set(SENDER_AWAKE_KEY, 1, nx=True, ex=SENDER_AWAKE_TTL)
        *_, woke = pipe.execute()
        if woke:
            self.wake_sender()

    def count_caller(self, caller: str) -> None:
        """Count one attempt to confirm by code from ``caller``; TooManySignups past the limit."""
        limits = [(f"confirm-ip:{caller}", self.per_caller, "address (IP)")]
        pipe = self.r.pipeline(transaction=False)
        self._count_in(pipe, limits)
        self._check_counts(limits, pipe.execute())

    def _count_in(self, pipe: Any, limits: list[tuple[str, int, str]]) -> None:
        for what, _, _ in limits:
            key = f"bc:signup:limit:{what}"
            # The window starts with the first sign-up (SET NX EX: EXPIRE NX needs Redis 7).
            pipe.set(key, 0, nx=True, ex=self.window)
            pipe.incr(key)

    def _check_counts(self, limits: list[tuple[str, int, str]], replies: list[Any]) -> None:
        for n, (what, limit, name) in enumerate(limits):
            if limit > 0 and int(replies[2 * n + 1]) > limit:
                raise TooManySignups(name, max(1, int(self.r.ttl(f"bc:signup:limit:{what}"))))

    def get(self, signup_id: str) -> Signup | None:
        """A stored sign-up (or "already" note) while it lives."""
        raw = self.r.hgetall(_key(signup_id))
        return Signup.from_redis(raw) if raw else None

    def pending_for(self, channel: str, contact: str) -> Signup | None:
        """The latest pending sign-up of a contact, while it lives."""
        found = self.r.get(_contact_key(channel, contact))
        return self.get(found.decode()) if found else None

    def confirm_link(self, secret: str, token: str) -> str | None:
        """Confirm by the emailed link's token; the subscriber id, or None (forged/expired)."""
        signup_id = read_link_token(secret, token, self.ttl)
        return self.confirm(signup_id) if signup_id else None

    def confirm_code(self, phone: str, code: str) -> str | None:
        """Confirm a phone by the texted code; the subscriber id, or None.

        A wrong code counts; after ``CODE_ATTEMPTS`` the sign-up is dropped, so guessing
        the code means starting over (and meeting the per-address limit).
        """
        try:
            phone = self.phones.check(phone.strip())
        except ValidationError:
            return None
        signup = self.pending_for("sms", phone)
        if signup is None or not signup.code:
            return None
        # Bytes: compare_digest refuses str that is not ASCII, and a code may be anything.
        if not hmac.compare_digest(signup.code.encode(), code.strip().encode()):
            if self.r.hincrby(_key(signup.id), "wrong", 1) >= CODE_ATTEMPTS:
                self.r.delete(_key(signup.id), _contact_key("sms", phone))
            return None
        return self.confirm(signup.id)

    def confirm_reply(self, phone: str) -> str | None:
        """Confirm the pending sign-up of a number that replied YES; None if it has none."""
        signup = self.pending_for("sms", phone)
        return self.confirm(signup.id) if signup else None

    def confirm(self, signup_id: str) -> str | None:
        """Turn a pending sign-up into a subscription, exactly once; the subscriber id.

        Taking the sign-up (read and delete in one transaction) is what makes a second
        click, a YES after the link, or two workers racing, confirm nothing twice.
        """
        pipe = self.r.pipeline(transaction=True)
        pipe.hgetall(_key(signup_id))
        pipe.delete(_key(signup_id))
        raw, deleted = pipe.execute()
        if not raw or not deleted:
            return None
        signup = Signup.from_redis(raw)
        if signup.kind != "confirm":
            return None
        contact_key = _contact_key(signup.channel, signup.contact)
        if self.r.get(contact_key) == signup.id.encode():
            self.r.delete(contact_key)
        return self._subscribe(signup)

    def _subscribe(self, signup: Signup) -> str:
        settings = self._settings()
        store = self.subscribers
        field = CONTACT_FIELDS[signup.channel]
        existing = store.find_by_contact(field, signup.contact)
        person = (store.get(existing) if existing else None) or {}
        audiences = sorted({*person.get("audiences", []), settings.audience})
        preference = person.get("channels")
        row = {
            field: signup.contact,
            "locale": signup.locale,
            "audiences": audiences,
            # Someone imported with a preference adds this channel to it — at the head of
            # their order if they asked for it first, else after their own — new people
            # confirmed this one channel (and WhatsApp beside SMS, if they chose it).
            "channels": signup_channels.ordered(
                preference, signup.channel, signup.first, signup.whatsapp, signup.whatsapp_first
            ),
            "components": list(signup.components),
        }
        if signup.whatsapp:
            # Their consent, asked for with the number and proven by confirming the number:
            # recorded with the subscription in one write, never before confirmation.
            row["whatsapp_opt_in"] = (time.time(), signup_channels.SOURCE)
        if person.get("external_id"):
            row["external_id"] = person["external_id"]
        subscriber_id, _ = store.upsert(row)
        confirmed = [signup.channel, *(["whatsapp"] if signup.whatsapp else [])]
        back = [c for c in confirmed if c in (person.get("opt_outs") or [])]
        if back:
            # They unsubscribed once and have now confirmed again: that is an opt-in.
            store.set_opt_outs(subscriber_id, back, opted_out=False, at=time.time())
        return subscriber_id
