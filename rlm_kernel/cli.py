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
from ._cli_index import index_command
from ._cli_parser import parser
from ._config import RLM, parse_assignment
from ._models_list import models_command
from ._records import Result
from ._replay import replay_session
from ._retrieval_tools import open_spec
from ._session import Session
from ._timeline_view import draw_timeline
from ._trajectory import Trajectory, probe_writable, unwritable
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
    args = parser().parse_args(argv)
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
