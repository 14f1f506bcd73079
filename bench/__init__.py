"""End-to-end benchmarks against fake providers on 127.0.0.1 (``python -m bench run ...``).

Nothing here runs in CI: the runner starts Redis, gunicorn, workers and fake SendGrid,
Twilio and Mastodon servers, drives a scenario, and checks the fakes' ledgers.
"""
