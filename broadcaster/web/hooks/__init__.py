"""Inbound webhooks: monitoring alerts, provider receipts and inbound SMS."""
