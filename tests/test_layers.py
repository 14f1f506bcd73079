"""The layered layout holds: every module imports on its own, imports only point down, and a
job queued under a pre-layers dotted path still runs.

Layers (DESIGN.md, cosmicpython): ``domain`` knows no framework and no outer layer;
``rendering`` and ``delivery`` sit on it; ``web`` on top; ``infra`` and ``channels/`` are
adapters that know nothing of the layers.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from broadcaster.delivery import queues
from tests.helpers import PAYMENTS_DOWN, announce, counts, drain, subscribe, work

ROOT = Path(__file__).resolve().parent.parent
OURS = ("broadcaster", "channels", "worker")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files(*packages: str) -> list[Path]:
    return sorted(p for package in packages for p in (ROOT / package).rglob("*.py"))


# ``python -m broadcaster`` runs the CLI when imported; test_cli.py runs it.
MODULES = [
    module_name(p)
    for p in source_files("broadcaster", "channels") + [ROOT / "worker.py"]
    if p.name != "__main__.py"
]

# Runs in a fresh interpreter: loads the third-party modules our sources name, then forks one
# child per module. Each child starts with none of our modules loaded, so it imports its
# module exactly as `python -c "import <module>"` would (a cycle fails the same way), without
# paying for Flask, RQ and the provider SDKs 80 times over.
IMPORTER = textwrap.dedent(
    """
    import importlib, json, os, sys, traceback
    ours, preload, modules = json.loads(sys.argv[1])
    for name in preload:
        try:
            importlib.import_module(name)
        except Exception:
            pass  # the child that needs it reports the failure
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in ours)
    if loaded:
        sys.exit(f"preloading third-party modules loaded ours: {loaded}")
    results = {}
    for module in modules:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            try:
                importlib.import_module(module)
                message = b""
            except BaseException:
                message = traceback.format_exc().encode() or b"failed"
            os.write(write, message)
            os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as pipe:
            message = pipe.read().decode()
        _, status = os.waitpid(pid, 0)
        if status and not message:
            message = f"the import ended the process (wait status {status})"
        results[module] = message or None
    print(json.dumps(results))
    """
)


def third_party_imports(files: list[Path], ours: tuple[str, ...]) -> list[str]:
    names: set[str] = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
    return sorted(n for n in names if n.split(".")[0] not in (*ours, "__future__"))


def import_each(root: Path, modules: list[str], ours: tuple[str, ...] = OURS) -> dict:
    """Import each module on its own, in a fresh interpreter; module -> traceback or None."""
    files = [p for name in ours for p in [*(root / name).rglob("*.py"), root / f"{name}.py"]]
    preload = third_party_imports([p for p in files if p.exists()], ours)
    argument = json.dumps([ours, preload, modules])
    done = subprocess.run(
        [sys.executable, "-c", IMPORTER, argument],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def imported() -> dict:
    return import_each(ROOT, MODULES)


def test_every_module_is_found():
    assert len(MODULES) > 40
    assert {"worker", "channels", "broadcaster.web.auth", "broadcaster.domain.plan"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_on_its_own(imported, module):
    assert imported[module] is None, f"`import {module}` fails alone:\n{imported[module]}"


def test_a_circular_import_is_caught(tmp_path):
    """The harness itself: a cycle that only bites when entered from one side fails."""
    package = tmp_path / "cyc"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from cyc.b import B\n\nA = 1\n")
    (package / "b.py").write_text("from cyc.a import A\n\nB = 2\n")
    (package / "c.py").write_text("C = 3\n")
    results = import_each(tmp_path, ["cyc.a", "cyc.c"], ours=("cyc",))
    assert "partially initialized module" in results["cyc.a"]
    assert results["cyc.c"] is None


# --- Layer contracts, read from the source (an import inside a function counts too).


def imports_of(path: Path) -> list[tuple[int, str, str]]:
    """(line, dotted name, statement) of everything a module imports, relative ones resolved.

    ``from a.b import c`` yields both ``a.b`` and ``a.b.c``: ``c`` may be a module.
    """
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package.pop()
    found: list[tuple[int, str, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names = [module, *(f"{module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found += [(node.lineno, name, ast.unparse(node)) for name in names]
    return found


def violations(layer: str, forbidden: tuple[str, ...]) -> list[str]:
    out = []
    for path in source_files(layer):
        seen = set()
        for line, name, statement in imports_of(path):
            for bad in forbidden:
                if (name == bad or name.startswith(bad + ".")) and (line, bad) not in seen:
                    seen.add((line, bad))
                    out.append(f"{path.relative_to(ROOT)}:{line}: {statement}  ({bad})")
    return out


CONTRACTS = [
    pytest.param("channels", ("broadcaster",), id="channels"),
    pytest.param(
        "broadcaster/domain",
        (
            "flask",
            "broadcaster.web",
            "broadcaster.delivery",
            "broadcaster.rendering",
            "broadcaster.services",
            "broadcaster.app",
        ),
        id="broadcaster/domain",
    ),
    pytest.param(
        "broadcaster/rendering", ("broadcaster.web", "broadcaster.delivery"), id="rendering"
    ),
    pytest.param("broadcaster/delivery", ("broadcaster.web",), id="delivery"),
    pytest.param(
        "broadcaster/infra",
        ("broadcaster.domain", "broadcaster.delivery", "broadcaster.rendering", "broadcaster.web"),
        id="infra",
    ),
]


@pytest.mark.parametrize(("layer", "forbidden"), CONTRACTS)
def test_layer_imports_point_down(layer, forbidden):
    assert source_files(layer), f"no sources under {layer}"
    found = violations(layer, forbidden)
    assert not found, f"{layer} must not import {', '.join(forbidden)}:\n" + "\n".join(found)


def test_the_contract_reader_sees_function_level_and_relative_imports(tmp_path, monkeypatch):
    layer = tmp_path / "pkg" / "low"
    layer.mkdir(parents=True)
    (layer / "__init__.py").write_text("")
    (layer / "m.py").write_text(
        "from __future__ import annotations\n\n\ndef late():\n    from ..high import x\n"
        "    import flask.json\n    from pkg import high\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert violations("pkg/low", ("pkg.high", "flask")) == [
        "pkg/low/m.py:5: from ..high import x  (pkg.high)",
        "pkg/low/m.py:6: import flask.json  (flask)",
        "pkg/low/m.py:7: from pkg import high  (pkg.high)",
    ]


# --- Jobs queued before the layers moved (an upgrade in the middle of an incident).


def requeue_under(q, job_id: str | None, legacy: str) -> None:
    """Replace the queue's only job by the same call under its old dotted path."""
    [job] = q.jobs
    args = job.args
    q.empty()
    q.enqueue_call(legacy, args=args, job_id=job_id)
    [old] = q.jobs
    assert old.func_name == legacy and old.args == args


@pytest.mark.parametrize("legacy", ["broadcaster.fanout.plan_job", "broadcaster.fanout.batch_job"])
def test_a_job_queued_under_its_pre_layers_name_still_runs(app, client, tokens, providers, legacy):
    assert legacy in queues.LEGACY_JOB_NAMES
    # The old module is gone: only the worker's renaming can make this job run.
    assert importlib.util.find_spec("broadcaster.fanout") is None
    sendgrid, twilio = providers
    r = app.extensions["broadcaster"].redis
    subscribe(
        client,
        tokens["admin"],
        [{"email": "a@example.com", "phone": "+31612345001", "audiences": ["consumers"]}],
    )
    ann = announce(client, tokens["admin"], PAYMENTS_DOWN, channels=["sms"])["id"]
    plan = queues.queue(r, queues.PLAN_QUEUE)
    if legacy.endswith("plan_job"):
        requeue_under(plan, f"plan-{ann}", legacy)
    else:
        work(app, max_jobs=1)  # the plan job, under its current name, queues the SMS batch
        requeue_under(queues.queue(r, "sms"), None, legacy)
    drain(app)  # fails on any job that raised, e.g. an unimportable function
    assert counts(client, tokens["admin"], ann)["sms"]["sent"] == 1
    assert [form["To"] for form in twilio.accepted()] == ["+31612345001"]
    assert sendgrid.accepted() == []
