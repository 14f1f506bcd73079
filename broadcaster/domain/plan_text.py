"""Plan texts that may be written once or per locale: a route's need, channel and hours,
an audience's description.

``need = "Billing"`` is the same in every language; ``channel = { en = "Live chat", nl =
"Livechat" }`` is one text per locale. Both are kept as a table locale → text, where the
key ``""`` is the text for every locale. A table must have the default locale's text, so
every reader sees something; the preview names each locale a table leaves out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from broadcaster.domain.plan import Plan

LocalText = dict[str, str]  # locale → text; "" is the text for every locale

# The route fields that may be per-locale tables, in the order the preview names them.
ROUTE_TEXTS = ("need", "channel", "hours")


def text_in(text: Mapping[str, str], locale: str, default_locale: str) -> str:
    """The text for ``locale``: its own, else the default locale's, else the shared one."""
    return text.get(locale) or text.get(default_locale) or text.get("", "")


def parse_local_text(
    check: Any,
    value: Any,
    key: str,
    locales: tuple[str, ...],
    default_locale: str,
    *,
    required: bool,
    check_locales: bool = True,
) -> LocalText:
    """Validate text or a table of locale = text, reporting through ``check``.

    ``check_locales`` is false when the plan lists no locales: then a table's locales can
    not be checked against anything.
    """
    if value is None or (isinstance(value, str) and not value.strip() and not required):
        if required:
            check.fail(key, "missing")
        return {}
    if isinstance(value, str) and value.strip():
        return {"": check.line(value, key)}
    if (
        isinstance(value, dict)
        and value
        and all(isinstance(v, str) and v.strip() for v in value.values())
    ):
        labels = {k: check.line(v, f"{key}.{k}") for k, v in value.items()}
        if default_locale not in labels:
            check.fail(key, f"needs a label for the default locale {default_locale!r}")
        unknown = [k for k in labels if k not in locales]
        if unknown and check_locales:
            check.fail(key, f"unknown locale {unknown[0]!r} (plan has: {', '.join(locales)})")
        return labels
    check.fail(key, "must be text or a table of locale = text")
    return {}


def missing_locales(text: Mapping[str, str], locales: Iterable[str]) -> list[str]:
    """The locales a per-locale table leaves out (none for a text shared by every locale)."""
    if not text or "" in text:
        return []
    return [locale for locale in locales if locale not in text]


def missing_translations(plan: Plan, audiences: Iterable[str]) -> list[str]:
    """One warning per plan text of ``audiences`` that a locale would read in another
    language, naming the key: "audiences.consumers.routes[0].channel has no da text"."""
    out = []
    for name in audiences:
        audience = plan.audiences.get(name)
        if audience is None:
            continue
        texts = [(f"audiences.{name}.description", audience.description)]
        for i, route in enumerate(audience.routes):
            texts += [
                (f"audiences.{name}.routes[{i}].{field}", getattr(route, field))
                for field in ROUTE_TEXTS
            ]
        for key, text in texts:
            for locale in missing_locales(text, plan.locales):
                out.append(
                    f"{key} has no {locale} text: {locale} readers see the "
                    f"{plan.default_locale} one ({text_in(text, locale, plan.default_locale)!r})"
                )
    return out


def plan_warnings(plan: Plan) -> list[str]:
    """Every text of the plan some locale would read in another language: the audiences'
    (as ``missing_translations``) and the holding statements, which publish unreviewed."""
    out = missing_translations(plan, plan.audiences)
    for name, statement in plan.monitoring.statements.items():
        for locale in plan.locales:
            if locale not in statement.texts:
                out.append(
                    f"holding_statements.{name} has no {locale} text: {locale} subscribers "
                    f"get the {plan.default_locale} one"
                )
    return out
