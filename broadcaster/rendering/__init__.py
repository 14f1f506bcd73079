"""Rendering: one announcement as every channel, audience and language sees it
(messages, SMS segments, i18n, banner, status, agent brief, preview)."""
