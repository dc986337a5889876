"""``rlm-kernel index SOURCE PATH``: build (or resume) a full-text index from a shell.

The command is ``rlm_kernel.retrieval.build_index`` with its options as flags: progress on standard
error while it runs (tqdm's line; ``--quiet`` for none), then one line on standard output saying what
it did: documents, time, size on disk. Interrupted (Ctrl-C, a kill), it keeps what it committed, and
the same command run again resumes there.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

__all__ = ["add_index_command", "index_command"]


def add_index_command(commands: Any) -> None:
    """The ``index`` subcommand's parser, added to ``rlm-kernel``'s subcommands."""
    p = commands.add_parser(
        "index",
        help="build a full-text index of a collection (resumable)",
        description="Build a full-text search index (SQLite FTS5, one file) of SOURCE at PATH, for "
        "run(retriever=...). SOURCE: a directory, glob, JSON Lines, JSON or text file. Rerun after "
        "an interruption to resume; a complete index of the same source is left as it is.",
    )
    p.add_argument("source", help="directory, glob, .jsonl/.ndjson, .json or text file")
    p.add_argument("path", help="the index file to write (e.g. issues.sqlite)")
    p.add_argument("--include", action="append", default=[], metavar="GLOB",
                   help="index only matching files (repeatable)")  # fmt: skip
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                   help="leave matching files out (repeatable)")  # fmt: skip
    p.add_argument("--no-gitignore", dest="gitignore", action="store_false",
                   help="index files .gitignore / .ignore leave out")  # fmt: skip
    p.add_argument("--no-default-skips", dest="default_skips", action="store_false",
                   help="index caches, environments, dependencies, build output too")  # fmt: skip
    p.add_argument("--max-file-mb", type=float, default=None, metavar="MB",
                   help="skip larger files")  # fmt: skip
    p.add_argument("--id-field", default="id", help="a record's id field (default: id)")
    p.add_argument("--title-field", default="title", help="a record's title field (default: title)")
    p.add_argument("--text-field", default=None,
                   help="a record's text field (default: text, body or content)")  # fmt: skip
    p.add_argument("--chunk-chars", type=int, default=None, metavar="N",
                   help="passage length for a text file")  # fmt: skip
    p.add_argument("--encoding", default="utf-8")
    p.add_argument("--rebuild", action="store_true", help="start over (a changed source needs it)")
    p.add_argument("--quiet", action="store_true", help="no progress line")


def index_command(args: argparse.Namespace) -> int:
    """Run ``rlm-kernel index``: build, then say what was built. Errors propagate to the CLI's
    handler (a ``RetrievalError`` or ``ContextError`` is exit code 3)."""
    from .retrieval import build_index, shown
    from .retrieval._build import ProgressBar

    options: dict[str, Any] = {}
    if args.chunk_chars is not None:
        options["chunk_chars"] = args.chunk_chars
    bar = (
        None
        if args.quiet
        else ProgressBar(f"indexing {os.path.basename(args.source)}", file=sys.stderr)
    )
    try:
        report = build_index(
            args.source,
            args.path,
            rebuild=args.rebuild,
            progress=bar if bar is not None else False,
            include=args.include,
            exclude=args.exclude,
            gitignore=args.gitignore,
            default_skips=args.default_skips,
            max_file_mb=args.max_file_mb,
            id_field=args.id_field,
            title_field=args.title_field,
            text_field=args.text_field,
            encoding=args.encoding,
            **options,
        )
    finally:
        if bar is not None:
            bar.close()
    where = shown(args.path)  # a DSN without its password
    size = _size(args.path)
    on_disk = f", {size / (1 << 20):,.1f} MB on disk" if size is not None else ""
    if report.up_to_date:
        print(f"{where} is up to date: {report.documents:,} documents{on_disk}")
        return 0
    resumed = f", resumed after {report.resumed:,}" if report.resumed else ""
    skipped = f", {report.skipped:,} files skipped (binary or not text)" if report.skipped else ""
    print(
        f"Indexed {report.documents:,} documents ({report.added:,} added{resumed}{skipped}) in "
        f"{report.seconds:,.1f} s: {where}{on_disk}"
    )
    return 0


def _size(path: str) -> int | None:
    try:
        return os.path.getsize(path)
    except OSError:
        return None  # not a file (a postgresql:// DSN)
