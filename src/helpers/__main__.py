"""Command line: `python -m helpers run|runs|demo|init-config|refresh-notebook-outputs|
strip-notebooks`.

The config (file, `extends:` chain and `--set` overrides) is validated before anything heavy is
imported, so a misspelled key or a wrong type stops the command within a second, with one message
naming the file, each bad key path and the closest valid key, and exit code 2. `run` then checks
the inputs (pre-flight: every problem one line, exit 2) and the run lock (another active run: exit 2);
a failed step or an unwritable folder exits 1, SIGINT 130 and SIGTERM 143.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from helpers.core.config import ConfigError, load_config, resolve_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run every step's notebook in order with papermill")
    run.add_argument("--config", default=None, help="run config YAML (default: config/demo.yml)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    run.add_argument("--outputs", default=None, help="outputs folder (default: outputs/)")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    runs = commands.add_parser(
        "runs", help="list the runs (status, start, duration, failed step), newest first"
    )
    runs.add_argument("--outputs", default=None, help="outputs folder (default: outputs/)")
    demo = commands.add_parser("demo", help="generate the demo world named in the config")
    demo.add_argument("--config", default=None)
    demo.add_argument("--set", dest="overrides", action="append", default=[])
    init = commands.add_parser("init-config", help="propose a run config for a folder of exports")
    init.add_argument("raw_dir")
    init.add_argument("-o", "--output", required=True, help="config file to write")
    commands.add_parser(
        "refresh-notebook-outputs",
        help="recompute the reference outputs of nbval-checked cells on the small test world",
    )
    commands.add_parser(
        "strip-notebooks",
        help="store the step notebooks as the git filter does (outputs only on nbval-checked cells)",
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "runs":
            return _runs(args)
        if args.command == "demo":
            return _demo(args)
        if args.command == "init-config":
            from helpers.audit.init_config import main as init_config

            return init_config([args.raw_dir, "-o", args.output])
        from helpers.core import notebook_checks

        if args.command == "strip-notebooks":
            for path in notebook_checks.strip_notebooks():
                print(f"stripped {path.name}")
            return 0
        notebook_checks.refresh_reference_outputs()
        return 0
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.overrides)  # fail fast: before papermill and nbconvert load
    from helpers.core.paths import OUTPUTS_DIR
    from helpers.core.preflight import PreflightError, check_run

    outputs = resolve_path(args.outputs) if args.outputs else OUTPUTS_DIR
    try:
        check_run(config, outputs)
    except PreflightError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    # jsonschema (papermill -> nbformat) imports rfc3987_syntax when installed (JupyterLab's event
    # schemas want it) to check IRI formats; building its grammar costs ~2 CPU s per command and no
    # notebook schema has an IRI format, so this process goes without it.
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
    from helpers.core.runner import (
        OutputsWriteError,
        RunInterruptedError,
        RunLockedError,
        StepFailedError,
        run_workbench,
    )

    try:
        run_workbench(args.config, args.overrides, outputs_dir=outputs, progress=not args.quiet)
    except (PreflightError, RunLockedError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (StepFailedError, OutputsWriteError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except RunInterruptedError as interruption:
        print(
            f"stopped: {interruption}; run.json records it, outputs/latest was not changed", file=sys.stderr
        )
        return interruption.exit_code
    return 0


def _runs(args: argparse.Namespace) -> int:
    from helpers.core.paths import OUTPUTS_DIR
    from helpers.core.runs import format_runs, list_runs

    outputs = resolve_path(args.outputs) if args.outputs else OUTPUTS_DIR
    print(format_runs(list_runs(outputs / "runs")))
    return 0


def _demo(args: argparse.Namespace) -> int:
    config: dict[str, Any] = load_config(args.config, args.overrides)
    from helpers.core.runner import generate_configured_demo
    from helpers.demo.world import DemoSizeError

    try:
        counts = generate_configured_demo(config, progress=True)
    except DemoSizeError as error:
        print(error, file=sys.stderr)
        return 2
    for name, rows in counts.items():
        print(f"{name}: {rows:,} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
