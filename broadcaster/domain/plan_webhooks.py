"""The ``[[webhooks]]`` part of the crisis plan: targets, their secrets and their URLs.

Each target is checked like the rest of the plan (``check`` is plan.py's checker, which
collects every problem); a URL that resolves to a private address is refused at start-up
unless the target says ``allow_private = true``, and again at send time.
"""

from __future__ import annotations

import os
from typing import Any

from channels.base import PermanentDeliveryError, TransientDeliveryError
from channels.egress import Resolver, check_url
from channels.webhook import WebhookTarget


def parse_webhooks(
    check: Any, data: dict[str, Any], audiences: dict[str, Any], resolver: Resolver
) -> tuple[WebhookTarget, ...]:
    raw_targets = data.get("webhooks", [])
    if not isinstance(raw_targets, list):
        check.fail("webhooks", "must be an array of tables ([[webhooks]])")
        return ()
    targets = []
    names: set[str] = set()
    for i, raw in enumerate(raw_targets):
        key = f"webhooks[{i}]"
        if not isinstance(raw, dict):
            check.fail(key, "must be a table")
            continue
        problems_before = len(check.problems)
        check.known_keys(
            raw,
            key,
            (
                "name",
                "url",
                "secret",
                "secret_env",
                "audiences",
                "format",
                "internal",
                "allow_private",
            ),
        )
        name = check.string(raw, f"{key}.name")
        if name in names:
            check.fail(f"{key}.name", f"{name!r} is used twice")
        names.add(name)
        url = check.string(raw, f"{key}.url")
        if url and not url.startswith(("https://", "http://")):
            check.fail(f"{key}.url", "must be an http(s) URL")
        # Secrets belong in the environment; a literal one is allowed for local set-ups.
        secret = raw.get("secret")
        if raw.get("secret_env"):
            secret = os.environ.get(str(raw["secret_env"]))
            if not secret:
                check.fail(
                    f"{key}.secret_env", f"environment variable {raw['secret_env']} is not set"
                )
        elif not isinstance(secret, str) or len(secret) < 16:
            check.fail(f"{key}.secret", "missing or shorter than 16 characters (or use secret_env)")
        wanted = raw.get("audiences", [])
        if not isinstance(wanted, list) or any(a not in audiences for a in wanted):
            check.fail(f"{key}.audiences", f"must list known audiences ({', '.join(audiences)})")
            wanted = []
        fmt = raw.get("format", "json")
        if fmt not in ("json", "slack", "teams"):
            check.fail(f"{key}.format", "must be 'json', 'slack' or 'teams'")
        # A target only for internal audiences is internal unless the plan says otherwise.
        only_internal = bool(wanted) and all(audiences[a].internal for a in wanted)
        internal = check.boolean(raw, f"{key}.internal", only_internal)
        allow_private = check.boolean(raw, f"{key}.allow_private", False)
        if len(check.problems) > problems_before:
            continue  # reported above; a half-valid target is never built
        try:
            target = WebhookTarget(
                name=name,
                url=url,
                secret=str(secret),
                audiences=tuple(wanted),
                format=str(fmt),
                internal=internal,
                allow_private=allow_private,
            )
        except PermanentDeliveryError as exc:
            check.fail(key, exc.reason)
            continue
        if not allow_private:
            try:
                check_url(url, resolver)
            except PermanentDeliveryError as exc:  # BlockedAddressError, or a bad port
                check.fail(f"{key}.url", exc.reason)
                continue
            except TransientDeliveryError:
                pass  # no DNS at start-up must not stop a crisis: the send-time check remains
        targets.append(target)
    return tuple(targets)
