"""Which files of a directory tree a context loads: the rules the tools people use follow.

The loader (``_context``) and the retrieval index builder walk trees with the same rules::

    rules = LoadRules(include=("*.py",), exclude=("tests/",), max_file_mb=1)
    walk = walk_files(top, rules)
    for entry in walk:          # FileEntry(rel, path, size): streamed, directories in name order
        text, why = read_text(entry.path, "utf-8")   # text None: skipped, `why` says so
    walk.skipped                # [Skip(rel, reason)], filled as it goes; directories end in "/"

    PathRules(top, rules).reason("a/b.py")   # the same verdict for one path (a glob's matches)

The rules, for a directory (pruned unread: nothing below it is listed) and for a file:

1. ``exclude`` globs (gitwildmatch, as in a .gitignore, relative to the top): always win.
2. Default skips (``default_skips``): version control (``.git``, ``.hg``...: kept out even with the
   defaults off, as git itself never tracks ``.git``), tool caches, virtual environments (by name, and
   any directory holding ``pyvenv.cfg`` or ``conda-meta/``), dependencies (``node_modules``,
   ``site-packages``, ``vendor``...), build output (``build``, ``dist``, ``target`` unless they hold an
   ``__init__.py``, ``*.egg-info``...),
   any directory tagged ``CACHEDIR.TAG``, and generated files: lockfiles and minified ``*.min.js`` /
   ``*.min.css`` / ``*.map`` (repomix and aider skip the same; a question about a pinned version can
   still include them by name).
3. Ignore files (``gitignore``): ``.gitignore`` and ``.ignore`` (ripgrep's; it wins over .gitignore in
   the same directory) at every level with git's semantics via ``pathspec`` (a nested file applies
   below its directory, deeper files win, ``!`` negates, an ignored directory is never entered so
   nothing below it comes back), plus ``.git/info/exclude`` and the ignore files of the directories
   above the top up to its repository root. They apply with or without a ``.git``: a downloaded
   archive keeps its .gitignore. The user's global excludes file is not read: what P holds should not
   depend on whose machine loads it.
4. ``include`` globs: when given, only matching files load. An include glob that names a path by its
   literal leading components (``build/**/*.py``, ``vendor/``, ``poetry.lock``) exempts that path and
   what is below it from rules 2 and 3: naming a directory is asking for it. ``*.py`` names nothing.
5. ``max_file_mb``: a larger file is skipped (``too large``), not an error. The total cap
   (``max_mb``) is the reader's: going past it is an error, since what would load is incomplete.

Hidden files load (unlike ripgrep's default): ``.github/`` and dotfile configs are often the answer.
Binary files (a NUL byte in the first 8 KiB) and undecodable ones are skipped by ``read_text``.
"""

from __future__ import annotations

import codecs
import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from .errors import ContextError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

    from pathspec import GitIgnoreSpec

__all__ = [
    "DEFAULT_MAX_CONTEXT_MB",
    "FileEntry",
    "LoadRules",
    "PathRules",
    "Skip",
    "Walk",
    "read_text",
    "walk_files",
]

# Files (a directory's or glob's in total) larger than this are refused before they are read: P lives
# in memory (RLM.max_context_mb).
DEFAULT_MAX_CONTEXT_MB = 2048
MB = 1 << 20
BINARY_PROBE = 8192

_VCS = frozenset({".git", ".hg", ".svn", ".bzr", "_darcs", "CVS", ".jj"})
# Directory names skipped by default, by the reason the model is told.
DEFAULT_SKIP_DIRS: dict[str, frozenset[str]] = {
    "version control": _VCS,
    "cache": frozenset({"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache",
        ".hypothesis", ".ipynb_checkpoints", ".cache", ".parcel-cache", ".sass-cache", ".gradle",
        ".next", ".nuxt", ".svelte-kit", ".turbo"}),
    "virtual environment": frozenset({".venv", ".tox", ".nox", ".conda", "__pypackages__"}),
    "dependencies": frozenset({"node_modules", "bower_components", "jspm_packages", "site-packages",
        "vendor", ".bundle", ".eggs", ".terraform"}),
    "build output": frozenset({"build", "dist", "target", "_build", "htmlcov", "*.egg-info"}),
}  # fmt: skip
DEFAULT_SKIP_FILES: dict[str, frozenset[str]] = {
    "generated (lockfile)": frozenset({"package-lock.json", "npm-shrinkwrap.json", "yarn.lock",
        "pnpm-lock.yaml", "bun.lockb", "poetry.lock", "Pipfile.lock", "uv.lock", "pdm.lock",
        "Cargo.lock", "composer.lock", "Gemfile.lock", "go.sum"}),
    "generated (minified)": frozenset({"*.min.js", "*.min.css", "*.map"}),
}  # fmt: skip
# Markers inside a directory that say what it is, whatever its name.
_VENV_MARKERS = ("pyvenv.cfg", "conda-meta")
# Names that are also Python packages (pypa/build's src/build/): skipped as build output unless the
# directory holds an __init__.py, which build output's top never does. "venv" (the standard library
# has a package of that name) is left to the markers above.
_UNLESS_PACKAGE = frozenset({"build", "dist", "target"})
_CACHEDIR_SIGNATURE = b"Signature: 8a477f597d28d172789f06886806bc55"  # bford.info/cachedir
_IGNORE_FILES = (".gitignore", ".ignore")  # later wins within one directory


@dataclass(frozen=True)
class LoadRules:
    """What a directory or glob context loads (``RLM.load_rules()`` builds it from the settings)."""

    include: tuple[str, ...] = ()  # gitwildmatch globs; empty: every file
    exclude: tuple[str, ...] = ()
    gitignore: bool = True  # honour .gitignore, .ignore and .git/info/exclude
    default_skips: bool = True  # skip caches, environments, dependencies, build output, generated
    max_file_mb: float | None = None  # a larger file is skipped; None: no cap per file
    max_mb: float | None = DEFAULT_MAX_CONTEXT_MB  # the files together; past it is an error

    def __post_init__(self) -> None:
        # A single glob is a common way to write one; a str is not a tuple of one-letter globs.
        for name in ("include", "exclude"):
            value = getattr(self, name)
            object.__setattr__(self, name, (value,) if isinstance(value, str) else tuple(value))

    def options(self) -> dict[str, Any]:
        """The rules as ``load_context`` keywords (its keyword names are these fields)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class FileEntry:
    """A file the rules admit: its path relative to the top (POSIX form), where it is, its size."""

    rel: str
    path: Path
    size: int


@dataclass(frozen=True)
class Skip:
    """A path left out and why (``reason`` is one of a few stable phrases, grouped in metadata)."""

    rel: str  # a directory's ends with "/"
    reason: str


def _spec(globs: Sequence[str], setting: str) -> GitIgnoreSpec:
    import pathspec  # only when a tree is walked: `import rlm_kernel` stays light

    # Git's own matching ("gitwildmatch" is deprecated in pathspec 1.x and warns).
    try:
        return pathspec.GitIgnoreSpec.from_lines(globs)
    except ValueError as e:  # "!" alone, a trailing backslash
        raise ContextError(
            f"RLM.{setting} holds a glob git cannot read: {e}",
            fix=f"Write it as a .gitignore line, e.g. '*.py', 'docs/**/*.md', 'build/' "
            f"(RLM.{setting} = {list(globs)!r})",
            setting=f"RLM.{setting}",
        ) from e


def _ignore_spec(path: str) -> GitIgnoreSpec | None:
    import pathspec

    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            spec = pathspec.GitIgnoreSpec.from_lines(f)
    except (OSError, ValueError):  # unreadable, or a pattern pathspec cannot parse: as git, go on
        return None
    return spec if len(spec) else None


@dataclass(frozen=True)
class _Ignores:
    """One ignore file's patterns: they match paths relative to the directory it sits in."""

    base: str  # that directory, relative to the top with a trailing "/" ("" for the top itself)
    above: str  # for a directory above the top: the top's path relative to it, with "/"
    spec: GitIgnoreSpec
    reason: str

    def verdict(self, rel: str) -> bool | None:
        """True: ignored, False: re-included by a negation, None: no pattern matches."""
        if not rel.startswith(self.base):
            return None
        return self.spec.check_file(self.above + rel[len(self.base) :]).include


def _literal_parts(pattern: str) -> tuple[str, ...]:
    """The leading path components of a glob before its first wildcard: what it names."""
    parts: list[str] = []
    for part in pattern.strip().lstrip("/").split("/"):
        if not part or any(c in part for c in "*?[\\!"):
            break
        parts.append(part)
    return tuple(parts)


def _by_name(table: dict[str, frozenset[str]]) -> Callable[[str], str | None]:
    """The reason ``table`` gives a name: exact names looked up, the few globs matched after."""
    exact = {n: reason for reason, names in table.items() for n in names if "*" not in n}
    globs = [(n, reason) for reason, names in table.items() for n in names if "*" in n]

    def reason(name: str) -> str | None:
        found = exact.get(name)
        if found is None:
            found = next((r for n, r in globs if fnmatch.fnmatchcase(name, n)), None)
        return found

    return reason


_dir_skip = _by_name(DEFAULT_SKIP_DIRS)
_file_skip = _by_name(DEFAULT_SKIP_FILES)


class PathRules:
    """The rules applied below one top directory: a verdict for one path (``reason``)."""

    def __init__(self, top: str | os.PathLike[str], rules: LoadRules) -> None:
        self.top = os.fspath(top)
        self.rules = rules
        self._include = _spec(rules.include, "include") if rules.include else None
        self._exclude = _spec(rules.exclude, "exclude") if rules.exclude else None
        self._named = [p for p in map(_literal_parts, rules.include) if p]
        self._cap = None if rules.max_file_mb is None else int(rules.max_file_mb * MB)
        self._dirs: dict[str, str | None] = {}  # verdicts on directories, for reason()
        self._by_dir: dict[str, tuple[_Ignores, ...]] = {
            "": self._outer() + self._here(self.top, "")
        }

    # --- ignore files --------------------------------------------------------------------------
    def _here(self, path: str, base: str) -> tuple[_Ignores, ...]:
        if not self.rules.gitignore:
            return ()
        found = []
        for name in _IGNORE_FILES:
            spec = _ignore_spec(os.path.join(path, name))
            if spec is not None:
                found.append(_Ignores(base, "", spec, f"ignored by {name}"))
        return tuple(found)

    def _outer(self) -> tuple[_Ignores, ...]:
        """``.git/info/exclude`` and the ignore files between the repository root and the top."""
        if not self.rules.gitignore:
            return ()
        top = Path(self.top).resolve()
        root = next((d for d in (top, *top.parents) if (d / ".git").exists()), None)
        if root is None:
            return ()
        found = []
        exclude = _ignore_spec(str(root / ".git" / "info" / "exclude"))
        above = top.relative_to(root).as_posix()
        above = "" if above == "." else above + "/"
        if exclude is not None:
            found.append(_Ignores("", above, exclude, "ignored by .git/info/exclude"))
        for d in reversed([d for d in top.parents if d.is_relative_to(root)]):
            rel = top.relative_to(d).as_posix() + "/"
            for name in _IGNORE_FILES:
                spec = _ignore_spec(str(d / name))
                if spec is not None:
                    found.append(_Ignores("", rel, spec, f"ignored by {name}"))
        # Pointing at an ignored directory (build/ itself) is asking for it, as naming it in an
        # include glob is: the files above then have no say; those inside it still do.
        if any(ignore.spec.check_file(ignore.above).include for ignore in found):
            return ()
        return tuple(found)

    def ignores_for(self, rel_dir: str) -> tuple[_Ignores, ...]:
        """The ignore files that apply inside ``rel_dir`` ("a/b/"), shallowest first; cached."""
        got = self._by_dir.get(rel_dir)
        if got is None:
            parent = rel_dir[: rel_dir.rstrip("/").rfind("/") + 1]
            got = self.ignores_for(parent) + self._here(os.path.join(self.top, rel_dir), rel_dir)
            self._by_dir[rel_dir] = got
        return got

    # --- verdicts ------------------------------------------------------------------------------
    def _named_by_include(self, rel: str) -> bool:
        parts = tuple(PurePosixPath(rel).parts)
        return any(p[: len(parts)] == parts or parts[: len(p)] == p for p in self._named)

    def _ignored(self, rel: str, ignores: Sequence[_Ignores]) -> str | None:
        for ignore in reversed(ignores):  # the deepest file that has a say decides, as in git
            verdict = ignore.verdict(rel)
            if verdict is not None:
                return ignore.reason if verdict else None
        return None

    def dir_reason(self, rel: str, names: Iterable[str] | None = None) -> str | None:
        """Why the directory ``rel`` ("a/b/") is not entered (None: it is). ``names``, its listing,
        shows its markers (``pyvenv.cfg``); without it they are looked up."""
        return self.name_reason(rel) or self.marker_reason(rel, names)

    def name_reason(self, rel: str) -> str | None:
        """The verdict on a directory from its path alone: pruned before it is listed."""
        name = rel.rstrip("/").rsplit("/", 1)[-1]
        if self._exclude is not None and self._exclude.match_file(rel):
            return "excluded"
        if self._named_by_include(rel):
            return None
        if name in _VCS:
            return "version control"
        if self.rules.default_skips and name not in _UNLESS_PACKAGE:
            skip = _dir_skip(name)
            if skip is not None:
                return skip
        parent = rel[: rel.rstrip("/").rfind("/") + 1]
        return self._ignored(rel, self.ignores_for(parent))

    def marker_reason(self, rel: str, names: Iterable[str] | None = None) -> str | None:
        """The verdict on a directory from what it holds: a virtual environment or a tagged cache
        under any name, build output that is not a package of that name."""
        if not self.rules.default_skips or self._named_by_include(rel):
            return None
        path = os.path.join(self.top, rel)
        listed = set(names) if names is not None else None
        name = rel.rstrip("/").rsplit("/", 1)[-1]
        if name in _UNLESS_PACKAGE:
            init = os.path.join(path, "__init__.py")
            if not ("__init__.py" in listed if listed is not None else os.path.exists(init)):
                return _dir_skip(name)
        for marker in _VENV_MARKERS:
            there = (
                marker in listed
                if listed is not None
                else os.path.exists(os.path.join(path, marker))
            )
            if there:
                return "virtual environment"
        if listed is None or "CACHEDIR.TAG" in listed:
            try:
                with open(os.path.join(path, "CACHEDIR.TAG"), "rb") as f:
                    if f.read(len(_CACHEDIR_SIGNATURE)) == _CACHEDIR_SIGNATURE:
                        return "cache"
            except OSError:
                pass
        return None

    def file_reason(self, rel: str, size: int | None = None) -> str | None:
        """Why the file ``rel`` is not loaded (None: it is, unless it reads as binary)."""
        name = rel.rsplit("/", 1)[-1]
        if self._exclude is not None and self._exclude.match_file(rel):
            return "excluded"
        if not self._named_by_include(rel):
            if self.rules.default_skips and (skip := _file_skip(name)) is not None:
                return skip
            parent = rel[: rel.rfind("/") + 1]
            ignored = self._ignored(rel, self.ignores_for(parent))
            if ignored is not None:
                return ignored
        if self._include is not None and not self._include.match_file(rel):
            return "not included"
        if self._cap is not None and size is not None and size > self._cap:
            return "too large"
        return None

    def reason(self, rel: str) -> str | None:
        """The verdict for a path found some other way (a glob's match): every directory above it,
        then the file itself."""
        parts = rel.split("/")
        for i in range(1, len(parts)):
            where = "/".join(parts[:i]) + "/"
            if where not in self._dirs:  # a glob's matches share their directories
                self._dirs[where] = self.dir_reason(where)
            why = self._dirs[where]
            if why is not None:
                return why
        try:
            size: int | None = os.stat(os.path.join(self.top, rel)).st_size
        except OSError:
            size = None
        return self.file_reason(rel, size)


@dataclass
class Walk:
    """The files the rules admit below ``top``, as an iterator; ``skipped`` grows as it goes."""

    top: Path
    rules: LoadRules
    skipped: list[Skip] = field(default_factory=list)

    def __iter__(self) -> Iterator[FileEntry]:
        check = PathRules(self.top, self.rules)
        yield from self._walk(check, os.fspath(self.top), "")

    def _walk(self, check: PathRules, path: str, rel: str) -> Iterator[FileEntry]:
        try:
            with os.scandir(path) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            self.skipped.append(Skip(rel or "./", "unreadable"))
            return
        if rel:  # the listing shows what the directory is: a venv under any name stops here
            why = check.marker_reason(rel, [e.name for e in entries])
            if why is not None:
                self.skipped.append(Skip(rel, why))
                return
        for entry in entries:
            sub = rel + entry.name
            try:
                # Not followed, as os.walk(followlinks=False): a link to an ancestor never ends.
                if entry.is_dir(follow_symlinks=False):
                    why = check.name_reason(sub + "/")
                    if why is None:
                        yield from self._walk(check, entry.path, sub + "/")
                    else:
                        self.skipped.append(Skip(sub + "/", why))
                    continue
                if entry.is_symlink() and entry.is_dir():
                    self.skipped.append(Skip(sub + "/", "symlinked directory (not followed)"))
                    continue
                regular = entry.is_file()  # follows a file symlink; a FIFO would block a read
                size = entry.stat().st_size if regular else 0
            except OSError:
                self.skipped.append(Skip(sub, "unreadable"))
                continue
            why = check.file_reason(sub, size) if regular else "not a regular file"
            if why is None:
                yield FileEntry(sub, Path(entry.path), size)
            else:
                self.skipped.append(Skip(sub, why))


def walk_files(top: str | os.PathLike[str], rules: LoadRules | None = None) -> Walk:
    """The files below ``top`` that ``rules`` admit (default rules when None), streamed."""
    return Walk(Path(top), rules or LoadRules())


def read_text(
    path: Path, encoding: str, admit: Callable[[int], None] | None = None
) -> tuple[str | None, str]:
    """The file's text and "", or None and why not ("binary", "not <encoding> text").

    A NUL byte in the first block means binary (not for UTF-16/32, full of NULs): a huge binary file
    is never read whole. ``admit(size)`` runs before the rest is read and may raise (a total cap).
    The bytes go into one buffer of the file's size and are decoded from it: a file costs its text
    plus its bytes only while it is decoded. (An mmap would spare those bytes but turns a file
    truncated while it is read, as logrotate's copytruncate does, into a SIGBUS.)
    """
    wide = codecs.lookup(encoding).name.startswith(("utf-16", "utf-32"))
    with path.open("rb") as f:
        head = f.read(BINARY_PROBE)
        if not wide and b"\0" in head:
            return None, "binary"
        size = os.fstat(f.fileno()).st_size
        if admit is not None:
            admit(size)
        buf = bytearray(max(size, len(head)))
        buf[: len(head)] = head
        with memoryview(buf) as view:
            got = len(head) + (f.readinto(view[len(head) :]) or 0)
        del buf[got:]  # a file that shrank since fstat
        rest = f.read()  # and one that grew
        if rest:
            buf += rest
    try:
        return buf.decode(encoding), ""
    except UnicodeDecodeError:
        return None, f"not {encoding} text"
