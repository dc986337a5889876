"""The ``rlm-kernel`` command.

Exit codes: 0 the model submitted an answer; 1 the run ended without one (a limit forced a best guess,
or it was stopped); 2 bad command line; 3 configuration, context or recording problem; 4 the model endpoint failed
(the session is saved and can be resumed); 130 interrupted.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._config import RLM
from ._errors import ConfigError, ContextError, ModelError, RLMError, TrajectoryError
from ._records import Result
from ._replay import replay_session
from ._session import Session
from ._trajectory import Trajectory

EXIT_ANSWERED, EXIT_NO_ANSWER, EXIT_USAGE, EXIT_CONFIG, EXIT_MODEL, EXIT_INTERRUPTED = (
    0,
    1,
    2,
    3,
    4,
    130,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlm-kernel",
        description="Recursive Language Models: answer questions about contexts larger than any model window.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run",
        help="answer a question about a file, directory or glob",
        description="Answer QUESTION about the context at PATH (a text/JSON/JSONL file, a directory "
        "tree, a glob, or - for standard input). Settings come from the environment (OPENAI_API_KEY, "
        "OPENAI_BASE_URL, RLM_MODEL, RLM_SUB_MODEL, ./.env) unless given here.",
    )
    run.add_argument("question")
    run.add_argument("path", help="file, directory, glob, or - for standard input")
    run.add_argument("--model", help="root model (RLM.model)")
    run.add_argument("--sub-model", help="model for sub-calls (RLM.sub_model)")
    run.add_argument("--base-url", help="OpenAI-compatible endpoint (RLM.base_url)")
    run.add_argument("--max-iterations", type=int, help="RLM.max_iterations")
    run.add_argument("--max-depth", type=int, help="RLM.max_depth")
    run.add_argument("--mode", choices=["rlm", "auto", "baseline"], help="RLM.mode")
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any other setting, e.g. --set max_tokens=200000 (values are read as JSON when they can be)",
    )
    run.add_argument(
        "--replay",
        metavar="RECORDING",
        help="serve every model answer from a recorded trajectory (.jsonl/.json) instead of a model: "
        "the code runs again for real, offline, with no API key",
    )
    run.add_argument(
        "--export", metavar="FILE", help="also write the trajectory to FILE (.json or .jsonl)"
    )
    run.add_argument("--quiet", action="store_true", help="no progress line")
    install = commands.add_parser(
        "install",
        help='install the "RLM (Python 3)" Jupyter kernel',
        description='Install the "RLM (Python 3)" kernelspec. The wheel already installs it into its '
        "environment; use this for another location.",
    )
    where = install.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="into the user's Jupyter data directory")
    where.add_argument("--sys-prefix", action="store_true", help="into this Python environment")
    where.add_argument("--prefix", help="into PREFIX/share/jupyter/kernels")
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in ("model", "sub_model", "base_url", "max_iterations", "max_depth", "mode"):
        value = getattr(args, name)
        if value is not None:
            values[name] = value
    for item in args.set:
        name, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(
                f"--set {item!r} is not NAME=VALUE", fix="Write it like --set max_tokens=200000"
            )
        try:
            values[name.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            values[name.strip()] = raw
    return values


def _run(args: argparse.Namespace) -> int:
    context: object = sys.stdin.read() if args.path == "-" else _existing(args.path)
    if args.replay:
        session = replay_session(
            Trajectory.load(args.replay), args.question, context, _overrides(args)
        )
    else:
        config = RLM().with_overrides(_overrides(args))
        if not config.model:
            raise ConfigError(
                "No model is set",
                fix="Pass --model NAME, or set RLM_MODEL in the environment or ./.env",
                setting="RLM.model",
            )
        session = Session(args.question, context, config=config)
    progress = None
    if not args.quiet and sys.stderr.isatty():
        from ._progress import ProgressLine

        progress = ProgressLine(session, sys.stderr)
    try:
        result = session.run()
    finally:
        if progress is not None:
            progress.close()
    if args.export:
        result.trajectory.save(args.export)
    return _report(result)


def _existing(path: str) -> str:
    # On the command line PATH names files; text that merely looks like one is a typo, not a context.
    if Path(path).exists() or glob.has_magic(path):
        return path
    raise ContextError(
        f"No such file or directory: {path}",
        fix="Check the path; pass - to read the context from standard input",
    )


def _report(result: Result) -> int:
    total = result.usage.total
    where = f" · trajectory: {result.path}" if result.path else ""
    summary = (
        f"{result.reason} · {len(result.trajectory.iterations)} iterations · "
        f"{total.total_tokens:,} tokens in {total.calls} calls{where}"
    )
    if result.error is not None:
        print(f"rlm-kernel: {result.error}", file=sys.stderr)
        print(summary, file=sys.stderr)
        return EXIT_MODEL
    if result.answer is not None:
        print(result.answer)
    if result.message and result.reason != "final":
        print(f"rlm-kernel: {result.message}", file=sys.stderr)
    print(summary, file=sys.stderr)
    if result.reason == "paused":  # interrupted with Ctrl-C
        return EXIT_INTERRUPTED
    return EXIT_ANSWERED if result.reason in ("final", "baseline") else EXIT_NO_ANSWER


def _install(args: argparse.Namespace) -> int:
    from .install import install

    prefix = sys.prefix if args.sys_prefix else args.prefix
    where = install(user=args.user, prefix=prefix)
    print(f"Installed the RLM (Python 3) kernel in {where}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _install(args) if args.command == "install" else _run(args)
    except (ConfigError, ContextError, TrajectoryError) as exc:
        print(f"rlm-kernel: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ModelError as exc:
        print(f"rlm-kernel: {exc}", file=sys.stderr)
        return EXIT_MODEL
    except RLMError as exc:
        print(f"rlm-kernel: {exc}", file=sys.stderr)
        return EXIT_NO_ANSWER
    except KeyboardInterrupt:
        print("rlm-kernel: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
