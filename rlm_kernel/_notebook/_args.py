"""Command-line parsing for ``%rlm``: shlex (quotes handled), one parser per subcommand, and errors
as IPython ``UsageError`` (a short message, never a traceback)."""

from __future__ import annotations

import argparse
import difflib
import io
import os
import shlex
from typing import Any, NoReturn

from IPython.core.error import UsageError

from .._config import parse_assignment
from ..errors import ConfigError

SUBCOMMANDS = (
    "pause",
    "resume",
    "step",
    "stop",
    "status",
    "list",
    "export",
    "replay",
    "edit",
    "models",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}. `%rlm?` shows the full help.")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise UsageError(message or f"{self.prog}: see `%rlm?`")


def _start_parser(prog: str, *, question: bool, context: bool) -> _Parser:
    p = _Parser(prog=prog, add_help=False)
    if question:
        p.add_argument("question")
    if context:
        p.add_argument("context", nargs="?")
    p.add_argument("--model")
    p.add_argument("--sub-model")
    p.add_argument("--max-iterations", type=int)
    p.add_argument("--max-depth", type=int)
    p.add_argument("--executor")
    p.add_argument("--mode")
    p.add_argument("--strategy", help="RLM.strategy: search-first, map-reduce, verify, or tips")
    p.add_argument("--tools", help="comma-separated names of functions in the notebook")
    p.add_argument("--retriever", help="a retriever in the notebook, or an index path or DSN")
    p.add_argument(
        "--sub-tools",
        help="comma-separated names of functions or rlm_kernel.MCPServer specs in the notebook, "
        "for the sub-models of llm_query / llm_batch",
    )
    p.add_argument(
        "--output", help="the answer's type: a class, type or JSON schema in the notebook"
    )
    # A directory context's rules (RLM.include / RLM.exclude); repeat a flag for several globs.
    p.add_argument("--include", action="append", metavar="GLOB")
    p.add_argument("--exclude", action="append", metavar="GLOB")
    p.add_argument("--step", action="store_true")
    p.add_argument("--continue", dest="follow_up", action="store_true")
    p.add_argument("--session")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    return p


def split(line: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"%rlm: cannot parse {line!r}: {exc}. Check the quotes.") from exc


def is_subcommand(line: str, tokens: list[str]) -> bool:
    """``%rlm status`` is a subcommand; ``%rlm "status" docs`` asks a question."""
    return bool(tokens) and tokens[0] in SUBCOMMANDS and not line.lstrip().startswith(("'", '"'))


def parse_start(
    tokens: list[str], *, line: str = "", question_from_body: bool = False
) -> argparse.Namespace:
    if question_from_body:
        args = _start_parser("%%rlm", question=False, context=True).parse_args(tokens)
    else:
        if len(tokens) == 1 and not tokens[0].startswith("-"):
            close = difflib.get_close_matches(tokens[0], SUBCOMMANDS, n=1, cutoff=0.6)
            if close:
                raise UsageError(
                    f"%rlm: unknown subcommand {tokens[0]!r}. Did you mean `%rlm {close[0]}`?"
                )
        args = _start_parser("%rlm", question=True, context=True).parse_args(tokens)
    args.context = _as_written(args.context, line)
    _check_follow_up(args)
    return args


def _as_written(context: str | None, line: str) -> str | None:
    """The context expression with its own quotes: shlex turns ``docs["a b"]`` into ``docs[a b]``."""
    if context is None or not line:
        return context
    stream = io.StringIO(line)
    lexer = shlex.shlex(stream, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    start = 0
    try:
        while (token := lexer.get_token()) not in (lexer.eof, None):
            end = stream.tell()
            raw, start = line[start:end].strip(), end
            quoted = len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\""
            if token == context and not quoted:
                return raw
    except ValueError:  # split() already accepted the line; be safe anyway
        pass
    return context


_NOT_FOR_FOLLOW_UP = {
    "context": "a context",
    "step": "--step",
    "model": "--model",
    "sub_model": "--sub-model",
    "max_iterations": "--max-iterations",
    "max_depth": "--max-depth",
    "executor": "--executor",
    "mode": "--mode",
    "strategy": "--strategy",
    "tools": "--tools",
    "retriever": "--retriever",
    "sub_tools": "--sub-tools",
    "output": "--output",
    "include": "--include",
    "exclude": "--exclude",
    "set": "--set",
}


def _check_follow_up(args: argparse.Namespace) -> None:
    if not args.follow_up:
        if args.session is not None:
            raise UsageError(
                "%rlm: --session names the session a follow-up (--continue) goes to; "
                'to ask a new question, leave it out: %rlm "question" ctx'
            )
        return
    given = [flag for name, flag in _NOT_FOR_FOLLOW_UP.items() if getattr(args, name, None)]
    if given:
        raise UsageError(
            f"%rlm --continue asks the same session a new question, on its context and with its "
            f"settings: {', '.join(given)} cannot be given with it (a new %rlm starts a session with others)"
        )


def parse_sub(name: str, tokens: list[str]) -> argparse.Namespace:
    p = _Parser(prog=f"%rlm {name}", add_help=False)
    if name in ("pause", "resume", "step", "stop", "status"):
        # With ``resume --from PATH`` the positional is the context variable, not a session.
        p.add_argument("session", nargs="?")
    if name == "resume":
        p.add_argument("--from", dest="source", metavar="PATH")
        p.add_argument("--retriever")  # what a recording that searched searches again
    elif name == "export":
        p.add_argument("path")
        p.add_argument("--format")
        p.add_argument("--session")
    elif name == "replay":
        p.add_argument("path")
        p.add_argument("context", nargs="?")
        p.add_argument("--speed", type=float)
        p.add_argument("--live-fallback", action="store_true")
        p.add_argument("--step", action="store_true")
        p.add_argument("--output")  # a typed recording's class, so the value is its instance
        p.add_argument("--retriever")  # what a recording that searched searches again
    elif name == "edit":
        p.add_argument("iteration", type=int)
        p.add_argument("--session")
    elif name == "models":
        p.add_argument("--model")
        p.add_argument("--sub-model")
        p.add_argument("--base-url")
    return p.parse_args(tokens)


def refuse_load_flags(args: argparse.Namespace, context: object) -> None:
    """``--include`` / ``--exclude`` choose the files of a path; a context already loaded (a
    ``Documents``, a str of text) has no files left to choose, and must not seem filtered."""
    given = [f"--{name}" for name in ("include", "exclude") if getattr(args, name, None)]
    if not given or isinstance(context, os.PathLike):
        return
    if isinstance(context, str) and len(context) <= 4096 and "\n" not in context:
        return  # a path or a glob: load_context applies the rules (or says it names nothing)
    raise UsageError(
        f"%rlm: {' and '.join(given)} choose the files of a directory or glob, but the context "
        f"{args.context!r} is a {type(context).__name__} already loaded. Name the path instead "
        f"(a variable holding it, or a quoted literal: %rlm \"...\" \"'repo/'\" --include '*.py'), "
        "or load it with rlm_kernel.load_context(path, include=[...])"
    )


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Settings given as options of one %rlm call."""
    values: dict[str, Any] = {}
    for name in (
        "model",
        "sub_model",
        "max_iterations",
        "max_depth",
        "executor",
        "mode",
        "strategy",
        "include",
        "exclude",
    ):
        value = getattr(args, name, None)
        if value is not None:
            values[name] = value
    for item in getattr(args, "set", []):
        try:
            key, value = parse_assignment(item)
        except ConfigError as exc:
            raise UsageError(f"%rlm: {exc}") from None
        values[key] = value
    return values
