"""Building an index from a document stream, for any backend: batches, checkpoints, resume, progress.

The builder is backend-agnostic: a backend supplies an ``IndexWriter`` and the builder feeds it::

    stream = documents(source, rules=..., fields=...)      # _documents: any source load_context takes
    report = build(stream, writer, rebuild=False, on_progress=ProgressBar())

    class IndexWriter(Protocol):             # what a backend implements (SQLite: sqlite.SQLiteWriter)
        def checkpoint(self) -> Checkpoint | None   # the last committed state; None: nothing built
        def start(self, fingerprint, source, cursor) -> None   # empty the index, a fresh checkpoint
        def add(self, docs) -> None          # a batch, inside the open transaction
        def commit(self, cursor, documents) -> None   # the batch and the checkpoint, atomically
        def finish(self, documents) -> None  # mark the build complete, compact the index
        def close(self) -> None              # an open (uncommitted) batch is rolled back

Resume: the documents of a batch and the checkpoint after them (the stream's cursor, the count) are
committed in one transaction, so a build killed at any instant leaves the index as of its last
checkpoint, and a rerun continues from that cursor: nothing twice, nothing missed. A rerun compares
the stream's fingerprint with the one the index was started from: equal and complete, nothing to do;
equal and incomplete, resume; different (another source, or this one changed), refuse with the fix,
``rebuild=True`` (``--rebuild``), since mixing two versions of a collection would answer from neither.
A document id seen twice is an error of the source, named with its id (the backend's unique key).

Memory: a batch at a time (``batch_docs`` documents or ``batch_chars`` characters, whichever comes
first); what came before is on disk.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import RetrievalError
from ._documents import Doc, DocumentStream

if TYPE_CHECKING:
    from tqdm import tqdm

__all__ = [
    "BuildReport",
    "Checkpoint",
    "IndexWriter",
    "Progress",
    "ProgressBar",
    "build",
]

BATCH_DOCS = 2000
BATCH_CHARS = 8_000_000  # characters per transaction: bounds the memory a batch holds


@dataclass(frozen=True)
class Checkpoint:
    """What an index records about its build, committed with each batch."""

    fingerprint: str  # the stream's, when the build started
    source: str  # the stream's label
    cursor: Any  # where the next document starts (the stream's cursor, a JSON value)
    documents: int  # documents in the index
    complete: bool  # the whole stream is in


class IndexWriter(Protocol):
    """A backend's side of a build (see the module docstring)."""

    def checkpoint(self) -> Checkpoint | None:
        """The last committed checkpoint; None when no build was ever started here."""
        ...

    def start(self, fingerprint: str, source: str, cursor: Any) -> None:
        """Empty the index and commit a fresh checkpoint (no documents, ``cursor`` the start)."""
        ...

    def add(self, docs: Sequence[Doc]) -> None:
        """Write a batch inside the open transaction; a duplicate id raises ``RetrievalError``."""
        ...

    def commit(self, cursor: Any, documents: int) -> None:
        """Commit the batches added since the last commit with the checkpoint after them."""
        ...

    def finish(self, documents: int) -> None:
        """Mark the build complete (and compact the index where the backend can)."""
        ...

    def close(self) -> None:
        """Let go of the backend; an uncommitted batch is lost (the checkpoint stays before it)."""
        ...


@dataclass(frozen=True)
class Progress:
    """How far a build is: sent to ``on_progress`` after each committed batch and at the end."""

    documents: int  # documents in the index now
    done: int  # units of the stream passed (its ``unit``: documents, files or bytes)
    total: int | None  # units in all, when known
    unit: str
    seconds: float  # since this run started
    resumed: int  # documents that were already in the index when this run started
    finished: bool = False


@dataclass(frozen=True)
class BuildReport:
    """What a build did."""

    documents: int  # documents in the index
    added: int  # documents this run added
    resumed: int  # documents the index held when this run started (0: a fresh build)
    skipped: int  # files the stream left out while reading (binary, undecodable)
    seconds: float
    up_to_date: bool  # the index was complete for this very source: nothing was done


def build(
    stream: DocumentStream,
    writer: IndexWriter,
    *,
    rebuild: bool = False,
    batch_docs: int = BATCH_DOCS,
    batch_chars: int = BATCH_CHARS,
    on_progress: Callable[[Progress], None] | None = None,
    target: str = "the index",
) -> BuildReport:
    """Feed ``stream`` into ``writer`` in committed batches, resuming a build the writer holds.

    ``target`` names the index in messages (its path, or a DSN without its password).
    """
    began = time.monotonic()
    fingerprint = stream.fingerprint
    state = writer.checkpoint()
    if state is not None and not rebuild and state.fingerprint != fingerprint:
        raise RetrievalError(
            f"{target} was built from {state.source!r} as it was then ({state.documents:,} "
            f"documents{'' if state.complete else ', unfinished'}); {stream.label!r} is another "
            "source, or that one has changed since",
            fix="Rebuild it from this source (rebuild=True, rlm-kernel index --rebuild), or give "
            "the index another path",
        )
    if state is not None and not rebuild and state.complete:
        seconds = time.monotonic() - began
        if on_progress is not None:
            done = stream.total or 0
            on_progress(Progress(state.documents, done, stream.total, stream.unit, seconds,
                                 state.documents, finished=True))  # fmt: skip
        return BuildReport(state.documents, 0, state.documents, 0, seconds, up_to_date=True)
    if state is None or rebuild:
        writer.start(fingerprint, stream.label, stream.start)
        cursor, count = stream.start, 0
    else:
        cursor, count = state.cursor, state.documents
    resumed = count
    batch: list[Doc] = []
    chars = done = 0

    def commit(at: Any) -> None:
        nonlocal batch, chars, count
        if batch:
            writer.add(batch)
            count += len(batch)
        writer.commit(at, count)
        batch, chars = [], 0
        if on_progress is not None:
            seconds = time.monotonic() - began
            on_progress(Progress(count, done, stream.total, stream.unit, seconds, resumed))

    for doc, after, units in stream.read(cursor):
        batch.append(doc)
        cursor, done = after, units
        chars += len(doc.text) + len(doc.title)
        if len(batch) >= batch_docs or chars >= batch_chars:
            commit(cursor)
    commit(cursor)
    writer.finish(count)
    seconds = time.monotonic() - began
    if on_progress is not None:
        on_progress(Progress(count, done, stream.total, stream.unit, seconds, resumed, True))
    return BuildReport(count, count - resumed, resumed, stream.skipped, seconds, up_to_date=False)


class ProgressBar:
    """``on_progress`` drawn by tqdm: a widget in a notebook (``tqdm.auto``), a line in a terminal.

    ``file`` (a terminal's stderr) picks the plain text bar; without it ``tqdm.auto`` chooses.
    """

    def __init__(self, label: str = "indexing", *, file: Any = None, disable: bool = False) -> None:
        self.label = label
        self.file = file
        self.disable = disable
        self._bar: tqdm[Any] | None = None

    def __call__(self, p: Progress) -> None:
        """Move the bar to ``p``; closes it when the build finished."""
        if self._bar is None:
            if self.file is not None:
                from tqdm import tqdm as bar
            else:
                from tqdm.auto import tqdm as bar
            scale = p.unit == "bytes"
            self._bar = bar(
                total=p.total,
                initial=p.done,
                unit="B" if scale else f" {p.unit}",
                unit_scale=scale,
                unit_divisor=1024 if scale else 1000,
                desc=self.label,
                file=self.file,
                disable=self.disable,
                dynamic_ncols=True,
                mininterval=0.5,
            )
        self._bar.n = p.done
        self._bar.set_postfix_str(f"{p.documents:,} docs", refresh=False)
        self._bar.refresh()
        if p.finished:
            self.close()

    def close(self) -> None:
        """End the bar (an interrupted build leaves it where it stopped)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
