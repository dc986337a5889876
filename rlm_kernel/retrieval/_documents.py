"""Documents out of anything ``load_context`` accepts, streamed: what an index is built from.

``documents(source, ...)`` returns a ``DocumentStream``: ``stream.read(cursor)`` yields
``(Doc, cursor_after, units_done)`` from a resume point, so a killed build continues where its last
commit stopped. The stream's ``fingerprint`` names the source as it is now (paths, sizes, modification
times or a content hash, and the options that shape the documents): a rerun on a changed source is
told so instead of mixing two versions.

What each source becomes:

- A directory or glob: one document per text file the loader's rules admit (``_files``: ignore files,
  default skips, include/exclude, ``max_file_mb``), id and title its relative path. The files are
  read one at a time; binary and undecodable ones are skipped (counted). There is no total cap: an
  index is how a collection too large for memory is searched.
- A JSON Lines file (``.jsonl`` / ``.ndjson``): read line by line (a line's bytes at a time), one
  document per record; the cursor is a byte offset, so resuming seeks instead of re-reading.
- A JSON file: parsed whole (the standard library has no streaming parser; a collection too large
  for that belongs in JSON Lines), an array's items or an object's values as records.
- Any other text file: split into passages of about ``chunk_chars`` at blank lines, read line by line,
  id ``NAME:L<first>-L<last>`` (the lines it spans), so one long file is still searched by part.
- A list / tuple (records or strings), a dict (key -> text or record) or ``Documents`` in memory.

A record (a JSON object) gives its id from ``id_field`` (default ``id``; else its position: line number
in a JSONL file, index in a list, key in a dict), its title from ``title_field`` (default ``title``),
its text from ``text_field`` or the first of ``text``/``body``/``content`` holding a string (else the
record's JSON), and its other fields as metadata, which also lead the text as ``name: value`` lines
(so an issue's ``state: open`` is searched, and read by ``get``: the model sees no metadata apart).
A missing title is the text's first line, cut.
"""

from __future__ import annotations

import abc
import codecs
import glob
import hashlib
import itertools
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from .. import _stdjson as json
from .._files import FileEntry, LoadRules, PathRules, read_text, walk_files
from ..errors import ContextError

__all__ = ["Doc", "DocumentStream", "documents"]

TEXT_FIELDS = ("text", "body", "content")
TITLE_CHARS = 120  # a title made from the text's first line is cut here
DEFAULT_CHUNK_CHARS = 2000
_JSONL = (".jsonl", ".ndjson")
_READ = 1 << 20


@dataclass(frozen=True, slots=True)
class Doc:
    """One document to index: a unique id, a title, the text searched, optional metadata."""

    id: str
    title: str
    text: str
    meta: dict[str, Any] | None = None


@dataclass(frozen=True)
class Fields:
    """Which record fields give a document's id, title and text (``text=None``: the usual names)."""

    id: str = "id"
    title: str = "title"
    text: str | None = None


class DocumentStream(abc.ABC):
    """A source's documents from a cursor on (one subclass per kind of source); ``unit``/``total`` say what progress counts."""

    label: str  # what it came from, for messages and describe()
    unit: str = "documents"  # what units_done counts: "documents", "files" or "bytes"
    total: int | None = None  # units in all, when known before reading
    skipped: int = 0  # files left out while reading (binary, undecodable, unreadable)
    # The cursor before anything is read (a JSON value: the checkpoint stores it).
    start: Any = 0

    def __init__(self, label: str, fingerprint_parts: Mapping[str, Any]) -> None:
        self.label = label
        self._parts = dict(fingerprint_parts)

    @property
    def fingerprint(self) -> str:
        """The source as it is now, and the options: equal fingerprints, same documents."""
        return hashlib.sha256(json.dumps(self._parts, sort_keys=True).encode()).hexdigest()

    @abc.abstractmethod
    def read(self, cursor: Any) -> Iterator[tuple[Doc, Any, int]]:
        """``(doc, cursor after it, units done)`` from ``cursor`` (``start``: from the beginning)."""


def first_line(text: str) -> str:
    """A title for text that has none: its first non-blank line, cut to ``TITLE_CHARS``."""
    for line in text.splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1] + "…"
    return ""


def _decoded(decode: Callable[..., str], label: str, line: int, encoding: str, *args: bytes) -> str:
    """``decode(*args)``, or a ContextError naming the line that is not ``encoding`` text."""
    try:
        return decode(*args) if args else decode(encoding, "strict")
    except UnicodeDecodeError as e:
        raise ContextError(
            f"{label!r}, line {line}, is not {encoding} text (bad byte at column {e.start + 1})",
            fix="Pass the file's encoding (encoding=..., rlm-kernel index --encoding ...), or fix "
            "the line; a build resumes from its last checkpoint when run again",
        ) from None


def record_doc(record: object, default_id: str, fields: Fields) -> Doc:
    """A record (dict, str or other JSON value) as a document."""
    if isinstance(record, str):
        return Doc(default_id, first_line(record), record)
    if not isinstance(record, dict):
        text = json.dumps(record, ensure_ascii=False)
        return Doc(default_id, first_line(text), text)
    rest = dict(record)
    raw_id = rest.pop(fields.id, None)
    doc_id = default_id if raw_id is None or raw_id == "" else str(raw_id)
    title = rest.pop(fields.title, None)
    names = (fields.text,) if fields.text else TEXT_FIELDS
    body: str | None = next((rest.pop(n) for n in names if isinstance(rest.get(n), str)), None)
    if body is None:
        if fields.text and fields.text in rest:
            raise ContextError(
                f"Record {doc_id!r}: field {fields.text!r} is a {type(rest[fields.text]).__name__}, "
                "not text",
                fix="Name a field holding a string (text_field=...)",
            )
        body, rest = json.dumps(record, ensure_ascii=False), {}
    title = first_line(body) if title is None else str(title)
    if rest:  # the other fields lead the text: searched, and read by get() (an issue's state, repo)
        body = "".join(f"{k}: {_field_text(v)}\n" for k, v in rest.items()) + "\n" + body
    return Doc(doc_id, title, body, rest or None)


def _field_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return ", ".join(map(str, value))
    return json.dumps(value, ensure_ascii=False, default=str)


class MemoryStream(DocumentStream):
    """A list, tuple or dict already in memory; the cursor is the position in it."""

    def __init__(self, value: list[Any] | Mapping[str, Any], fields: Fields) -> None:
        self.value = value
        self.fields = fields
        self.total = len(value)
        h = hashlib.sha256()
        for key, item in self._items():
            h.update(json.dumps([key, item], ensure_ascii=False, default=str).encode())
        kind = type(value).__name__
        super().__init__(f"a {kind} of {len(value):,}", {"memory": h.hexdigest(), **vars(fields)})

    def _items(self) -> Iterator[tuple[str, Any]]:
        if isinstance(self.value, Mapping):
            return ((str(k), v) for k, v in self.value.items())
        return ((str(i), v) for i, v in enumerate(self.value))

    def read(self, cursor: Any) -> Iterator[tuple[Doc, Any, int]]:
        for n, (key, item) in enumerate(itertools.islice(self._items(), cursor, None), cursor + 1):
            if isinstance(self.value, Mapping) and isinstance(item, str):
                yield Doc(key, key, item), n, n
            else:
                yield record_doc(item, key, self.fields), n, n


class FilesStream(DocumentStream):
    """A directory's or glob's files, one document each; the cursor counts the files passed.

    ``entries`` lists the files anew on each call, in a fixed order: once for the fingerprint (a
    stat a file, nothing read), then from the cursor on while reading. Nothing is kept per file, so
    a tree of a million files costs what one does.
    """

    unit = "files"

    def __init__(
        self,
        label: str,
        entries: Callable[[], Iterable[FileEntry]],
        encoding: str,
        parts: dict[str, Any],
    ) -> None:
        self.entries = entries
        self.encoding = encoding
        h = hashlib.sha256()
        count = 0
        for entry in entries():
            try:
                mtime = entry.path.stat().st_mtime_ns
            except OSError:
                mtime = 0
            h.update(f"{entry.rel}\0{entry.size}\0{mtime}\n".encode())
            count += 1
        self.total = count
        super().__init__(label, {**parts, "files": h.hexdigest(), "encoding": encoding})

    def read(self, cursor: Any) -> Iterator[tuple[Doc, Any, int]]:
        files = itertools.islice(self.entries(), cursor, None)
        for n, entry in enumerate(files, cursor + 1):
            try:
                text, _ = read_text(entry.path, self.encoding)
            except OSError:
                text = None
            if text is None:
                self.skipped += 1
                continue
            yield Doc(entry.rel, entry.rel, text), n, n


class JSONLinesStream(DocumentStream):
    """A JSON Lines file, a record a line; the cursor is ``[byte offset, line number]``."""

    unit = "bytes"
    start: Any = (0, 0)

    def __init__(self, path: Path, label: str, fields: Fields, encoding: str) -> None:
        self.path, self.fields, self.encoding = path, fields, encoding
        info = path.stat()
        self.total = info.st_size
        parts = {"file": str(path.resolve()), "size": info.st_size, "mtime": info.st_mtime_ns}
        super().__init__(label, {**parts, **vars(fields), "encoding": encoding})

    def read(self, cursor: Any) -> Iterator[tuple[Doc, Any, int]]:
        offset, line_no = cursor
        with self.path.open("rb") as f:
            f.seek(offset)
            for raw in f:
                offset += len(raw)
                line_no += 1
                line = _decoded(raw.decode, self.label, line_no, self.encoding).removeprefix(
                    "\ufeff"
                )
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ContextError(
                        f"{self.label!r}, line {line_no}, is not valid JSON: {e.msg} "
                        f"(column {e.colno})",
                        fix="Fix that line (the index keeps what was built: rerun to resume)",
                    ) from e
                yield record_doc(record, str(line_no), self.fields), [offset, line_no], offset


class TextStream(DocumentStream):
    """A text file in passages of about ``chunk_chars``; the cursor is ``[byte offset, line]``."""

    unit = "bytes"
    start: Any = (0, 0)

    def __init__(self, path: Path, label: str, chunk_chars: int, encoding: str) -> None:
        self.path, self.chunk_chars, self.encoding = path, chunk_chars, encoding
        info = path.stat()
        self.total = info.st_size
        self.name = path.name
        parts = {"file": str(path.resolve()), "size": info.st_size, "mtime": info.st_mtime_ns}
        super().__init__(label, {**parts, "chunk_chars": chunk_chars, "encoding": encoding})

    def read(self, cursor: Any) -> Iterator[tuple[Doc, Any, int]]:
        offset, line_no = cursor
        lines: list[str] = []
        size, first = 0, line_no + 1
        decoder = codecs.getincrementaldecoder(self.encoding)()
        with self.path.open("rb") as f:
            f.seek(offset)
            for raw in f:
                offset += len(raw)
                line_no += 1
                line = _decoded(decoder.decode, self.label, line_no, self.encoding, raw)
                lines.append(line)
                size += len(line)
                # A passage ends at a blank line once it is long enough, or anywhere at twice that.
                if (size >= self.chunk_chars and not line.strip()) or size >= 2 * self.chunk_chars:
                    yield from self._passage(lines, first, line_no, offset)
                    lines, size, first = [], 0, line_no + 1
            lines.append(decoder.decode(b"", final=True))
            yield from self._passage(lines, first, line_no, offset)

    def _passage(
        self, lines: list[str], first: int, last: int, offset: int
    ) -> Iterator[tuple[Doc, Any, int]]:
        text = "".join(lines)
        if text.strip():
            doc_id = f"{self.name}:L{first}-L{last}"
            yield Doc(doc_id, f"{self.name} lines {first}-{last}", text), [offset, last], offset


def documents(
    source: object,
    *,
    rules: LoadRules | None = None,
    fields: Fields | None = None,
    chunk_chars: int = DEFAULT_CHUNK_CHARS,
    encoding: str = "utf-8",
) -> DocumentStream:
    """The documents of ``source`` (a path, glob, list, dict or ``Documents``) as a stream."""
    fields = fields or Fields()
    rules = rules or LoadRules()
    if chunk_chars < 100:
        raise ContextError(f"chunk_chars={chunk_chars} is too small", fix="Pass 100 or more")
    if isinstance(source, tuple):
        source = list(source)
    if isinstance(source, (list, Mapping)):
        if not source:
            raise ContextError("The collection is empty: nothing to index", fix="Pass documents")
        return MemoryStream(source, fields)
    if not isinstance(source, (str, os.PathLike)):
        raise ContextError(
            f"A {type(source).__name__} cannot be indexed",
            fix="Pass a directory, a glob, a .jsonl/.json/text file, a list or a dict",
        )
    label = os.fsdecode(source)
    path = Path(label).expanduser()
    parts = {"rules": {**rules.options(), "max_mb": None}, "source": label}
    if path.is_dir():
        parts["dir"] = str(path.resolve())
        return FilesStream(label, lambda: iter(walk_files(path, rules)), encoding, parts)
    if path.is_file():
        if path.suffix.lower() in _JSONL:
            return JSONLinesStream(path, label, fields, encoding)
        if path.suffix.lower() == ".json":
            from .._context import load_context

            value = load_context(path, encoding=encoding, max_mb=None)
            if isinstance(value, str):
                value = [value]
            stream = MemoryStream(value, fields)
            stream.label = label
            return stream
        return TextStream(path, label, chunk_chars, encoding)
    if isinstance(source, str) and glob.has_magic(source):
        return _glob_stream(source, encoding, rules, parts)
    fix = f"Check the spelling (relative paths start at {os.getcwd()})"
    raise ContextError(f"Nothing to index at {label!r}: no such file or directory", fix=fix)


def _glob_stream(
    pattern: str, encoding: str, rules: LoadRules, parts: dict[str, Any]
) -> FilesStream:
    fixed = list(itertools.takewhile(lambda p: not glob.has_magic(p), PurePath(pattern).parts))
    base = os.path.join(*fixed) if fixed else os.curdir
    check = PathRules(base, rules)
    files = []
    for match in sorted(glob.iglob(pattern, recursive=True)):
        rel = PurePath(os.path.relpath(match, base)).as_posix()
        if os.path.isfile(match) and check.reason(rel) is None:
            files.append(FileEntry(rel, Path(match), os.path.getsize(match)))
    if not files:
        fix = f"Check it (relative patterns start at {os.getcwd()}); ** recurses: 'src/**/*.py'"
        raise ContextError(f"The glob {pattern!r} matches no files to index", fix=fix)
    return FilesStream(pattern, lambda: iter(files), encoding, parts)
