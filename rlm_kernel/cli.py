"""The ``rlm-kernel`` command: ``run`` a question, ``replay`` a recorded session offline, ``export`` a
trajectory to another format, ``install`` the kernel.

Exit codes: 0 the model submitted an answer; 1 the run ended without one (a limit forced a best guess,
or it was stopped); 2 bad command line; 3 configuration, context, recording or index problem, or the
``--export`` file or the autosave could not be written (an answer is printed all the same, and the
whole trajectory is written elsewhere); 4 the model endpoint failed (the session is saved and can be
resumed); 130 interrupted.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import _stdjson as json
from ._cli_index import add_index_command, index_command
from ._config import RLM, parse_assignment
from ._models_list import add_models_command, models_command
from ._records import Result
from ._replay import replay_session
from ._retrieval_tools import open_spec
from ._session import Session
from ._timeline_view import draw_timeline
from ._trajectory import Trajectory, probe_writable, unwritable
from ._version import __version__
from .errors import (
    AutosaveError,
    ConfigError,
    ContextError,
    ModelError,
    ReplayMissError,
    RetrievalError,
    RLMError,
    TrajectoryError,
)
from .exporters import FORMATS, export, import_trajectory, infer_format

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
    parser.add_argument("--version", action="version", version=f"rlm_kernel {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run",
        help="answer a question about a file, directory or glob",
        description="Answer QUESTION about the context at PATH (a text/JSON/JSONL file, a directory "
        "tree, a glob, or - for standard input). Settings come from the environment (OPENAI_API_KEY, "
        "OPENAI_BASE_URL, RLM_MODEL, RLM_SUB_MODEL, ./.env) unless given here.",
    )
    run.add_argument("question")
    run.add_argument("path", nargs="?", help="file, directory, glob, or - for standard input")
    run.add_argument("--model", help="root model (RLM.model)")
    run.add_argument("--sub-model", help="model for sub-calls (RLM.sub_model)")
    run.add_argument("--base-url", help="OpenAI-compatible endpoint (RLM.base_url)")
    run.add_argument("--max-iterations", type=int, help="RLM.max_iterations")
    run.add_argument("--max-depth", type=int, help="RLM.max_depth")
    run.add_argument("--mode", choices=["rlm", "auto", "baseline"], help="RLM.mode")
    run.add_argument(
        "--strategy", help="RLM.strategy: search-first, map-reduce, verify (join with +), or tips"
    )
    for flag, what in (("include", "only files matching"), ("exclude", "no files matching")):
        run.add_argument(
            f"--{flag}",
            action="append",
            metavar="GLOB",
            help=f"a directory or glob context loads {what} GLOB (repeatable; RLM.{flag})",
        )
    _add_set(run)
    _add_retriever(run)
    run.add_argument(
        "--replay",
        metavar="RECORDING",
        help="serve every model answer from a recorded trajectory (.jsonl/.json) instead of a model: "
        "the code runs again for real, offline, with no API key",
    )
    run.add_argument(
        "--output",
        metavar="SCHEMA",
        help="a JSON schema file: the answer must match it (validated, sent back to the model "
        "with the validator's message up to RLM.output_repairs times) and is printed as JSON",
    )
    _add_export(run)
    run.add_argument("--quiet", action="store_true", help="no progress line")
    _replay_parser(commands)
    _export_parser(commands)
    _demo_parser(commands)
    _examples_parser(commands)
    add_models_command(commands)
    add_index_command(commands)
    _install_parser(commands)
    return parser


def _install_parser(commands: Any) -> None:
    install = commands.add_parser(
        "install",
        help='install the "RLM (Python 3)" Jupyter kernel',
        description='Install the "RLM (Python 3)" kernelspec for this Python, like `python -m '
        "ipykernel install`. The wheel already installs it into its environment; use this for "
        "another location, or for a second kernel with its own name and environment variables.",
    )
    where = install.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="into the user's Jupyter data directory")
    where.add_argument(
        "--sys-prefix",
        action="store_true",
        help=f"into this Python environment (--prefix {sys.prefix})",
    )
    where.add_argument("--prefix", help="into PREFIX/share/jupyter/kernels")
    install.add_argument(
        "--name",
        default="rlm",
        type=_kernel_name,
        help="the kernelspec's name, its directory (default: rlm)",
    )
    install.add_argument(
        "--display-name",
        help='the name the launcher shows (default: "RLM (Python 3)", or NAME when --name is given)',
    )
    install.add_argument(
        "--env",
        action="append",
        nargs=2,
        default=[],
        metavar=("KEY", "VALUE"),
        help="an environment variable for the kernel, written to kernel.json (repeatable)",
    )


def _kernel_name(name: str) -> str:
    from .install import check_name

    try:
        return check_name(name)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_set(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any other setting, e.g. --set max_tokens=200000 (values are read as JSON when they can be)",
    )


def _add_retriever(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--retriever",
        metavar="INDEX",
        help="a collection the model searches (search/get): an index file or postgresql:// DSN; "
        "PATH/CONTEXT may then be left out",
    )


def _add_export(parser: argparse.ArgumentParser) -> None:
    suffixes = ", ".join(s for f in FORMATS.values() for s in f.suffixes)
    parser.add_argument(
        "--export",
        metavar="FILE",
        help=f"also write the trajectory to FILE, in the format its suffix names ({suffixes})",
    )


def _replay_parser(commands: Any) -> None:
    replay = commands.add_parser(
        "replay",
        help="re-enact a recorded session offline",
        description="Run a recorded session (.jsonl/.json trajectory) again on CONTEXT: the code runs "
        "for real, every model answer comes from the recording, so it needs no API key and spends no "
        "tokens. CONTEXT must be what the session was recorded on.",
    )
    replay.add_argument("recording", help="the trajectory (.jsonl autosave or .json export)")
    replay.add_argument("context", nargs="?", help="file, directory, glob, or - for standard input")
    replay.add_argument(
        "--timeline",
        nargs="?",
        const="-",
        metavar="FILE",
        help="draw the session's timeline here, or to FILE (.html, .svg, .png, .json, .txt); without "
        "CONTEXT the recording's, and nothing runs",
    )
    replay.add_argument(
        "--speed", type=float, help="re-enact the recorded model latency, sped up SPEED times"
    )
    replay.add_argument(
        "--live-fallback",
        action="store_true",
        help="ask the configured model (OPENAI_BASE_URL / OPENAI_API_KEY, or --base-url) for what the "
        "recording lacks, instead of stopping with a ReplayMissError",
    )
    replay.add_argument("--base-url", help="endpoint for --live-fallback (RLM.base_url)")
    _add_set(replay)
    _add_retriever(replay)
    _add_export(replay)
    replay.add_argument("--quiet", action="store_true", help="no progress line")


def _demo_parser(commands: Any) -> None:
    demo = commands.add_parser(
        "demo",
        help="the five-minute tour, offline: replay the bundled quickstart session",
        description="Replay the bundled quickstart session (recorded from a real model run) in the "
        "terminal with no API key: the model's code runs again for real, each step prints as it "
        "happens, and the answer follows. Then write the executed quickstart notebook and the "
        "session's exports to --out.",
    )
    demo.add_argument(
        "--out",
        default="rlm-demo",
        help="where to write the notebook and exports (default: ./rlm-demo)",
    )
    demo.add_argument(
        "--speed", type=float, help="re-enact the recorded model latency, sped up SPEED times"
    )
    demo.add_argument(
        "--lab",
        action="store_true",
        help="open JupyterLab on the quickstart notebook in the --out folder instead (needs "
        '`pip install "rlm_kernel[lab]"`)',
    )


def _examples_parser(commands: Any) -> None:
    examples = commands.add_parser(
        "examples",
        help="copy the example notebooks, their contexts and recordings to a folder",
        description="Copy the bundled example notebooks (quickstart, how_rlm_works, codebase_qa, "
        "export_and_replay) with the contexts they read and the recorded sessions they replay "
        "offline into DIR, to open there in any Jupyter front end.",
    )
    examples.add_argument("dir", nargs="?", default="rlm-examples", help="default: ./rlm-examples")


def _examples(args: argparse.Namespace) -> int:
    from ._examples import copy_examples

    target = Path(args.dir)
    copied = copy_examples(target)
    print(f"Copied {len(copied)} example notebooks to {target}: {', '.join(copied)}")
    print(f"Open them with `jupyter lab {target}` (offline: each replays its bundled recording).")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from ._demo import open_lab, run_demo

    if args.lab:
        return open_lab(Path(args.out))
    return run_demo(Path(args.out), speed=args.speed, stream=sys.stderr)


def _export_parser(commands: Any) -> None:
    formats = "; ".join(f"{f.name}: {f.description}" for f in FORMATS.values())
    exporter = commands.add_parser(
        "export",
        help="write a trajectory in another format",
        description=f"Write the trajectory RECORDING (.jsonl or .json) to OUT. Formats: {formats}.",
    )
    exporter.add_argument("recording")
    exporter.add_argument("out")
    exporter.add_argument(
        "--format", choices=list(FORMATS), help="default: from OUT's suffix (longest match)"
    )
    exporter.add_argument(
        "--include-children",
        action="store_true",
        help="sft: one example per child RLM session too",
    )
    exporter.add_argument(
        "--all",
        action="store_true",
        help="sft: keep sessions that ended without a submitted answer too",
    )


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in (
        "model",
        "sub_model",
        "base_url",
        "max_iterations",
        "max_depth",
        "mode",
        "strategy",
        "include",
        "exclude",
    ):
        value = getattr(args, name, None)
        if value is not None:
            values[name] = value
    values.update(parse_assignment(item) for item in args.set)
    return values


def _check_export(path: str | None) -> None:
    """A --export name or place that cannot work fails now, not after the run."""
    if not path:
        return
    infer_format(path)
    try:
        probe_writable(Path(path))
    except OSError as exc:
        raise ConfigError(
            f"Cannot write --export {path}: {unwritable(Path(path), exc)}",
            fix="Name a file in a directory you can write to",
        ) from exc


def _run(args: argparse.Namespace) -> int:
    _check_export(args.export)
    context, retriever = _sources(args.path, args.retriever)
    output = _schema_file(args.output) if args.output else None
    if args.replay:
        recording, over = Trajectory.load(args.replay), _overrides(args)
        session = replay_session(
            recording, args.question, context, over, output=output, retriever=retriever
        )
    else:
        config = RLM().with_overrides(_overrides(args))
        if not config.model:
            raise ConfigError(
                "No model is set",
                fix="Pass --model NAME, or set RLM_MODEL in the environment or ./.env",
                setting="RLM.model",
            )
        session = Session(args.question, context, config=config, output=output, retriever=retriever)
    return _drive(session, args)


def _sources(path: str | None, retriever: str | None) -> tuple[object, object]:
    """The context at PATH (- for standard input) and the --retriever opened; one is needed."""
    if path is None and retriever is None:
        raise ConfigError("No context", fix="Name a file, directory or glob, or pass --retriever")
    context = None if path is None else sys.stdin.read() if path == "-" else _existing(path)
    return context, None if retriever is None else open_spec(retriever)


def _schema_file(path: str) -> dict[str, Any]:
    """``--output``: the JSON schema in the file (checked as a schema when the session is made)."""
    try:
        schema = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            f"Cannot read the --output schema {path}: {exc.strerror or exc}",
            fix="Name a JSON schema file that exists",
        ) from exc
    except ValueError as exc:
        raise ConfigError(
            f"--output {path} is not JSON: {exc}",
            fix="Give a JSON schema file, such as "
            '{"type": "object", "properties": {"name": {"type": "string"}}}',
        ) from exc
    if not isinstance(schema, dict):
        raise ConfigError(
            f"--output {path} holds a {type(schema).__name__}, not a JSON schema object",
            fix='A JSON schema is an object, such as {"type": "array", "items": {"type": "string"}}',
        )
    return schema


def _replay(args: argparse.Namespace) -> int:
    _check_export(args.export)
    recording = import_trajectory(args.recording)
    if args.context is None and args.timeline is not None:
        return draw_timeline(recording, args.timeline)
    if args.context is None and args.retriever is None:
        raise ConfigError(
            "rlm-kernel replay needs CONTEXT: what the session was recorded on",
            fix="Name its file, directory or glob (- for standard input), or pass --timeline alone",
        )
    context, retriever = _sources(args.context, args.retriever)
    base = RLM().with_overrides(_overrides(args))
    # The recording decides models and limits; the endpoint is only for what it lacks.
    fallback = None
    if args.live_fallback:
        from .models.openai import OpenAIClient  # only now: the SDK is slow to import

        fallback = OpenAIClient(base)
    session = replay_session(
        recording,
        None,
        context,
        base=base,
        fallback=fallback,
        speed=args.speed,
        retriever=retriever,
    )
    code = _drive(session, args)
    if args.timeline is not None:
        draw_timeline(session.trajectory, args.timeline)  # the replay's own: its times, all cached
    return code


def _drive(session: Session, args: argparse.Namespace) -> int:
    """Run to the end with the live progress line on a terminal; export; report."""
    progress = None
    if not args.quiet and sys.stderr.isatty():
        from ._progress import ProgressLine

        progress = ProgressLine(session, sys.stderr)
    try:
        result = session.run()
    finally:
        if progress is not None:
            progress.close()
    failed = _export_after(result, args.export) if args.export else None
    code = _report(result)
    if failed is not None:
        print(f"rlm-kernel: {failed}", file=sys.stderr)
        return EXIT_CONFIG
    if isinstance(result.error, AutosaveError):
        print(f"rlm-kernel: {_kept_elsewhere(result, args.export)}", file=sys.stderr)
        return EXIT_CONFIG
    return code


def _export_after(result: Result, path: str) -> str | None:
    """Write --export; if that fails (the path went away during the run, a full disk), say so and
    where the trajectory is, so that nothing is lost: the autosave, or else a file saved now."""
    try:
        result.trajectory.export(path)
    except (OSError, RLMError) as exc:
        why = unwritable(Path(path), exc) if isinstance(exc, OSError) else str(exc).rstrip(".")
        kept = result.path if not isinstance(result.error, AutosaveError) else None
        if kept is None:  # no autosave (RLM.autosave = False), or a failed one: a file of its own
            kept = _save_aside(result)
        return (
            f"could not write --export {path}: {why}. The trajectory is in {kept}; write it again "
            f"with `rlm-kernel export {kept} {path}` once the path can be written"
        )
    return None


def _save_aside(result: Result) -> Path:
    """The whole trajectory (the session's records in memory) in a new file in the temporary
    directory, for when the autosave holds none or only part of it. Raises OSError."""
    handle, name = tempfile.mkstemp(prefix="rlm-trajectory-", suffix=".jsonl")
    os.close(handle)
    return result.trajectory.save(name)


def _kept_elsewhere(result: Result, export: str | None) -> str:
    """After a failed autosave (``result.error``): where the whole trajectory is instead, so that
    nothing is lost when this process ends: the --export file if it is a trajectory format, else a
    file saved now; or, if even that fails, how to run again so that it is kept."""
    if export and FORMATS[infer_format(export)].read is not None:
        kept: Path = Path(export)
    else:
        try:
            kept = _save_aside(result)
        except OSError as exc:
            return (
                f"the trajectory could not be saved anywhere else either ({exc.strerror or exc}); "
                "run again once there is room, with --set trajectory_dir=DIR on a disk that has "
                "it, or --export FILE.json"
            )
    return (
        f"the whole trajectory ({len(result.trajectory.records)} records) is in {kept} instead; "
        f"take it up again with rlm_kernel.resume('{kept}', context), or convert it with "
        f"`rlm-kernel export {kept} OUT`. Next time choose a disk with room: --set "
        "trajectory_dir=DIR"
    )


def _export(args: argparse.Namespace) -> int:
    trajectory = import_trajectory(args.recording)
    name = args.format or infer_format(args.out)
    options: dict[str, Any] = {}
    if args.include_children:
        options["include_children"] = True
    if args.all:
        options["only_successful"] = False
    flags = {"include_children": "--include-children", "only_successful": "--all"}
    for option in options:
        if option not in FORMATS[name].options:
            raise ConfigError(
                f"{flags[option]} does not apply to the {name} format",
                fix="It is for fine-tuning data: --format sft, or OUT ending in .sft.jsonl",
            )
    try:
        written = export(trajectory, args.out, name, **options)
    except OSError as exc:
        raise ConfigError(
            f"Cannot write {args.out}: {unwritable(Path(args.out), exc)}",
            fix="Name a file in a directory you can write to",
        ) from exc
    print(f"Wrote {written} ({name})", file=sys.stderr)
    return 0


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
    # A failed autosave: the answer stands, the file is partial.
    unsaved = result.error if isinstance(result.error, AutosaveError) else None
    where = f" · trajectory: {result.path}" if result.path and not unsaved else ""
    summary = (
        f"{result.reason} · {len(result.trajectory.iterations)} iterations · "
        f"{total.total_tokens:,} tokens in {total.calls} calls{where}"
    )
    if result.error is not None and unsaved is None:
        print(f"rlm-kernel: {result.error}", file=sys.stderr)
        print(summary, file=sys.stderr)
        # A replay that ran past its recording is a recording problem, not a failing endpoint.
        return EXIT_CONFIG if isinstance(result.error, ReplayMissError) else EXIT_MODEL
    if result.answer is not None:
        print(result.answer)
    if unsaved is not None:  # what failed; what to do here follows (_kept_elsewhere), not the API's
        print(f"rlm-kernel: {unsaved.what.rstrip('.')}.", file=sys.stderr)
    elif result.message and result.reason != "final":
        print(f"rlm-kernel: {result.message}", file=sys.stderr)
    print(summary, file=sys.stderr)
    if result.reason == "paused":  # interrupted with Ctrl-C
        return EXIT_INTERRUPTED
    return EXIT_ANSWERED if result.reason in ("final", "baseline") else EXIT_NO_ANSWER


def _install(args: argparse.Namespace) -> int:
    from .install import install

    prefix = sys.prefix if args.sys_prefix else args.prefix
    try:
        where = install(
            user=args.user,
            prefix=prefix,
            name=args.name,
            display_name=args.display_name,
            env=dict(args.env),
        )
    except PermissionError as exc:
        raise ConfigError(
            f"Cannot write the kernelspec: {exc}",
            fix="Install it for yourself with --user, or into this environment with --sys-prefix",
        ) from None
    print(f"Installed kernelspec {args.name} in {where}")
    return 0


def _main(argv: Sequence[str] | None = None) -> int:
    """The ``rlm-kernel`` command: run one subcommand and return its exit code.

    ``argv`` defaults to ``sys.argv[1:]``. An ``RLMError`` is printed as one paragraph and mapped to
    an exit code (3 for configuration, context or recording, 4 for the endpoint); see the module
    docstring for the codes.
    """
    args = _parser().parse_args(argv)
    commands = {
        "run": _run,
        "replay": _replay,
        "export": _export,
        "demo": _demo,
        "examples": _examples,
        "models": models_command,
        "index": index_command,
        "install": _install,
    }
    try:
        return commands[args.command](args)
    except (ConfigError, ContextError, TrajectoryError, RetrievalError) as exc:
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


def main(argv: Sequence[str] | None = None) -> int:
    """The ``rlm-kernel`` command (see ``_main``). Run as the command (``argv`` None), it exits once
    it has its answer: a non-daemon thread the model's code started would otherwise keep the process
    alive for good after ``sys.exit``, so it is left behind with a warning (``os._exit``)."""
    code = _main(argv)
    if argv is None:
        _exit_despite_stray_threads(code)
    return code


def _exit_despite_stray_threads(code: int) -> None:
    import atexit
    import threading
    import time

    give_up = time.monotonic() + 2.0  # our own (a sandbox's last dump) end well within this
    stray = []
    for thread in threading.enumerate():
        if thread is threading.main_thread() or thread.daemon:
            continue
        thread.join(max(give_up - time.monotonic(), 0.0))
        if thread.is_alive():
            stray.append(thread.name)
    if not stray:
        return
    print(
        f"rlm-kernel: {len(stray)} thread(s) started by the model's code were still running "
        f"({', '.join(stray[:5])}); exiting without waiting for them.",
        file=sys.stderr,
    )
    atexit._run_exitfuncs()  # what a normal exit runs (the sandbox pool's shutdown)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
