"""The ``broadcaster`` command: ``up``, ``worker``, ``token create``, ``user create``, imports."""

from __future__ import annotations

import contextlib
import getpass
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TextIO

import click

from broadcaster import config as settings
from broadcaster.domain import audit
from broadcaster.domain.phone_numbers import sender_numbers
from broadcaster.domain.plan import PlanError, load_plan
from broadcaster.domain.plan_text import plan_warnings
from broadcaster.domain.subscriber_import import CsvHeaderError, csv_rows, import_rows
from broadcaster.domain.subscribers import SubscriberStore
from broadcaster.domain.tokens import ROLES, TokenError, create_token, lookup
from broadcaster.domain.users import USER_ROLES, UserError, create_user
from broadcaster.infra import redis_connect
from broadcaster.infra.gunicorn_config import address_in_use
from broadcaster.infra.local_redis import forget_url, publish_url, redis_url
from broadcaster.infra.redis_server import EmbeddedRedis, RedisServerError
from broadcaster.progress import RowProgress


def _operator() -> str:
    """Who ran the command, for the audit log."""
    return f"cli:{getpass.getuser()}"


def _env() -> dict[str, object]:
    try:
        return settings.from_environment()
    except settings.ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
def main() -> None:
    """Crisis broadcaster: one announcement in, every channel out."""


@main.command()
@click.option("--port", default=8000, show_default=True, help="Port of the web server.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--workers",
    "worker_count",
    type=click.IntRange(1, 64),
    default=None,
    help="RQ worker processes  [default: one per core]",
)
@click.option(
    "--redis-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Port of the embedded Redis  [default: a free one]",
)
def up(port: int, host: str, worker_count: int | None, redis_port: int | None) -> None:
    """Run everything on this machine: Redis (embedded if none is set), web server, workers."""
    env = _env()
    # Sending is I/O bound but rendering and Redis calls are not: one worker per core uses
    # the machine without workers fighting over it.
    worker_count = worker_count or cores()
    if redis_port and env["REDIS_URL"]:
        raise click.ClickException(
            "--redis-port is the embedded Redis's port, but BROADCASTER_REDIS_URL is set: "
            "drop one of them"
        )
    data_dir = Path(str(env["DATA_DIR"])).resolve()
    try:
        plan = load_plan(env["PLAN"])  # a bad plan stops us here, before anything starts
    except PlanError as exc:
        raise click.ClickException(str(exc)) from exc
    for warning in plan_warnings(plan):  # worth knowing, not worth refusing to start
        click.echo(f"plan: {warning}", err=True)
    if address_in_use(host, port):
        raise click.ClickException(
            f"port {port} on {host} is already in use (another broadcaster?); "
            f"pick another with --port"
        )
    if redis_port and address_in_use("127.0.0.1", redis_port):
        raise click.ClickException(
            f"port {redis_port} on 127.0.0.1 is already in use; pick another with --redis-port"
        )
    # Links in messages point at the address we serve on, unless told where the public
    # reaches us (a proxy, a domain).
    public_url = str(env["PUBLIC_URL"]) if os.environ.get("BROADCASTER_PUBLIC_URL") else ""
    if not public_url:
        public_url = f"http://{link_host(host)}:{port}"
        os.environ["BROADCASTER_PUBLIC_URL"] = public_url

    embedded: EmbeddedRedis | None = None
    url = env["REDIS_URL"]
    try:
        settings.check_redis_url(url, contact=True)  # a sentinel's port is no Redis
    except settings.ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    if not url:
        try:
            embedded = EmbeddedRedis(data_dir, redis_port).start()
        except RedisServerError as exc:
            raise click.ClickException(str(exc)) from exc
        url = embedded.url
        publish_url(data_dir, url)
    os.environ["BROADCASTER_REDIS_URL"] = str(url)
    os.environ["BROADCASTER_DATA_DIR"] = str(data_dir)

    children: list[subprocess.Popen[bytes]] = []
    stopping = failed = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        token_note = _first_token(str(url))
        children.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "--config",
                    "python:broadcaster.infra.gunicorn_config",
                    "--bind",
                    f"{host}:{port}",
                    "--workers",
                    "2",
                    "--threads",
                    "4",
                    # Several services on one machine would share one control socket.
                    "--no-control-socket",
                    "--graceful-timeout",
                    "10",
                    "broadcaster:create_app()",
                ],
                start_new_session=True,
            )
        )
        for _ in range(worker_count):
            children.append(
                subprocess.Popen([sys.executable, "-m", "worker"], start_new_session=True)
            )
        click.echo(
            f"\nCrisis broadcaster is up.\n"
            f"  Admin:     http://{host}:{port}/admin  "
            f"(first user: broadcaster user create --email YOU --role admin)\n"
            f"  API:       http://{host}:{port}/api/v1/  (OpenAPI: /api/openapi.json)\n"
            f"  Health:    http://{host}:{port}/readyz\n"
            f"  Links:     {public_url}  (in messages; set BROADCASTER_PUBLIC_URL to change)\n"
            f"  Redis:     {url}{f' (embedded, data in {data_dir})' if embedded else ''}\n"
            f"  Workers:   {worker_count}\n"
            f"{token_note}"
            f"  Press Ctrl-C to stop everything.\n"
        )
        while not stopping:
            if any(child.poll() is not None for child in children):
                click.echo("a child process exited; stopping everything", err=True)
                failed = True
                break
            time.sleep(0.2)
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in children:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        # Their own children (RQ's scheduler process, releasing its locks) still talk to
        # Redis: stopping it under them left one retrying for a minute after "stopped.".
        for child in children:
            _wait_for_group(child.pid, deadline)
        if embedded:
            forget_url(data_dir)
            embedded.stop()
        click.echo("stopped.")
    if failed:
        sys.exit(1)  # a supervisor (systemd, a shell script) must see that it did not run


def cores() -> int:
    """The cores this process may run on (a container's limit, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def link_host(host: str) -> str:
    """The host links name when we listen on ``host``: every address means this machine."""
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _wait_for_group(pgid: int, deadline: float) -> None:
    """Wait until process group ``pgid`` (a child started in its own session) is empty."""
    while _group_alive(pgid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            return
        time.sleep(0.05)


def _group_alive(pgid: int) -> bool:
    """Whether a live process is left in the group (zombies are not: nobody may reap them)."""
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: ask the kernel, counting zombies too
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            state, _ppid, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if state != "Z" and int(group) == pgid:
            return True
    return False


def _first_token(url: str) -> str:
    """On a fresh data dir, create an admin token so the first curl works at once."""
    r = redis_connect.client(url)
    if r.set("bc:first-token-issued", 1, nx=True):
        token = create_token(r, "admin", "admin", created_by=_operator())
        return (
            f"  Admin API token (shown once, keep it): {token}\n"
            f"  More tokens: broadcaster token create --name NAME --role ROLE\n"
        )
    return "  API tokens: broadcaster token create --name NAME --role ROLE\n"


@main.command("check-plan")
def check_plan() -> None:
    """Check the crisis plan: exit 1 with every problem, else list what is untranslated."""
    try:
        plan = load_plan(_env()["PLAN"])
    except PlanError as exc:
        raise click.ClickException(str(exc)) from exc
    warnings = plan_warnings(plan)
    for warning in warnings:
        click.echo(f"warning: {warning}")
    click.echo(
        f"{plan.source}: valid; {len(plan.audiences)} audiences, "
        f"{len(plan.locales)} locales, {len(warnings)} warnings"
    )


@main.command()
def worker() -> None:
    """Run RQ workers only (same as ``python worker.py``)."""
    import worker as worker_module

    worker_module.main()


@main.group()
def token() -> None:
    """API tokens."""


@token.command("create")
@click.option("--name", required=True, help="Who or what uses the token (shown in the audit).")
@click.option(
    "--role",
    type=click.Choice(ROLES),
    help="What it may do (with --user: default the user's role, and never more than it).",
)
@click.option(
    "--user",
    "email",
    default=None,
    help="The person the token belongs to (an existing user); four eyes count people.",
)
def token_create(name: str, role: str | None, email: str | None) -> None:
    """Create an API token; prints it as the last line (it is stored only as a hash)."""
    if role is None and email is None:
        raise click.UsageError("give --role, or --user to take that user's role")
    env = _env()
    with redis_url(env["REDIS_URL"], str(env["DATA_DIR"])) as url:
        r = redis_connect.client(url)
        try:
            value = create_token(r, name, role, created_by=_operator(), user=email)
        except TokenError as exc:
            raise click.ClickException(str(exc)) from exc
        made = lookup(r, value)
    # Read back, so the line says the role the token really got (--user picks it).
    role, owner = (made.role, f" of {made.person}") if made and email else (role, "")
    click.echo(f"Created {role} token {name!r}{owner}. Send it as 'Authorization: Bearer <token>':")
    click.echo(value)


@main.group()
def user() -> None:
    """People who sign in to the admin pages."""


@user.command("create")
@click.option("--email", required=True, help="Signs in with this address.")
@click.option("--role", required=True, type=click.Choice(USER_ROLES), help="What they may do.")
@click.option("--name", default="", help="Shown in the admin pages (default: from the email).")
def user_create(email: str, role: str, name: str) -> None:
    """Create a user; the password is prompted for, or read from the first line of stdin."""
    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    env = _env()
    with redis_url(env["REDIS_URL"], str(env["DATA_DIR"])) as url:
        try:
            person = create_user(
                redis_connect.client(url), email, name, role, password, created_by=_operator()
            )
        except UserError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"Created {person.role} {person.email}; sign in at /admin.")


@main.group()
def subscribers() -> None:
    """Subscribers."""


@subscribers.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8-sig"))
def subscribers_import(file: TextIO) -> None:
    """Import FILE.csv (columns external_id,email,phone,locale,audiences,channels; ';' lists)."""
    env = _env()
    try:
        plan = load_plan(env["PLAN"])
    except PlanError as exc:
        raise click.ClickException(str(exc)) from exc
    with redis_url(env["REDIS_URL"], str(env["DATA_DIR"])) as url:
        try:
            with RowProgress(f"import {Path(file.name).name}") as progress:
                report = import_rows(
                    csv_rows(file, file.name),
                    plan,
                    SubscriberStore(redis_connect.client(url)),
                    senders=sender_numbers(env),
                    on_progress=progress.update,
                )
        except CsvHeaderError as exc:
            raise click.ClickException(str(exc)) from exc
        audit.record(
            redis_connect.client(url),
            _operator(),
            "subscribers.imported",
            source=file.name,
            created=report["created"],
            updated=report["updated"],
            rejected=len(report["rejected"]),
        )
    for rejected in report["rejected"]:
        reasons = "; ".join(
            f"{k}: {', '.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in rejected["errors"].items()
        )
        click.echo(f"{file.name}:{rejected['index']}: rejected: {reasons}", err=True)
    click.echo(
        f"created {report['created']}, updated {report['updated']}, "
        f"rejected {len(report['rejected'])}"
    )
    if report["rejected"] and not report["created"] + report["updated"]:
        sys.exit(1)


@main.group()
def drill() -> None:
    """Drills: rehearse the crisis plan with the drill team (docs/operations.md)."""


@drill.command("run")
@click.argument("scenario")
def drill_run(scenario: str) -> None:
    """Start a drill of SCENARIO (a [drills.scenarios] name); prints the drill and incident."""
    # The app's whole wiring (channels, renderer, monitoring) runs the drill's alert.
    from broadcaster.app import create_app
    from broadcaster.domain.errors import DomainError
    from broadcaster.domain.principals import Principal
    from broadcaster.services import services
    from broadcaster.web.hooks import drill_runner

    env = _env()
    with redis_url(env["REDIS_URL"], str(env["DATA_DIR"])) as url:
        try:
            app = create_app({"REDIS_URL": url})
        except (PlanError, settings.ConfigError) as exc:
            raise click.ClickException(str(exc)) from exc
        with app.app_context():
            operator = Principal(name=_operator(), role="admin")
            try:
                started = drill_runner.start(services(), scenario, operator)
            except DomainError as exc:
                raise click.ClickException(str(exc)) from exc
    click.echo(f"Drill {started['id']} of {scenario!r} started: {started['outcome']}.")
    click.echo(f"Incident {started['incident_id']}: see /admin/incidents/{started['incident_id']}")
