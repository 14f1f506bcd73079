"""The app factory: configuration, Redis, plan, channels and blueprints."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import redis
from flask import Flask
from flask_smorest import Api

from broadcaster import config as settings
from broadcaster.delivery import helpdesk_sync
from broadcaster.domain import audit as audit_log
from broadcaster.domain.announcement import Announcement
from broadcaster.domain.plan import Plan, load_plan
from broadcaster.infra import logs, metrics, microcache
from broadcaster.infra.redis_connect import client as redis_client
from broadcaster.rendering import public_pages
from broadcaster.rendering.messages import Renderer
from broadcaster.services import Services
from broadcaster.web import (
    admin,
    confirm,
    errors,
    feeds,
    gate,
    headers,
    limits,
    metrics_view,
    public,
    statuspage_api,
    subscribe,
    unsubscribe,
)
from broadcaster.web.api import (
    announcements,
    audiences,
    audit,
    drills,
    incidents,
    maintenances,
    reports,
    subscribers,
    subscriptions,
)
from broadcaster.web.health import bp as health_bp
from broadcaster.web.hooks import email_inbound, inbound, receipts, whatsapp_inbound
from broadcaster.web.hooks import monitoring as hooks
from broadcaster.web.hooks import voice as voice_hooks
from broadcaster.web.responses import EncodableResponse
from channels import Channel, ChannelConfigError, build_channels, build_networks
from channels.helpdesks import build_helpdesks
from channels.slack_threads import SlackThreads
from channels.webhook import WebhookChannel

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app from the environment, overridden by ``config`` (tests pass settings here).

    Fails at once — not in the middle of a crisis — when Redis is not configured, the
    crisis plan is invalid or a channel is missing a setting.
    """
    app = Flask(__name__, template_folder=str(TEMPLATES))
    app.response_class = EncodableResponse  # a page never fails on a character it holds
    app.json = limits.JSONProvider(app)  # every JSON body parsed with depth limits
    app.config.update(settings.from_environment())
    app.config.update(config or {})
    if not app.config.get("REDIS_URL"):
        raise settings.ConfigError(
            "BROADCASTER_REDIS_URL is not set (run `broadcaster up` to start an embedded Redis)"
        )
    settings.check_redis_url(app.config["REDIS_URL"], contact=True)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = settings.ensure_secret_key(Path(str(app.config["DATA_DIR"])))
    app.config.update(
        API_TITLE="Crisis broadcaster",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="openapi.json",
        # Bodies are small; the CSV import lifts this for itself (MAX_IMPORT_BYTES).
        # Flask's own default is None (no limit), so `.get(key, default)` never applied.
        MAX_CONTENT_LENGTH=app.config.get("MAX_CONTENT_LENGTH") or 2 * 1024 * 1024,
    )
    app.json.sort_keys = False
    logs.configure(app.config)  # text or JSON; contacts masked, secrets removed

    plan = load_plan(app.config.get("PLAN"))
    connection = redis_client(str(app.config["REDIS_URL"]), health_check_interval=30)

    def meters(buffered: bool) -> metrics.Meter:
        return metrics.Meter.from_config(app.config, buffered)

    personal = build_channels(app.config, meters)
    _refuse_missing(plan, personal)
    svc = app.extensions["broadcaster"] = Services(
        redis=connection,
        plan=plan,
        channels=personal,
        networks=build_networks(
            app.config,
            meters,
            # [social.LOCALE] accounts; their secrets are in the variables the plan names.
            {a.place: (a.network, a.settings(os.environ)) for a in plan.social},
        ),
        webhook=WebhookChannel(app.config),
        slack=SlackThreads(app.config),
        helpdesks=build_helpdesks(app.config),
        renderer=Renderer(app, plan),
        config=app.config,
    )

    def published(announcement: Announcement) -> None:
        public_pages.after_publish(svc, announcement)
        helpdesk_sync.after_publish(svc, announcement)  # the saved replies follow

    svc.on_published = published

    try:
        audit_log.plan_loaded(connection, plan, str(app.config.get("PLAN") or "bundled plan"))
        public_pages.plan_loaded(svc)  # what is public may have changed with the plan
    except redis.RedisError as exc:  # Redis may come up after us; serving is what matters
        logging.getLogger(__name__).warning("plan load not audited: %s", exc)

    api = Api(app)
    api.spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    api.spec.options["security"] = [{"bearer": []}]
    for blueprint in (
        announcements.blp,
        incidents.blp,
        maintenances.blp,
        subscribers.blp,
        subscriptions.blp,
        audiences.blp,
        audit.blp,
        drills.blp,
        reports.blp,
    ):
        api.register_blueprint(blueprint)
    app.register_blueprint(health_bp)
    app.register_blueprint(unsubscribe.bp)
    app.register_blueprint(confirm.bp)
    app.register_blueprint(subscribe.bp)
    app.register_blueprint(public.bp)
    app.register_blueprint(feeds.bp)
    app.register_blueprint(statuspage_api.bp)
    app.register_blueprint(hooks.bp)
    receipts.init_app(app)
    app.register_blueprint(inbound.bp)
    app.register_blueprint(voice_hooks.bp)
    app.register_blueprint(email_inbound.bp)
    app.register_blueprint(whatsapp_inbound.bp)
    metrics_view.init_app(app)
    limits.init_app(app)
    gate.init_app(app)  # authenticates /api/v1 and /hooks first, before limits parses
    admin.init_app(app)
    errors.init_app(app)
    headers.init_app(app)  # CSP, nosniff, referrer, no-store, HSTS on every answer
    # Last, around everything: repeats of the public pages never enter Flask.
    microcache.install(app)
    return app


def _refuse_missing(plan: Plan, personal: Mapping[str, Channel]) -> None:
    """A channel the plan names must be usable: say which setting is missing, at start-up.

    A channel may lack a setting only it needs (voice: the number that calls) while the plan
    never names it: a deployment without voice calls needs no voice number.
    """
    for name, channel in personal.items():
        missing = getattr(channel, "missing", "")
        named = (
            any(name in chosen for chosen in plan.channels_by_severity.values())
            or (name in plan.fallback or name in plan.fallback.values())
            # Escalation to it (an audience's confirm.escalate) must work when it is due.
            or any(a.confirm and name in a.confirm.escalate for a in plan.audiences.values())
        )
        if missing and named:
            raise ChannelConfigError(f"{missing} (the crisis plan {plan.source} names it)")
