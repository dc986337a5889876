"""Loading the context ``P`` and describing it without showing it.

``load_context`` turns what a person points at (text, a file, a directory, a glob, JSON, a list, a
dict) into the value bound to ``P``. It never copies a value that is already usable: contexts can be
hundreds of megabytes. Which files of a directory or glob load is ``_files``' business (ignore files,
default skips, include/exclude, a cap per file); the files stream in one at a time, so a tree costs
its text plus one file's bytes while that file is decoded. ``describe_context`` computes the metadata
the root model sees in place of ``P``: type, size, per-document lengths, what was skipped and why, a
short prefix and a content hash.
"""

from __future__ import annotations

import codecs
import glob
import hashlib
import itertools
import os
import re
import stat
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from rlm_kernel.errors import ContextError, TrajectoryError

from . import _stdjson as json
from ._files import DEFAULT_MAX_CONTEXT_MB, FileEntry, LoadRules, PathRules, read_text, walk_files
from ._files import MB as _MB

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = ["DEFAULT_MAX_CONTEXT_MB", "ContextInfo", "Documents", "describe_context", "load_context"]

Context: TypeAlias = str | list[Any] | dict[str, Any]
# One reason a group of paths was skipped: (reason, how many, the first few of them).
SkipGroup: TypeAlias = tuple[str, int, tuple[str, ...]]

_HASH_SLICE = 1 << 20
# Longer strings are text, never paths: os.stat would have to encode (copy) the whole string.
_MAX_PATH_CHARS = 4096
_SKIP_EXAMPLES = 3  # paths kept per reason in the metadata: the root prompt stays small


class Documents(dict[str, str]):
    """A corpus of named text documents (e.g. a codebase: relative path -> file text)."""

    skipped: list[str]  # relative paths not loaded, sorted; a directory's ends with "/"
    skip_reasons: dict[str, str]  # each of them -> why ("binary", "ignored by .gitignore", ...)
    root: str  # the directory or glob pattern it came from ("" when built by hand)

    def __init__(
        self,
        mapping: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        /,
        *,
        skipped: Mapping[str, str] | Iterable[str] = (),
        root: str = "",
    ) -> None:
        """``skipped`` maps each path left out to why, or lists the paths (reason "skipped")."""
        super().__init__(mapping)
        reasons = skipped if isinstance(skipped, Mapping) else dict.fromkeys(skipped, "skipped")
        self.skip_reasons = dict(sorted(reasons.items()))
        self.skipped = list(self.skip_reasons)
        self.root = root

    def skip_summary(self, examples: int = _SKIP_EXAMPLES) -> tuple[SkipGroup, ...]:
        """The skipped paths by reason, most first: (reason, count, the first ``examples``)."""
        counts = Counter(self.skip_reasons.values())
        first: dict[str, list[str]] = {}
        for rel, reason in self.skip_reasons.items():
            shown = first.setdefault(reason, [])
            if len(shown) < examples:
                shown.append(rel)
        order = sorted(counts, key=lambda r: (-counts[r], r))
        return tuple((r, counts[r], tuple(first[r])) for r in order)

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
    include: str | Sequence[str] = (),
    exclude: str | Sequence[str] = (),
    gitignore: bool = True,
    default_skips: bool = True,
    max_file_mb: float | None = None,
    max_mb: float | None = DEFAULT_MAX_CONTEXT_MB,
) -> Context:
    """Turn ``source`` into a context; a value already usable is returned as the same object.

    A directory or glob loads the text files its rules admit (``rlm_kernel._files``): only those
    matching ``include`` globs when given, none matching ``exclude``; ``.gitignore`` / ``.ignore``
    honoured unless ``gitignore=False``; caches, virtual environments, dependencies, build output
    and generated files skipped unless ``default_skips=False`` or an include glob names them; a
    file over ``max_file_mb`` skipped. The result's ``skip_reasons`` says what was left out and why.
    Files larger than ``max_mb`` megabytes (a directory's or a glob's files together) are refused
    before they are read; None reads any size. An empty context is refused too: a question about
    nothing is a mistake (an empty file, a directory of no text, an unset variable), never meant.
    The rule keywords are ``LoadRules``' fields (``RLM.load_rules().options()`` passes settings).
    """
    rules = LoadRules(
        include=tuple([include] if isinstance(include, str) else include),
        exclude=tuple([exclude] if isinstance(exclude, str) else exclude),
        gitignore=gitignore,
        default_skips=default_skips,
        max_file_mb=max_file_mb,
        max_mb=max_mb,
    )
    context = _load(source, encoding, rules)
    _require_content(context, source)
    return context


def _load(source: object, encoding: str, rules: LoadRules | None) -> Context:
    try:
        codecs.lookup(encoding)
    except LookupError as e:
        raise ContextError(f"Unknown text encoding {encoding!r}", fix="Pass e.g. 'utf-8'") from e
    if isinstance(source, str):
        return _load_str(source, encoding, rules)
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
        return _load_path(Path(path).expanduser(), path, encoding, rules)
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


def _load_str(source: str, encoding: str, rules: LoadRules | None) -> Context:
    if len(source) > _MAX_PATH_CHARS or "\n" in source or "\0" in source:
        return source
    if os.path.exists(source):
        return _load_path(Path(source), source, encoding, rules)
    # "~/papers" names a path in the home directory, as a shell would read it.
    home = os.path.expanduser(source) if source.startswith("~") else source
    if home != source and os.path.exists(home):
        return _load_path(Path(home), source, encoding, rules)
    if glob.has_magic(source):
        fixed = list(itertools.takewhile(lambda p: not glob.has_magic(p), PurePath(source).parts))
        base = os.path.join(*fixed) if fixed else ""
        # "What is 2*3?" has glob magic too; only path-like strings are taken as patterns.
        if not any(c.isspace() for c in source) or (base and os.path.isdir(base)):
            return _load_glob(source, base, encoding, rules or LoadRules())
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


def _load_glob(pattern: str, base: str, encoding: str, rules: LoadRules) -> Documents:
    check = PathRules(base or os.curdir, rules)
    files: list[FileEntry] = []
    skipped: dict[str, str] = {}
    for match in glob.glob(pattern, recursive=True):
        if not os.path.isfile(match):
            continue
        rel = PurePath(os.path.relpath(match, base or os.curdir)).as_posix()
        why = check.reason(rel)
        if why is None:
            files.append(FileEntry(rel, Path(match), 0))
        else:
            skipped[rel] = why
    if not files and not skipped:
        fix = f"Check it (relative patterns start at {os.getcwd()}); ** recurses: 'src/**/*.py'"
        raise ContextError(f"The glob {pattern!r} matches no files", fix=fix)
    return _read_files(files, skipped, pattern, encoding, f"The glob {pattern!r}", rules)


def _load_path(path: Path, label: str, encoding: str, rules: LoadRules | None) -> Context:
    limit = _limit(rules)
    try:
        info = path.stat()
        text: str | None = ""
        if stat.S_ISREG(info.st_mode):
            text, _ = read_text(
                path, encoding, lambda size: _check_size(size, limit, f"{label!r} is")
            )
    except FileNotFoundError as e:
        fix = f"Check the spelling (relative paths start at {os.getcwd()})"
        raise ContextError(f"The context path {label!r} does not exist", fix=fix) from e
    except OSError as e:
        raise ContextError(f"Cannot read {label!r}: {e.strerror}", fix="Check permissions") from e
    if stat.S_ISDIR(info.st_mode):
        walk = walk_files(path, rules or LoadRules())
        files = list(walk)  # paths and sizes only: the text is read below, one file at a time
        skipped = {skip.rel: skip.reason for skip in walk.skipped}
        label_dir = f"The directory {label!r}"
        return _read_files(files, skipped, label, encoding, label_dir, rules or LoadRules())
    if not stat.S_ISREG(info.st_mode):
        raise ContextError(f"{label!r} is neither a file nor a directory", fix="Point at either")
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


def _limit(rules: LoadRules | None) -> int | None:
    return None if rules is None or rules.max_mb is None else int(rules.max_mb * _MB)


def _read_files(
    files: list[FileEntry],
    skipped: dict[str, str],
    root: str,
    encoding: str,
    label: str,
    rules: LoadRules,
) -> Documents:
    docs: dict[str, str] = {}
    limit = _limit(rules)
    used = 0  # bytes of the text files read so far: binary ones are skipped unread
    for entry in sorted(files, key=lambda e: e.rel):
        size = 0

        def admit(n: int, rel: str = entry.rel, used: int = used) -> None:
            nonlocal size
            _check_size(used + n, limit, f"{label}'s text files come to (with {rel!r})")
            size = n

        try:
            text, why = read_text(entry.path, encoding, admit)
        except OSError:
            text, why = None, "unreadable"
        if text is None:
            skipped[entry.rel] = why
        else:
            used += size
            docs[entry.rel] = text  # an empty file stays: that it exists can matter (__init__.py)
    if not any(text.strip() for text in docs.values()):
        _no_text(label, docs, skipped)
    return Documents(docs, skipped=skipped, root=root)


def _no_text(label: str, docs: Mapping[str, str], skipped: Mapping[str, str]) -> None:
    if not docs and not skipped:
        raise ContextError(f"{label} holds no files", fix="Point at a directory of text files")
    counts = Counter(skipped.values())
    said = [f"{n:,} {reason}" for reason, n in counts.most_common()] or ["nothing skipped"]
    if docs:
        said.append(f"{len(docs):,} empty")
    raise ContextError(
        f"{label} contains no text files ({', '.join(said)})",
        fix="Point at text files, or change what loads: RLM.include / RLM.exclude globs "
        "(--include / --exclude), RLM.gitignore = False, RLM.default_skips = False, RLM.max_file_mb",
        setting="RLM.include" if "not included" in counts else None,
    )


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
    # What a directory or glob left out, by reason (most first), with a few paths each.
    skipped: tuple[SkipGroup, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """The JSON form recorded in a trajectory's ``session`` record (``context``)."""
        groups = [{"reason": r, "count": n, "examples": list(ex)} for r, n, ex in self.skipped]
        data = {**vars(self), "lengths": list(self.lengths), "names": list(self.names)}
        data["skipped"] = groups
        return data

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ContextInfo:
        """The description back from ``to_dict``'s form; a malformed one raises ContextError."""
        try:
            # "skipped" is newer than the records: one without it skipped nothing it could say.
            values = {f.name: d[f.name] for f in fields(cls) if f.name != "skipped"}
            groups = tuple(
                (str(g["reason"]), int(g["count"]), tuple(g["examples"]))
                for g in d.get("skipped", ())
            )
            return cls(
                **values | {"lengths": tuple(values["lengths"]), "names": tuple(values["names"])},
                skipped=groups,
            )
        except (KeyError, TypeError, ValueError) as e:
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
    skipped = P.skip_summary() if isinstance(P, Documents) else ()
    return ContextInfo(
        type(P).__name__,
        chars,
        docs,
        tuple(lengths_l),
        tuple(names_l),
        prefix,
        h.hexdigest(),
        skipped,
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
