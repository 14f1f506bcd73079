"""The ``[social.LOCALE]`` tables of the crisis plan: a social account per language.

```toml
[social.nl]
mastodon = { base_url = "https://mastodon.nl", access_token_env = "MASTODON_NL_TOKEN" }
bluesky = { handle = "acme-nl.bsky.social", app_password_env = "BLUESKY_NL_PASSWORD" }
```

The default locale's accounts are the ones in the environment (``BROADCASTER_MASTODON_*``,
``BROADCASTER_BLUESKY_*``); a table here adds an account that posts the announcement in its
own language. The plan names the environment variables that hold the secrets, never the
secrets. A table without ``base_url`` (Mastodon) or ``handle`` (Bluesky) posts to the outbox,
so an account can be tried before it exists. A variable that is not set fails start-up when
the accounts are built (``settings``), like the default account's missing settings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from channels.base import ChannelConfigError

# Per network: (what says where the account is, the env var key, what that variable holds,
# every key the table may have).
_NETWORKS: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "mastodon": ("base_url", "access_token_env", "access token", ("base_url", "access_token_env")),
    "bluesky": (
        "handle",
        "app_password_env",
        "app password",
        ("handle", "app_password_env", "base_url"),
    ),
}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class SocialAccount:
    """One network's account for one language (the outbox when ``where`` is empty)."""

    locale: str
    network: str  # mastodon | bluesky
    where: str = ""  # Mastodon: the server's base URL; Bluesky: the handle
    secret_env: str = ""  # the environment variable holding the token / app password
    base_url: str = ""  # Bluesky only: the entryway (empty: bsky.social)

    @property
    def place(self) -> str:
        """Its place in the ledger and its thread: ``mastodon:nl``."""
        return f"{self.network}:{self.locale}"

    def settings(self, environ: Mapping[str, str]) -> dict[str, str | None]:
        """The channel's settings for this account, the secret read from ``environ``.

        Raises ChannelConfigError naming the variable when it is not set."""
        secret = None
        if self.where:
            secret = environ.get(self.secret_env)
            if not secret:
                key = _NETWORKS[self.network][1]
                raise ChannelConfigError(
                    f"{self.place}: environment variable {self.secret_env} is not set "
                    f"(social.{self.locale}.{self.network}.{key})"
                )
        if self.network == "mastodon":
            return {"MASTODON_BASE_URL": self.where or None, "MASTODON_ACCESS_TOKEN": secret}
        return {
            "BLUESKY_HANDLE": self.where or None,
            "BLUESKY_APP_PASSWORD": secret,
            "BLUESKY_BASE_URL": self.base_url or None,
        }


def place_locale(place: str, default_locale: str) -> str:
    """The language a social place posts in: ``mastodon:nl`` → nl; a network's default
    account (``mastodon``) posts in the default locale."""
    return place.partition(":")[2] or default_locale


def parse_social(
    check: Any, data: dict[str, Any], locales: tuple[str, ...], default_locale: str
) -> tuple[SocialAccount, ...]:
    """Validate ``[social.LOCALE]`` through the plan's checker (which collects every problem)."""
    if "social" not in data:
        return ()
    raw = check.table(data, "social")
    accounts: list[SocialAccount] = []
    for locale, table in raw.items():
        key = f"social.{locale}"
        if locale == default_locale:
            check.fail(
                key,
                f"{locale} is the default locale: its accounts are the ones in the environment "
                "(BROADCASTER_MASTODON_*, BROADCASTER_BLUESKY_*)",
            )
            continue
        if locale not in locales:
            check.fail(key, f"unknown locale (organisation.locales: {', '.join(locales)})")
            continue
        if not isinstance(table, dict):
            check.fail(key, f"must be a table, not {type(table).__name__}")
            continue
        check.known_keys(table, key, tuple(_NETWORKS))
        for network in _NETWORKS:
            if network in table:
                account = _account(check, table[network], f"{key}.{network}", locale, network)
                if account is not None:
                    accounts.append(account)
    return tuple(accounts)


def _account(check: Any, raw: Any, key: str, locale: str, network: str) -> SocialAccount | None:
    where_key, env_key, holds, known = _NETWORKS[network]
    if not isinstance(raw, dict):
        check.fail(key, f"must be a table like {{ {where_key} = …, {env_key} = … }}")
        return None
    problems_before = len(check.problems)
    check.known_keys(raw, key, known)
    where = _text(check, raw, f"{key}.{where_key}")
    secret_env = _text(check, raw, f"{key}.{env_key}")
    base_url = _text(check, raw, f"{key}.base_url") if network == "bluesky" else ""
    url = where if network == "mastodon" else base_url
    if url and not url.startswith(("https://", "http://")):
        check.fail(f"{key}.base_url", "must be an http(s) URL")
    if secret_env and not _ENV_NAME.fullmatch(secret_env):
        check.fail(
            f"{key}.{env_key}",
            f"must name an environment variable (letters, digits, _), not the {holds} itself",
        )
    if where and not secret_env:
        check.fail(
            f"{key}.{env_key}", f"missing: name the environment variable holding the {holds}"
        )
    if secret_env and not where:
        check.fail(f"{key}.{where_key}", f"missing ({env_key} is given)")
    if len(check.problems) > problems_before:
        return None  # reported above; a half-valid account is never built
    if network == "mastodon":
        where = where.rstrip("/")
    return SocialAccount(locale, network, where, secret_env, base_url.rstrip("/"))


def _text(check: Any, raw: dict[str, Any], key: str) -> str:
    """An optional non-empty string (empty when absent)."""
    value = raw.get(key.rsplit(".", 1)[-1])
    if value is None:
        return ""
    if not isinstance(value, str) or not value.strip():
        check.fail(key, "must be a non-empty string")
        return ""
    return value.strip()
