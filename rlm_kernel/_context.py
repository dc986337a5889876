"""Loading the context ``P`` and describing it without showing it.

``load_context`` turns what a person points at (text, a file, a directory, a glob, JSON, a list, a
dict) into the value bound to ``P``. It never copies a value that is already usable: contexts can be
hundreds of megabytes. ``describe_context`` computes the metadata the root model sees in place of
``P``: type, size, per-document lengths, a short prefix and a content hash.
"""

from __future__ import annotations

import codecs
import contextlib
import glob
import hashlib
import itertools
import os
import re
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from rlm_kernel.errors import ContextError, TrajectoryError

from . import _stdjson as json

if TYPE_CHECKING:
    from collections.abc import Iterable

Context: TypeAlias = str | list[Any] | dict[str, Any]

# Version-control and tool caches: never part of a corpus, and often huge.
SKIP_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__", ".mypy_cache", ".pytest_cache",
    ".ruff_cache", "node_modules", ".ipynb_checkpoints", ".venv", "venv"})  # fmt: skip
_BINARY_PROBE = 8192
_HASH_SLICE = 1 << 20
# Longer strings are text, never paths: os.stat would have to encode (copy) the whole string.
_MAX_PATH_CHARS = 4096
# Files (a directory's or glob's in total) larger than this are refused before they are read: P lives
# in memory, and reading means the bytes and the decoded text at once (RLM.max_context_mb).
DEFAULT_MAX_CONTEXT_MB = 2048
_MB = 1 << 20


class Documents(dict[str, str]):
    """A corpus of named text documents (e.g. a codebase: relative path -> file text)."""

    skipped: list[str]  # relative paths skipped as binary, undecodable or unreadable; sorted
    root: str  # the directory or glob pattern it came from ("" when built by hand)

    def __init__(
        self,
        mapping: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        /,
        *,
        skipped: Iterable[str] = (),
        root: str = "",
    ) -> None:
        super().__init__(mapping)
        self.skipped = sorted(skipped)
        self.root = root

    def __repr__(self) -> str:
        # P is printed by models and notebooks alike; the content must never be dumped.
        n, chars = len(self), sum(map(len, self.values()))
        text = f"<Documents: {n:,} document{'' if n == 1 else 's'}, {chars:,} chars"
        if self.skipped:
            text += f", {len(self.skipped):,} skipped"
        return text + (f" from {self.root!r}>" if self.root else ">")


def load_context(
    source: object,
    *,
    encoding: str = "utf-8",
    max_mb: float | None = DEFAULT_MAX_CONTEXT_MB,
) -> Context:
    """Turn ``source`` into a context; a value already usable is returned as the same object.

    Files larger than ``max_mb`` megabytes (a directory's or a glob's files together) are refused
    before they are read; None reads any size. An empty context is refused too: a question about
    nothing is a mistake (an empty file, a directory of no text, an unset variable), never meant.
    """
    limit = None if max_mb is None else int(max_mb * _MB)
    context = _load(source, encoding, limit)
    _require_content(context, source)
    return context


def _load(source: object, encoding: str, limit: int | None) -> Context:
    try:
        codecs.lookup(encoding)
    except LookupError as e:
        raise ContextError(f"Unknown text encoding {encoding!r}", fix="Pass e.g. 'utf-8'") from e
    if isinstance(source, str):
        return _load_str(source, encoding, limit)
    if isinstance(source, (bytes, bytearray)):
        try:
            return source.decode(encoding)
        except UnicodeDecodeError as e:
            what = f"The context bytes are not {encoding} text (bad byte at offset {e.start})"
            raise ContextError(what, fix="Pass the right encoding=..., or a decoded str") from e
    if isinstance(source, (list, dict)):
        return source
    if isinstance(source, tuple):
        return list(source)
    if isinstance(source, os.PathLike):
        path = os.fsdecode(source)
        return _load_path(Path(path).expanduser(), path, encoding, limit)
    what = f"A {type(source).__name__} cannot be used as a context"
    fix = "Pass a str (text, or a file, directory or glob), a pathlib.Path, bytes, a list or a dict"
    raise ContextError(what, fix=fix)


def context_value(source: object) -> Context:
    """A context handed over by code (``rlm_query``): a value, never a path to read.

    The code may be sandboxed: a string naming a host file must stay that string.
    """
    if isinstance(source, os.PathLike):
        raise ContextError(
            "rlm_query takes the context itself, not a path",
            fix="Read the file first and pass its text",
        )
    if isinstance(source, str):
        return source
    return _load(source, "utf-8", None)  # a value in memory already: no size to check


def _require_content(context: Context, source: object) -> None:
    """Refuse a context with nothing in it, saying where the emptiness came from."""
    if isinstance(context, str) and context.strip():
        return
    if not isinstance(context, str) and len(context) > 0:
        return
    fix = (
        "Pass the text, file, directory or glob the question is about; an RLM answers from its "
        "context (to ask the model without one, call it directly)"
    )
    if isinstance(source, (str, os.PathLike)) and context is not source:
        what = f"The file {os.fsdecode(source)!r} is empty"
        if not isinstance(context, str):
            what = f"The file {os.fsdecode(source)!r} holds an empty JSON {type(context).__name__}"
        elif context:
            what = f"The file {os.fsdecode(source)!r} holds only whitespace"
        raise ContextError(what, fix=fix)
    kind = "string" if isinstance(context, str) else type(context).__name__
    blank = "only whitespace" if isinstance(context, str) and context else "nothing"
    raise ContextError(f"The context is an empty {kind}: it holds {blank}", fix=fix)


def _load_str(source: str, encoding: str, limit: int | None) -> Context:
    if len(source) > _MAX_PATH_CHARS or "\n" in source or "\0" in source:
        return source
    if os.path.exists(source):
        return _load_path(Path(source), source, encoding, limit)
    # "~/papers" names a path in the home directory, as a shell would read it.
    home = os.path.expanduser(source) if source.startswith("~") else source
    if home != source and os.path.exists(home):
        return _load_path(Path(home), source, encoding, limit)
    if glob.has_magic(source):
        fixed = list(itertools.takewhile(lambda p: not glob.has_magic(p), PurePath(source).parts))
        base = os.path.join(*fixed) if fixed else ""
        # "What is 2*3?" has glob magic too; only path-like strings are taken as patterns.
        if not any(c.isspace() for c in source) or (base and os.path.isdir(base)):
            return _load_glob(source, base, encoding, limit)
    if _looks_like_a_path(source):
        where = home if home != source else os.path.abspath(source)
        raise ContextError(
            f"The context {source!r} looks like a path, but nothing is at {where}: "
            "no such file or directory",
            fix=f"Check the spelling (relative paths start at {os.getcwd()}); to use the text itself "
            "as the context, pass it in a list: [text]",
        )
    return source


_FILE_SUFFIXES = {".txt", ".md", ".json", ".jsonl", ".csv", ".tsv", ".log", ".py", ".html", ".xml"}
_SEPARATORS = "".join(re.escape(s) for s in {"/", os.sep, os.altsep or "/"})
# Path components as people name files: no quotes, brackets, '=' or ',' (JSON, code, key=value text).
_PATH_SHAPE = re.compile(rf"~?[\w.@+\-]*(?:[{_SEPARATORS}][\w.@+\-]*)*")


def _looks_like_a_path(text: str) -> bool:
    """One word shaped like a path: "logs/", "data/report.txt", "data/corpus", "./notes",
    "~/papers". Prose, numbers ("3/4", "12/03/2026"), URLs and JSON are not."""
    if not text or any(c.isspace() for c in text) or "://" in text:
        return False
    if text.endswith(("/", os.sep)) or PurePath(text).suffix.lower() in _FILE_SUFFIXES:
        return True
    if not _PATH_SHAPE.fullmatch(text) or not any(c.isalpha() for c in text):
        return False
    return text == "~" or any(sep in text for sep in {"/", os.sep})


def _load_glob(pattern: str, base: str, encoding: str, limit: int | None) -> Documents:
    files = {}
    for match in glob.glob(pattern, recursive=True):
        rel = PurePath(os.path.relpath(match, base or os.curdir))
        if os.path.isfile(match) and not SKIP_DIRS.intersection(rel.parts[:-1]):
            files[rel.as_posix()] = Path(match)
    if not files:
        fix = f"Check it (relative patterns start at {os.getcwd()}); ** recurses: 'src/**/*.py'"
        raise ContextError(f"The glob {pattern!r} matches no files", fix=fix)
    return _read_files(files, [], pattern, encoding, f"The glob {pattern!r}", limit)


def _load_path(path: Path, label: str, encoding: str, limit: int | None) -> Context:
    try:
        info = path.stat()
        regular = stat.S_ISREG(info.st_mode)
        data = _read_text_bytes(path, encoding, limit, 0, f"{label!r} is") if regular else b""
    except FileNotFoundError as e:
        fix = f"Check the spelling (relative paths start at {os.getcwd()})"
        raise ContextError(f"The context path {label!r} does not exist", fix=fix) from e
    except OSError as e:
        raise ContextError(f"Cannot read {label!r}: {e.strerror}", fix="Check permissions") from e
    if stat.S_ISDIR(info.st_mode):
        files, unreadable = _walk(path)
        return _read_files(files, unreadable, label, encoding, f"The directory {label!r}", limit)
    if not stat.S_ISREG(info.st_mode):
        raise ContextError(f"{label!r} is neither a file nor a directory", fix="Point at either")
    text = None if data is None else _decode(data, encoding)
    del data  # a big file should not be held twice while its JSON is parsed
    if text is None:
        fix = "Pass encoding=... if it is text in another encoding; else load it yourself"
        raise ContextError(f"{label!r} looks binary: it is not {encoding} text", fix=fix)
    suffix = path.suffix.lower()
    if suffix == ".json":
        value = _parse_json(text.removeprefix("\ufeff"), label)
        if not isinstance(value, (str, list, dict)):
            what = f"{label!r} holds a lone JSON {type(value).__name__}, not an array or object"
            raise ContextError(what, fix="Wrap the value in an array or object")
        return value
    if suffix in (".jsonl", ".ndjson"):
        # split("\n"), not splitlines(): JSON strings may legally hold U+2028 and friends.
        lines = enumerate(text.removeprefix("\ufeff").split("\n"), 1)
        return [_parse_json(line, label, n) for n, line in lines if line.strip()]
    return text


def _parse_json(text: str, label: str, line: int | None = None) -> Any:
    try:
        return json.loads(text)
    except RecursionError as e:
        where = "" if line is None else f", line {line},"
        raise ContextError(
            f"{label!r}{where} is JSON nested too deeply to load (arrays or objects more than "
            f"about {sys.getrecursionlimit():,} levels inside one another)",
            fix="Load it as text instead: rename the file to a .txt suffix, or pass its text, "
            "e.g. Path(file).read_text()",
        ) from e
    except json.JSONDecodeError as e:
        where = f"line {e.lineno}, column {e.colno}" if line is None else f"column {e.colno}"
        what = f"{label!r}{'' if line is None else f', line {line},'} is not valid JSON: {e.msg}"
        fix = "Fix it, or rename the file to another suffix to load it as plain text"
        raise ContextError(f"{what} ({where})", fix=fix) from e


def _walk(top: Path) -> tuple[dict[str, Path], list[str]]:
    files: dict[str, Path] = {}
    unreadable: list[str] = []

    def onerror(err: OSError) -> None:
        unreadable.append(PurePath(os.path.relpath(err.filename, top)).as_posix() + "/")

    # followlinks=False: a directory symlink pointing at an ancestor would otherwise never end.
    for dirpath, dirnames, filenames in os.walk(top, onerror=onerror, followlinks=False):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        for name in filenames:
            path = Path(dirpath, name)
            files[path.relative_to(top).as_posix()] = path
    return files, unreadable


def _read_files(
    files: dict[str, Path],
    skipped: list[str],
    root: str,
    encoding: str,
    label: str,
    limit: int | None,
) -> Documents:
    docs: dict[str, str] = {}
    used = 0  # bytes of the text files read so far: binary ones are skipped unread
    for rel in sorted(files):
        text = None
        # is_file() follows file symlinks and refuses FIFOs, whose read would block forever.
        if files[rel].is_file():
            with contextlib.suppress(OSError):
                what = f"{label}'s text files come to (with {rel!r})"
                data = _read_text_bytes(files[rel], encoding, limit, used, what)
                used += 0 if data is None else len(data)
                text = None if data is None else _decode(data, encoding)
        if text is None:
            skipped.append(rel)
        else:
            docs[rel] = text  # an empty file stays: that it exists can matter (__init__.py)
    if not any(text.strip() for text in docs.values()):
        if not files and not skipped:
            what = f"{label} holds no files"
        else:
            empty = f", {len(docs)} empty" if docs else ""
            what = (
                f"{label} contains no text files ({len(skipped)} binary or unreadable files "
                f"skipped{empty})"
            )
        raise ContextError(what, fix="Point at text files, or load the data yourself")
    return Documents(docs, skipped=skipped, root=root)


def _check_size(size: int, limit: int | None, what: str) -> None:
    if limit is not None and size > limit:
        raise ContextError(
            f"{what} {size / _MB:,.0f} MB, more than the {limit / _MB:,.0f} MB a context may load "
            "(it is held in memory whole, with its bytes while it is decoded)",
            fix="Point at a smaller file or directory (a part of the data, or a glob of some of its "
            "files), or raise the limit if this machine has the memory: "
            "%config RLM.max_context_mb = ... (rlm_kernel.run(..., max_context_mb=...), --set "
            "max_context_mb=...; None for no limit)",
            setting="RLM.max_context_mb",
        )


def _read_text_bytes(
    path: Path, encoding: str, limit: int | None, used: int, what: str
) -> bytes | None:
    """The file's bytes, or None when its first block already shows it is binary: a huge binary
    file is never read whole. A text file that would take the bytes read so far (``used``) past
    ``limit`` is refused before it is read."""
    # UTF-16/32 text is full of NUL bytes; in any other encoding a NUL means binary data.
    wide = codecs.lookup(encoding).name.startswith(("utf-16", "utf-32"))
    with path.open("rb") as f:
        head = f.read(_BINARY_PROBE)
        if not wide and b"\0" in head:
            return None
        _check_size(used + os.fstat(f.fileno()).st_size, limit, what)
        return head + f.read()


def _decode(data: bytes, encoding: str) -> str | None:
    """The text in ``data``, or None when it is undecodable (``_read_text_bytes`` has already
    refused data with an early NUL byte)."""
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        return None


@dataclass(frozen=True)
class ContextInfo:
    """What the root model is told about ``P``; holds no reference to ``P`` itself."""

    type: str  # "str", "list", "dict", "Documents", or the type name
    chars: int  # total characters over all documents
    docs: int  # 1 for a str, len() for a list or dict
    lengths: tuple[int, ...]  # char lengths of the first documents
    names: tuple[str, ...]  # the first keys of a dict; empty otherwise
    prefix: str  # the start of the first document's text
    sha256: str  # hex digest of the canonical serialization

    def to_dict(self) -> dict[str, Any]:
        """The JSON form recorded in a trajectory's ``session`` record (``context``)."""
        return {**vars(self), "lengths": list(self.lengths), "names": list(self.names)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ContextInfo:
        """The description back from ``to_dict``'s form; a malformed one raises ContextError."""
        try:
            values = {f.name: d[f.name] for f in fields(cls)}
            return cls(
                **values | {"lengths": tuple(values["lengths"]), "names": tuple(values["names"])}
            )
        except (KeyError, TypeError) as e:
            raise TrajectoryError(
                f"Context metadata is malformed ({type(e).__name__}: {e})",
                fix="The trajectory may be corrupt or from another version; record it again",
            ) from e


def describe_context(P: object, *, max_lengths: int = 100, prefix_chars: int = 200) -> ContextInfo:
    """Describe ``P`` in one pass. A str hashes as its UTF-8 bytes; a list or dict hashes as a
    header line then, per document, ``<chars>:`` + its serialization (keys framed the same way)."""
    h = hashlib.sha256()
    items: Iterable[tuple[object, object]]
    if isinstance(P, str):
        kind, items = "str", [(None, P)]
    elif isinstance(P, Mapping):
        kind, items = "dict", P.items()
    elif isinstance(P, (list, tuple)):
        kind, items = "list", ((None, x) for x in P)
    else:
        kind, items = "object", [(None, P)]
    if kind != "str":  # a str hashes as exactly its UTF-8 bytes
        h.update(kind.encode() + b"\n")
    chars = docs = 0
    lengths_l: list[int] = []
    names_l: list[str] = []
    prefix = ""
    for key, item in items:
        serialized = _serialize(item)
        text = serialized
        if kind == "list" and isinstance(item, dict) and "content" in item:
            # Chat messages count by their content, as the reference RLM does; the hash still
            # covers the whole message so that two transcripts differing in roles differ.
            text = _serialize(item["content"])
        if kind == "dict":
            h.update(f"{len(str(key))}:".encode())
            _hash_text(h, str(key))
            if docs < max_lengths:
                names_l.append(str(key))
        if kind != "str":
            h.update(f"{len(serialized)}:".encode())
        _hash_text(h, serialized)
        if docs == 0:
            prefix = text[:prefix_chars]
        if docs < max_lengths:
            lengths_l.append(len(text))
        chars += len(text)
        docs += 1
    return ContextInfo(
        type(P).__name__, chars, docs, tuple(lengths_l), tuple(names_l), prefix, h.hexdigest()
    )


class _Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...


def _serialize(x: object) -> str:
    if isinstance(x, str):
        return x
    try:
        return json.dumps(x, ensure_ascii=False, default=_json_default)
    except (TypeError, ValueError, RecursionError):  # non-str keys, cycles, absurd nesting
        try:
            return repr(x)
        except RecursionError as e:  # repr() recurses as deep as json.dumps does
            raise ContextError(
                f"The context holds a {type(x).__name__} nested too deeply to describe (lists or "
                f"dicts more than about {sys.getrecursionlimit():,} levels inside one another)",
                fix="Flatten it, or pass it as text (e.g. its JSON as a str, or in a .txt file)",
            ) from e


def _json_default(o: object) -> object:
    # Sets iterate in hash order, which changes between processes; sorting keeps the hash stable.
    if isinstance(o, (set, frozenset)):
        return sorted(o, key=repr)
    return str(o)


def _hash_text(h: _Hasher, text: str) -> None:
    # Slice-wise so a 100 MB str never has a 100 MB bytes twin; surrogatepass so lone surrogates
    # (e.g. from surrogateescape decoding) hash instead of raising.
    for i in range(0, len(text), _HASH_SLICE):
        h.update(text[i : i + _HASH_SLICE].encode("utf-8", "surrogatepass"))
