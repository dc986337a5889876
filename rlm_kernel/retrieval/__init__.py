"""Searching a collection without loading it: the retriever protocol, the embedded index, its builder.

Using one::

    idx = rlm_kernel.index("issues.jsonl", "issues.sqlite")  # or a directory, glob, list, dict
    idx.search("memory leak when streaming", k=10)  # [{"id", "score", "title", "snippet"}], best first
    idx.get("repo#1234")                             # one document's text
    open_retriever("issues.sqlite")                  # an index file, or a postgresql:// DSN (lazily)

``rlm-kernel index SOURCE PATH`` builds the same file from a shell. A build shows progress (tqdm: a
widget in a notebook, a line in a terminal), and a killed one resumes where its last checkpoint
stopped when run again; a complete index of the same source is returned at once.

The parts, for a backend (``postgres.py`` is the second):

- ``_protocol``: ``Retriever`` (``search(query, k=10, *, within=None) -> list[Hit]``, ``get(doc_id, *,
  within=None) -> str``, ``count()``, ``describe()``), ``Hit``, ``supports(r, "vector_search")``.
- ``_documents``: ``documents(source, rules=LoadRules(...), fields=Fields(id=, title=, text=),
  chunk_chars=, encoding=) -> DocumentStream``: ``read(cursor)`` yields ``(Doc(id, title, text, meta),
  cursor_after, units_done)`` from ``stream.start`` or a saved cursor (a JSON value); ``fingerprint``,
  ``label``, ``unit``/``total`` (progress), ``skipped``.
- ``_build``: ``build(stream, writer, rebuild=False, on_progress=None) -> BuildReport``; a backend
  implements ``IndexWriter`` (``checkpoint()``, ``start(fingerprint, source, cursor)``,
  ``add(docs)``, ``commit(cursor, documents)``, ``finish(documents)``, ``close()``); resume, the
  changed-source check and progress (``Progress``, ``ProgressBar``) are the builder's.
- ``sqlite``: ``SQLiteWriter(path)`` builds, ``SQLiteIndex(path)`` searches (FTS5, BM25, pooled
  read-only connections).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from .._files import LoadRules
from ..errors import RetrievalError
from ._build import BuildReport, IndexWriter, Progress, ProgressBar, build
from ._documents import DEFAULT_CHUNK_CHARS, Fields, documents
from ._protocol import Hit, Retriever, supports
from .sqlite import SQLiteIndex, SQLiteWriter

__all__ = [
    "BuildReport",
    "Hit",
    "Progress",
    "Retriever",
    "SQLiteIndex",
    "build_index",
    "index",
    "open_retriever",
    "shown",
    "supports",
]

_DSN_SCHEMES = ("postgresql://", "postgres://")
_SQLITE_MAGIC = b"SQLite format 3\0"


def _is_dsn(target: object) -> bool:
    return isinstance(target, str) and target.startswith(_DSN_SCHEMES)


def _postgres() -> Any:
    """The PostgreSQL backend, or a RetrievalError saying how to install it (psycopg is an extra)."""
    import importlib.util

    if importlib.util.find_spec("psycopg") is None:
        raise RetrievalError(
            "A postgresql:// index needs psycopg, which is not installed",
            fix="pip install 'rlm_kernel[postgres]'",
        )
    from . import postgres

    return postgres


def shown(target: str | os.PathLike[str]) -> str:
    """``target`` as messages and the CLI may show it: a path as it is, a DSN without its password."""
    if _is_dsn(target):
        return str(_postgres().safe_dsn(str(target)))
    return os.fspath(target)


def _writer_for(target: str | os.PathLike[str], backend: dict[str, Any]) -> IndexWriter:
    if _is_dsn(target):
        return cast(IndexWriter, _postgres().PostgresWriter.from_spec(str(target), **backend))
    if backend:
        raise RetrievalError(
            f"Unknown option(s) for an SQLite index: {', '.join(sorted(backend))}",
            fix="See help(rlm_kernel.index) for the options",
        )
    return SQLiteWriter(target)


def build_index(
    source: object,
    path: str | os.PathLike[str],
    *,
    rebuild: bool = False,
    progress: bool | Callable[[Progress], None] = True,
    include: str | Sequence[str] = (),
    exclude: str | Sequence[str] = (),
    gitignore: bool = True,
    default_skips: bool = True,
    max_file_mb: float | None = None,
    id_field: str = "id",
    title_field: str = "title",
    text_field: str | None = None,
    chunk_chars: int = DEFAULT_CHUNK_CHARS,
    encoding: str = "utf-8",
    **backend: Any,
) -> BuildReport:
    """``index`` without opening the result: what the build did (``BuildReport``). The CLI's."""
    rules = LoadRules(
        include=tuple([include] if isinstance(include, str) else include),
        exclude=tuple([exclude] if isinstance(exclude, str) else exclude),
        gitignore=gitignore,
        default_skips=default_skips,
        max_file_mb=max_file_mb,
        max_mb=None,  # no total cap: an index is how a collection too large for memory is searched
    )
    fields = Fields(id=id_field, title=title_field, text=text_field)
    stream = documents(
        source, rules=rules, fields=fields, chunk_chars=chunk_chars, encoding=encoding
    )
    bar = ProgressBar(f"indexing {Path(stream.label).name}") if progress is True else None
    on_progress = bar if bar is not None else progress if callable(progress) else None
    writer = _writer_for(path, backend)
    try:
        return build(stream, writer, rebuild=rebuild, on_progress=on_progress, target=shown(path))
    finally:
        if bar is not None:
            bar.close()
        writer.close()


def index(source: object, path: str | os.PathLike[str], **options: Any) -> Retriever:
    """Build (or resume, or reuse) a full-text index of ``source`` at ``path`` and return it.

    ``source`` is anything ``load_context`` accepts: a directory or glob (one document per text file,
    by the loader's rules: ``include=``, ``exclude=``, ``gitignore=``, ``default_skips=``,
    ``max_file_mb=``), a JSON Lines file (streamed; ``id_field``, ``title_field``, ``text_field``
    pick the record's fields), a JSON file, a text file (passages of about ``chunk_chars``), a list
    or a dict. ``path`` is an SQLite file: created, or resumed where a build was killed; a complete
    index of the same source is returned as it is, one of a changed source is refused unless
    ``rebuild=True``. ``progress=True`` (the default) shows a progress bar, ``False`` none, a
    callable receives each ``Progress``. The result is what ``retriever=`` takes.
    """
    build_index(source, path, **options)
    return open_retriever(path)


def open_retriever(spec: str | os.PathLike[str] | Retriever, **options: Any) -> Retriever:
    """A retriever from ``spec``: an index file (``rlm_kernel.index`` wrote it), a
    ``postgresql://`` DSN (the PostgreSQL backend, imported only then), or a retriever (returned
    as it is)."""
    if isinstance(spec, Retriever):
        return spec
    if _is_dsn(spec):
        PostgresRetriever = _postgres().PostgresRetriever

        return cast(Retriever, PostgresRetriever.from_spec(str(spec), **options))
    if not isinstance(spec, (str, os.PathLike)):
        raise RetrievalError(
            f"A {type(spec).__name__} is not a retriever",
            fix="Pass an index path, a postgresql:// DSN, or an object with search, get, count "
            "and describe",
        )
    path = Path(spec).expanduser()
    try:
        with path.open("rb") as f:
            head = f.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        head = b""
    except OSError as e:
        raise RetrievalError(f"Cannot read {str(path)!r}: {e.strerror}") from e
    if path.is_file() and head != _SQLITE_MAGIC:
        raise RetrievalError(
            f"{str(path)!r} is not an index (not an SQLite file)",
            fix="Build one from it: rlm_kernel.index(source, 'index.sqlite') or rlm-kernel index "
            "SOURCE index.sqlite, then pass the index",
        )
    if options:
        raise RetrievalError(f"Unknown option(s) for an SQLite index: {', '.join(sorted(options))}")
    return SQLiteIndex(path)
