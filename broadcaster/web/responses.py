"""The app's response class: a page whose text cannot be encoded is still sent.

Nothing published is ever deleted, so a stored text that UTF-8 cannot carry (a lone
surrogate that slipped past the text policy through a bug not yet found) would fail every
page that shows it, forever. Such a character is sent as the text ``\\ud800`` instead;
lists render item by item as well (``rendering/isolation.py``), so where it can, a page
leaves the broken item out entirely.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Response

log = logging.getLogger(__name__)


class EncodableResponse(Response):
    """A Flask response that never fails to encode its text."""

    def set_data(self, value: Any) -> None:
        if isinstance(value, str):
            try:
                value = value.encode()
            except UnicodeEncodeError:
                log.error("a page held text UTF-8 cannot carry; sent escaped")
                value = value.encode("utf-8", "backslashreplace")
        super().set_data(value)
