"""Microsoft Teams: an announcement or the agent brief as an Adaptive Card, in the message
envelope a Teams Workflows ("Post to a channel when a webhook request is received") or
incoming-webhook URL takes: ``{"type": "message", "attachments": [{…card…}]}``.

Text is given as plain text blocks that wrap; the status link is a button. The card uses
Adaptive Cards 1.4, which Teams renders on desktop, web and mobile.
"""

from __future__ import annotations

from typing import Any

CARD_TYPE = "application/vnd.microsoft.card.adaptive"
SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
VERSION = "1.4"


def _text(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def message(blocks: list[dict[str, Any]], link: str, button: str = "Status page") -> dict[str, Any]:
    """The Teams message carrying one Adaptive Card of ``blocks`` and a button to ``link``."""
    card = {
        "$schema": SCHEMA,
        "type": "AdaptiveCard",
        "version": VERSION,
        "body": blocks,
        "actions": [{"type": "Action.OpenUrl", "title": button, "url": link}],
    }
    return {
        "type": "message",
        "attachments": [{"contentType": CARD_TYPE, "contentUrl": None, "content": card}],
    }


def brief_card(text: str, link: str) -> dict[str, Any]:
    """The agent brief: laid out already, its first line the heading, one item per line."""
    heading, _, rest = text.partition("\n")
    blocks = [_text(heading, weight="Bolder", size="Medium")]
    blocks += [_text(line) for line in rest.split("\n") if line.strip()]
    return message(blocks, link)


def announcement_card(
    event: dict[str, Any], text: str, link: str, severity_label: str, button: str = "Status page"
) -> dict[str, Any]:
    """An announcement (or one waiting for approval): severity and title as the heading,
    the body, the reply to paste."""
    title = str(event.get("title") or "")
    if not title:  # no facts to lay out: the rendered text says it all
        return message([_text(text)], link, button)
    heading = f"{severity_label} {title}".strip()
    attention = str(event.get("severity")) in ("major", "critical")
    blocks = [
        _text(heading, weight="Bolder", size="Medium", color="Attention" if attention else None),
        _text(str(event.get("body") or "")),
    ]
    if event.get("reply"):
        blocks.append(
            {
                "type": "Container",
                "style": "emphasis",
                "items": [
                    _text("Reply to customers", weight="Bolder"),
                    _text(str(event["reply"])),
                ],
            }
        )
    for block in blocks:  # no "color": None for Teams to choke on
        if block.get("color") is None:
            block.pop("color", None)
    return message(blocks, link, button)
