"""``python -m bench run SCENARIO|all [--runs N] [--recipients N] [--workers N]``."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.report import Result, save, table
from bench.scenarios import NAMES, Options, registry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a scenario (or all) and print the table")
    run.add_argument("scenario", choices=(*NAMES, "all"))
    run.add_argument("--runs", type=int, default=3, help="runs per scenario (median, min–max)")
    run.add_argument("--recipients", type=int, help="subscribers (default: the issue's size)")
    run.add_argument("--workers", type=int, help="worker.py processes")
    run.add_argument(
        "--requests",
        type=int,
        help="api-accept: announcements; signup-burst: sign-ups; "
        "first-message: sequence length; "
        "status-load: past incidents",
    )
    run.add_argument(
        "--duration",
        type=float,
        default=10.0,
        help="banner-load: wrk seconds; status-load: per path",
    )
    run.add_argument("--baseline-budget", type=float, default=10.0, help="seconds per baseline run")
    run.add_argument("--keep", action="store_true", help="keep logs and ledgers (temp dir)")
    run.add_argument(
        "--source",
        metavar="REV",
        help="benchmark the service as of a git revision (e.g. HEAD), not the working tree",
    )
    run.add_argument("--gunicorn", help='what-if: gunicorn options, e.g. "--workers 4"')
    run.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="what-if: a service setting, e.g. BROADCASTER_SMS_CONCURRENCY=48",
    )
    args = parser.parse_args(argv)
    for pair in args.env:
        key, _, value = pair.partition("=")
        os.environ[f"BENCH_SET_{key}"] = value
    # Environment, so a --source child and the stack see them too.
    if args.gunicorn:
        os.environ["BENCH_GUNICORN"] = args.gunicorn
    if args.source and not os.environ.get("BENCH_SOURCE_DIR"):
        return _from_snapshot(args.source, sys.argv[1:] if argv is None else argv)
    opts = Options(
        runs=args.runs,
        recipients=args.recipients,
        workers=args.workers,
        requests=args.requests,
        duration=args.duration,
        baseline_budget=args.baseline_budget,
        keep=args.keep,
    )
    scenarios = registry()
    names = NAMES if args.scenario == "all" else (args.scenario,)
    results: list[Result] = []
    try:
        for name in names:
            print(f"== {name} ...", file=sys.stderr, flush=True)
            result = scenarios[name](opts)
            print(f"   written to {save(result)}", file=sys.stderr, flush=True)
            results.append(result)
    except KeyboardInterrupt:
        print("interrupted; every process started was stopped", file=sys.stderr)
        if not results:
            return 130
    print(table(results))
    return 0 if all(r.passed for r in results) else 1


def _commit(repo: Path, revision: str) -> str:
    """``revision`` as a commit id, for the record."""
    out = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--short", revision],
        capture_output=True,
        text=True,
        check=True,
    )
    return f"{revision} ({out.stdout.strip()})"


def _from_snapshot(revision: str, argv: list[str]) -> int:
    """Run ourselves again on an exported copy of ``revision``, immune to edits meanwhile."""
    home = Path(__file__).resolve().parent
    snapshot = Path(tempfile.mkdtemp(prefix="bench-src-"))
    try:
        archive = subprocess.run(
            ["git", "-C", str(home.parent), "archive", revision],
            capture_output=True,
            check=True,
        )
        subprocess.run(["tar", "-x", "-C", str(snapshot)], input=archive.stdout, check=True)
        env = {
            **os.environ,
            "BENCH_SOURCE_DIR": str(snapshot),
            "BENCH_HOME": os.environ.get("BENCH_HOME") or str(home),
            "BENCH_SOURCE_REV": _commit(home.parent, revision),
            # The snapshot's service code first; the bench package from here if it has none.
            "PYTHONPATH": os.pathsep.join([str(snapshot), str(home.parent)]),
        }
        child = subprocess.Popen([sys.executable, "-m", "bench", *argv], cwd=snapshot, env=env)
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:
                continue  # the child got Ctrl-C too; let it stop its processes first
    finally:
        shutil.rmtree(snapshot, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
