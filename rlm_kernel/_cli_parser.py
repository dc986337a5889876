"""The ``rlm-kernel`` command line: its parser, every command's arguments and help (the commands
themselves are in ``cli``, ``_cli_index`` and ``_models_list``)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ._cli_index import add_index_command
from ._models_list import add_models_command
from ._version import __version__
from .exporters import FORMATS


def parser() -> argparse.ArgumentParser:
    """The ``rlm-kernel`` parser, with every command."""
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
