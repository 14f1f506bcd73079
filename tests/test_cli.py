"""The command line: token create (also for a person), CSV import."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess

import pytest

from broadcaster.domain import audit
from broadcaster.domain.announcements import AnnouncementStore
from broadcaster.domain.tokens import lookup
from broadcaster.domain.users import create_user
from tests.processes import broadcaster_command, clean_env


def run(args, redis_server, tmp_path, **env):
    return subprocess.run(
        [*broadcaster_command(), *args],
        env=clean_env(
            BROADCASTER_REDIS_URL=redis_server.url, BROADCASTER_DATA_DIR=str(tmp_path), **env
        ),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_token_create_prints_the_token_last(r, redis_server, tmp_path):
    result = run(
        ["token", "create", "--name", "helpdesk-bot", "--role", "helpdesk"], redis_server, tmp_path
    )
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip().splitlines()[-1]
    principal = lookup(r, token)
    assert (
        principal is not None and principal.name == "helpdesk-bot" and principal.role == "helpdesk"
    )
    assert not [k for k in r.keys("bc:token:*") if token.encode() in k], (
        "stored hashed, never in clear"
    )
    assert token.encode() not in b"".join(
        v for k in r.keys("bc:token:*") for v in r.hgetall(k).values()
    )


def test_token_create_refuses_unknown_role(redis_server, tmp_path):
    result = run(["token", "create", "--name", "x", "--role", "root"], redis_server, tmp_path)
    assert result.returncode != 0
    assert "'root' is not one of" in result.stderr


def test_token_create_for_a_user_acts_as_that_person_with_their_role(r, redis_server, tmp_path):
    create_user(r, "lea@acme.example", "Lea", "approver", "correct horse battery staple")
    result = run(
        ["token", "create", "--name", "lea-laptop", "--user", "Lea@Acme.example"],
        redis_server,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "Created approver token 'lea-laptop' of lea@acme.example" in result.stdout
    principal = lookup(r, result.stdout.strip().splitlines()[-1])
    assert (principal.name, principal.person, principal.role) == (
        "lea-laptop",
        "lea@acme.example",
        "approver",
    )
    made = audit.entries(r, action="token.created")[0]
    assert made["actor"].startswith("cli:")
    assert made["details"] == {"name": "lea-laptop", "role": "approver", "user": "lea@acme.example"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--user", "ghost@acme.example"], "no user 'ghost@acme.example'"),
        (["--user", "lea@acme.example", "--role", "admin"], "may not do more than its person"),
        ([], "give --role, or --user"),
    ],
)
def test_token_create_for_a_user_says_what_is_wrong(r, redis_server, tmp_path, args, message):
    create_user(r, "lea@acme.example", "Lea", "approver", "correct horse battery staple")
    result = run(["token", "create", "--name", "x", *args], redis_server, tmp_path)
    assert result.returncode != 0
    assert message in result.stderr
    assert r.keys("bc:token:*") == [], "nothing made"


def test_token_create_without_redis_uses_the_embedded_one(tmp_path):
    """No Redis configured and none running: the embedded server starts on the data dir's files."""
    result = subprocess.run(
        [*broadcaster_command(), "token", "create", "--name", "ops", "--role", "admin"],
        env=clean_env(BROADCASTER_DATA_DIR=str(tmp_path / "var")),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("bct_")
    assert (tmp_path / "var" / "appendonlydir").exists() or (
        tmp_path / "var" / "appendonly.aof"
    ).exists()


def test_subscribers_import_reports_each_rejected_row(r, redis_server, tmp_path):
    csv_file = tmp_path / "people.csv"
    csv_file.write_text(
        "external_id,email,phone,locale,audiences,channels\n"
        "c1,a@example.com,+31612345001,nl,consumers;business,\n"
        "c2,,0612345002,,consumers,sms\n"
        "c3,broken@,,,consumers,\n"
        "c4,d@example.com,,,martians,\n"
        "c1,a@example.com,+31612345001,nl,consumers,\n"
    )
    result = run(["subscribers", "import", str(csv_file)], redis_server, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "created 2, updated 1, rejected 2" in result.stdout
    assert "people.csv:4: rejected: email" in result.stderr
    assert "people.csv:5: rejected: audiences: unknown audience 'martians'" in result.stderr
    assert r.zcard("bc:subs") == 2
    assert r.zcard("bc:aud:business") == 0, "row 6 moved c1 out of business"


def test_subscribers_import_needs_an_audiences_column(redis_server, tmp_path):
    csv_file = tmp_path / "bad.csv"
    csv_file.write_text("email\na@example.com\n")
    result = run(["subscribers", "import", str(csv_file)], redis_server, tmp_path)
    assert result.returncode != 0
    assert "audiences" in result.stderr


def test_check_plan_names_what_is_untranslated(redis_server, tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text(
        '[organisation]\nname = "Tiny"\nlocales = ["en", "nl"]\n'
        "[channels_by_severity]\ninfo = []\nminor = []\nmajor = []\ncritical = []\n"
        '[audiences.everyone]\ndescription = { en = "Everyone" }\n'
        '[[audiences.everyone.routes]]\nneed = "Help"\n'
        'channel = { en = "Phone", nl = "Telefoon" }\ncontact = "+31 20 123 4567"\n'
    )
    result = run(["check-plan"], redis_server, tmp_path, BROADCASTER_PLAN=str(plan))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "warning: audiences.everyone.description has no nl text: nl readers see the en one "
        "('Everyone')",
        "plan.toml: valid; 1 audiences, 2 locales, 1 warnings",
    ]


def test_check_plan_fails_with_every_problem(redis_server, tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text(
        '[organisation]\nname = "Tiny"\nlocales = ["en", "nl"]\n'
        "[channels_by_severity]\ninfo = []\nminor = []\nmajor = []\ncritical = []\n"
        '[audiences.everyone]\ndescription = { nl = "Iedereen" }\n'
    )
    result = run(["check-plan"], redis_server, tmp_path, BROADCASTER_PLAN=str(plan))
    assert result.returncode == 1
    assert (
        "audiences.everyone.description: needs a label for the default locale 'en'" in result.stderr
    )


def test_check_plan_passes_the_bundled_plan_without_warnings(redis_server, tmp_path):
    result = run(["check-plan"], redis_server, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "plan.toml: valid; 3 audiences, 4 locales, 0 warnings"


def people_csv(tmp_path, rows: int, bad_every: int = 0):
    csv_file = tmp_path / "many.csv"
    lines = ["external_id,email,phone,locale,audiences,channels"]
    for i in range(rows):
        email = "broken@" if bad_every and i % bad_every == 0 else f"p{i}@example.com"
        lines.append(f"c{i},{email},,nl,consumers,")
    csv_file.write_text("\n".join(lines) + "\n")
    return csv_file


def test_import_piped_prints_plain_progress_lines(r, redis_server, tmp_path):
    csv_file = people_csv(tmp_path, 1200, bad_every=100)
    result = run(
        ["subscribers", "import", str(csv_file)],
        redis_server,
        tmp_path,
        BROADCASTER_PROGRESS_INTERVAL="0",
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("import many.csv:")]
    # One line per chunk of 500 and a last one; plain text, no terminal escape codes.
    assert len(lines) >= 3, result.stderr
    assert re.fullmatch(r"import many\.csv: 1,200 rows, [\d,]+/s, 12 rejected, done", lines[-1])
    assert "\x1b[" not in result.stderr
    assert "created 1188, updated 0, rejected 12" in result.stdout


def test_import_on_a_terminal_draws_a_live_bar(r, redis_server, tmp_path):
    csv_file = people_csv(tmp_path, 600, bad_every=200)
    primary, replica = pty.openpty()
    try:
        process = subprocess.Popen(
            [*broadcaster_command(), "subscribers", "import", str(csv_file)],
            env=clean_env(
                BROADCASTER_REDIS_URL=redis_server.url,
                BROADCASTER_DATA_DIR=str(tmp_path),
                TERM="xterm",
                COLUMNS="120",
            ),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=replica,
        )
        os.close(replica)
        output = b""
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
        stdout, _ = process.communicate(timeout=60)
    finally:
        os.close(primary)
    assert process.returncode == 0
    screen = output.decode(errors="replace")
    assert "\x1b[" in screen, "a live display on a terminal"
    assert "600 rows" in screen and "3 rejected" in screen and "/s" in screen
    assert b"created 597, updated 0, rejected 3" in stdout


def test_drill_run_starts_a_drill_of_the_plans_scenario(r, redis_server, tmp_path):
    result = run(["drill", "run", "payments"], redis_server, tmp_path)
    assert result.returncode == 0, result.stderr
    drill_id = result.stdout.split()[1]
    stored = json.loads(r.get(f"bc:drill:{drill_id}"))
    assert stored["scenario"] == "payments" and stored["started_by"].startswith("cli:")
    assert stored["incident_id"] in result.stdout
    incident = AnnouncementStore(r).get_incident(stored["incident_id"])
    assert incident["exercise"] is True and incident["drill_id"] == drill_id


def test_drill_run_names_the_known_scenarios_when_one_is_unknown(redis_server, tmp_path):
    result = run(["drill", "run", "storm"], redis_server, tmp_path)
    assert result.returncode == 1
    assert "unknown scenario 'storm' (known: payments)" in result.stderr
