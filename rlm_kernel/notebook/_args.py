"""Command-line parsing for ``%rlm``: shlex (quotes handled), one parser per subcommand, and errors
as IPython ``UsageError`` (a short message, never a traceback)."""

from __future__ import annotations

import argparse
import difflib
import shlex
from typing import Any, NoReturn

from IPython.core.error import UsageError

from .._config import parse_assignment
from .._errors import ConfigError

SUBCOMMANDS = ("pause", "resume", "step", "stop", "status", "list", "export", "replay", "edit")


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
    p.add_argument("--tools", help="comma-separated names of functions in the notebook")
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


def parse_start(tokens: list[str], *, question_from_body: bool = False) -> argparse.Namespace:
    if question_from_body:
        return _start_parser("%%rlm", question=False, context=True).parse_args(tokens)
    if len(tokens) == 1 and not tokens[0].startswith("-"):
        close = difflib.get_close_matches(tokens[0], SUBCOMMANDS, n=1, cutoff=0.6)
        if close:
            raise UsageError(
                f"%rlm: unknown subcommand {tokens[0]!r}. Did you mean `%rlm {close[0]}`?"
            )
    return _start_parser("%rlm", question=True, context=True).parse_args(tokens)


def parse_sub(name: str, tokens: list[str]) -> argparse.Namespace:
    p = _Parser(prog=f"%rlm {name}", add_help=False)
    if name in ("pause", "resume", "step", "stop", "status"):
        # With ``resume --from PATH`` the positional is the context variable, not a session.
        p.add_argument("session", nargs="?")
    if name == "resume":
        p.add_argument("--from", dest="source", metavar="PATH")
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
    elif name == "edit":
        p.add_argument("iteration", type=int)
        p.add_argument("--session")
    return p.parse_args(tokens)


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Settings given as options of one %rlm call."""
    values: dict[str, Any] = {}
    for name in ("model", "sub_model", "max_iterations", "max_depth", "executor", "mode"):
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
