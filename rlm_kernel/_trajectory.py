"""The trajectory: the one record of a run, written as it happens and read back.

A trajectory is a list of records, each a JSON object with a ``type`` (their shapes, and the functions
that build them: ``_schema``):

- ``session`` (first): ids, question, context fingerprint (type, length, sha256 — never the context
  itself), settings (never an API key), models, and the system and metadata messages the model saw.
- ``iteration``: the model call (model, request key, usage, latency), the raw response, the code as
  proposed and as executed (``edited_by_user`` and a unified diff when a person changed it), each
  block's stdout/stderr/traceback/value, notes, the turn it added to the history (``assistant`` and
  ``observation``), the sub-call tree (child RLMs nested as their own trajectories), and the
  submission if any.
- ``rewind``: later iterations from ``to_iteration`` on are superseded (a person re-ran an earlier step).
- ``compaction``: the root history was summarised after ``after_iteration`` (``summary``, ``note``).
- ``follow_up``: a new question asked in the same session after ``after_iteration`` (``text``).
- ``final``: answer, reason, usage, and the forced best-answer call if a limit ended the run, with the
  messages it sent (one per question; a follow-up adds another).

The history the root model was sent is a fold over these records (``History.apply``). Files of schema
version 1 are read too, brought up to version 2 as they are read (``_schema_v1``).

Autosave appends each record as one JSONL line and flushes it, so a crash loses at most the iteration
in flight; a write that fails mid-run (a full disk) pauses the session with every record still in
memory (``TrajectoryWriter``). ``save``/``load`` round-trip both ``.jsonl`` and ``.json``
(``{"schema_version", "records"}``); both formats are this module's own, and so is keeping secrets
out of what it writes. The other formats
are views written by ``rlm_kernel.exporters``, which import this module: ``Trajectory.export`` reaches
them through the exporter installed with ``use_exporter``, never by importing them.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

from . import _rich
from . import _stdjson as json
from ._environment import env_value
from ._schema import (
    RECORD_TYPES,
    SCHEMA_VERSION,
    FinalRecord,
    IterationRecord,
    Record,
    SessionRecord,
    SubcallRecord,
    as_records,
    iterations,
)
from ._schema_v1 import upgrade
from ._secrets import Redactor
from .errors import AutosaveError, ConfigError, TrajectoryError

# The versions this module reads: the current one, and version 1 through ``_schema_v1``.
READABLE_VERSIONS = (1, SCHEMA_VERSION)


class Exporter(Protocol):
    """What ``Trajectory.export`` writes through: ``rlm_kernel.exporters.export``'s signature."""

    def __call__(
        self, trajectory: Trajectory, path: str | Path, format: str | None = None, **options: Any
    ) -> Path: ...


_exporter: Exporter | None = None


def use_exporter(export: Exporter) -> None:
    """Have ``Trajectory.export`` write through ``export``.

    ``rlm_kernel.exporters`` installs its own ``export`` when it is imported, and the package face
    installs a stand-in that imports the exporters on first use (importing ``rlm_kernel`` needs no
    exporter). This is how the record type offers every format without importing the exporters,
    which import it.
    """
    global _exporter
    _exporter = export


class Trajectory:
    """A session's records, in the order they were written (see the module docstring)."""

    def __init__(self, records: list[Record] | None = None) -> None:
        self.records: list[Record] = records if records is not None else []

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Trajectory) and self.records == other.records

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        question = self.session.get("question", "") if self.records else ""
        return f"<Trajectory {question[:40]!r}: {len(self.iterations)} iterations>"

    def _repr_html_(self) -> str | None:
        return _rich.render(self, "text/html")  # ``_display``: answer, facts, usage, timeline

    def _repr_markdown_(self) -> str | None:
        return _rich.render(self, "text/markdown")

    def append(self, record: Record) -> None:
        """Add ``record`` at the end (the session does; readers need not)."""
        self.records.append(record)

    @property
    def session(self) -> SessionRecord:
        """The first record: ids, question, context fingerprint, settings, models, preamble."""
        first = self.records[0] if self.records else None
        if first is None or first["type"] != "session":
            raise TrajectoryError(
                "This trajectory has no session record", fix="Load a complete trajectory file"
            )
        return first

    @property
    def iterations(self) -> list[IterationRecord]:
        """The iterations that stand, with rewinds applied (``_schema.standing``)."""
        return list(iterations(self.records))

    @property
    def final(self) -> FinalRecord | None:
        """The latest final record, if the latest question was answered."""
        last = self.records[-1] if self.records else None
        return last if last is not None and last["type"] == "final" else None

    def subcalls(self) -> Iterator[SubcallRecord]:
        """Every sub-call in the tree, children's included, depth first."""
        for iteration in self.iterations:
            for call in iteration.get("subcalls", []):
                yield call
                child = call["child"]
                if child:
                    yield from Trajectory.from_dict(child).subcalls()

    def to_dict(self) -> dict[str, Any]:
        """``{"schema_version", "records"}``: what the ``json`` format holds."""
        return {"schema_version": SCHEMA_VERSION, "records": self.records}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Trajectory:
        """The trajectory ``to_dict`` made (a child RLM's, say), checked like a file."""
        records = data.get("records", []) if isinstance(data, Mapping) else None
        if not isinstance(records, list):
            raise TrajectoryError(
                f"This is not a trajectory: a JSON {_kind(data)} where an object with "
                "'schema_version' and a 'records' list belongs",
                fix="Load a file written by rlm_kernel (an autosave .jsonl, or a .json export)",
            )
        version = data.get("schema_version")
        if version not in READABLE_VERSIONS:
            raise TrajectoryError(
                f"Trajectory schema version {version!r} is not supported (this rlm_kernel reads "
                f"versions {', '.join(map(str, READABLE_VERSIONS))})",
                fix="Open it with the rlm_kernel version that wrote it",
            )
        return cls(_checked(records, "<dict>"))

    def redactor(self) -> Redactor:
        """Secrets to keep out of what is written: the session's API key and secret-looking
        environment values. Records hold what people typed as well (an edit is recorded as written),
        so every file written from a trajectory is scrubbed again."""
        name = self.session.get("config", {}).get("api_key_env") or "OPENAI_API_KEY"
        return Redactor([env_value(str(name))])

    def scrubbed(self) -> Trajectory:
        """This trajectory itself when it holds no secret, else a copy with the secrets replaced."""
        text = json.dumps(self.records, ensure_ascii=False, default=str)
        clean = self.redactor().scrub(text)
        return self if clean == text else Trajectory(json.loads(clean))

    def save(self, path: str | Path) -> Path:
        """Write it as JSON (JSON Lines for a ``.jsonl`` name), with secrets scrubbed as in every export."""
        clean = self.scrubbed()
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.suffix == ".jsonl":
            with target.open("w", encoding="utf-8") as f:
                for record in clean.records:
                    f.write(dumps(record) + "\n")
        else:
            target.write_text(
                json.dumps(clean.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8"
            )
        return target

    def export(self, path: str | Path, format: str | None = None, **options: Any) -> Path:
        """Write this trajectory as ``format`` (json, jsonl, rlm-jsonl, ipynb, sft; default: from the
        file name); the same as ``rlm_kernel.export(trajectory, path, format, **options)``. See
        ``rlm_kernel.exporters``."""
        if _exporter is None:
            raise TrajectoryError(
                "No exporter is installed, so this trajectory can only be saved as JSON",
                fix="Import rlm_kernel.exporters first, or call "
                "rlm_kernel.exporters.export(trajectory, path, format)",
            )
        return _exporter(self, path, format, **options)

    @classmethod
    def load(cls, path: str | Path) -> Trajectory:
        """Read a ``.jsonl`` (an autosave: a torn last line is skipped) or a ``.json`` trajectory."""
        source = Path(path)
        try:
            data = source.read_bytes()
        except OSError as exc:
            raise TrajectoryError(
                f"Cannot read trajectory {source}: {exc.strerror}", fix="Check the path"
            ) from exc
        if source.suffix != ".jsonl":
            try:
                return cls.from_dict(json.loads(data.decode("utf-8")))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise TrajectoryError(
                    f"{source} is not valid JSON: {exc}", fix="Check the file"
                ) from exc
            except RecursionError as exc:
                raise TrajectoryError(
                    f"{source} is JSON nested too deeply to read", fix="Check the file"
                ) from exc
        # The last line was being written when the process died (even mid-character): not a record.
        cut = torn_tail(data)
        raw: list[dict[str, Any]] = []
        # Split on newline bytes only: str.splitlines() would also split inside a record's text at
        # characters JSON leaves unescaped (U+2028, U+0085, ...).
        for number, line in enumerate(data[:cut].split(b"\n"), 1):
            if not line.strip():
                continue
            record = _parse_line(line)
            if isinstance(record, str):
                raise TrajectoryError(
                    f"{source}, line {number}, {record}",
                    fix="The file is damaged at that line: remove it (or every line from it on) to "
                    "load the records before it",
                )
            raw.append(record)
        return cls(_checked(raw, str(source)))


def torn_tail(data: bytes) -> int | None:
    """Where the last line of JSONL ``data`` starts when it is not a record (a write the process
    did not finish: garbage, half a record), else None. Loading skips it; resuming cuts it off
    before appending, so that the file keeps loading."""
    end = len(data.rstrip())
    if end == 0:
        return None
    start = data.rfind(b"\n", 0, end) + 1
    return None if isinstance(_parse_line(data[start:end]), dict) else start


def _parse_line(line: bytes) -> dict[str, Any] | str:
    """One JSONL line's record, or what is wrong with it (to follow "line N, ")."""
    try:
        value = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"is not valid JSON: {exc}"
    except RecursionError:
        return "is JSON nested too deeply to read"
    if not isinstance(value, dict):
        return f"is a JSON {_kind(value)}, not a record (a JSON object)"
    return value


def _kind(value: object) -> str:
    names = {list: "array", dict: "object", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _checked(raw: list[dict[str, Any]], where: str) -> list[Record]:
    """Records read from a file or a dict, checked and brought up to the current schema version."""
    if not raw or not isinstance(raw[0], dict) or raw[0].get("type") != "session":
        raise TrajectoryError(f"{where} does not start with a session record", fix="Check the file")
    version = raw[0].get("schema_version")
    if version not in READABLE_VERSIONS:
        raise TrajectoryError(
            f"{where} has schema version {version!r}; this rlm_kernel reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}",
            fix="Open it with the rlm_kernel version that wrote it",
        )
    for record in raw:
        if not isinstance(record, dict) or record.get("type") not in RECORD_TYPES:
            kind = record.get("type") if isinstance(record, dict) else type(record).__name__
            raise TrajectoryError(
                f"{where} holds a record of unknown type {kind!r}",
                fix="Open it with the rlm_kernel version that wrote it",
            )
    return as_records(upgrade(raw) if version == 1 else raw)


def dumps(record: Mapping[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)


def probe_writable(target: Path) -> None:
    """Create ``target``'s directory and open ``target`` for appending, so that a path that cannot
    work fails before a run, not after it; a file that was not there is removed again. Raises
    OSError (``unwritable`` says why in words)."""
    existed = target.exists()
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a", encoding="utf-8"):
        pass
    if not existed:
        target.unlink()


def unwritable(target: Path, exc: OSError) -> str:
    """Why ``target`` cannot be written, naming the part of the path at fault."""
    if isinstance(exc, IsADirectoryError) or target.is_dir():
        return f"{target} is a directory"
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                return f"{parent} is a file, not a directory"
            if isinstance(exc, PermissionError):
                return f"there is no permission to write in {parent}"
            break
    return f"{exc.strerror or exc} ({target})"


class TrajectoryWriter:
    """Appends records to a JSONL file, one flushed line each.

    The file is tried when the writer is made, so an autosave path that cannot work is a
    ConfigError before a session takes its first step (``fix`` and ``setting`` say what to change).

    A write that fails later (a full disk, the file or its directory removed) does not raise in the
    middle of a step: ``error`` holds it as an ``AutosaveError``, the session (which keeps every
    record in memory) pauses at its next safe point, and nothing more is appended, since a record
    after a missing one would make a file that no longer folds into the history. ``catch_up`` then
    writes the file whole again from the session's records.
    """

    def __init__(
        self,
        path: Path,
        redactor: Redactor,
        *,
        fix: str = "Set RLM.trajectory_dir to a directory you can write to (%config "
        "RLM.trajectory_dir = '...', or --set trajectory_dir=...), or turn autosave off "
        "(RLM.autosave = False)",
        setting: str | None = "RLM.trajectory_dir",
    ) -> None:
        self.path = path
        self.error: AutosaveError | None = None
        self._redactor = redactor
        self._file: IO[str] | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.open("a", encoding="utf-8").close()
        except OSError as exc:
            raise ConfigError(
                f"Cannot autosave the trajectory to {path}: {unwritable(path, exc)}",
                fix=fix,
                setting=setting,
            ) from exc

    def write(self, record: Mapping[str, Any]) -> None:
        """Append ``record``; on failure set ``error`` instead of raising (see the class)."""
        if self.error is not None:
            return  # held back until ``catch_up``: it would follow a record the file lacks
        try:
            if self._file is None:
                # Opened on demand, so a finished session that is rewound keeps appending.
                self._file = self.path.open("a", encoding="utf-8")
            self._file.write(self._line(record))
            self._file.flush()
            # A file removed while open takes every write and keeps none: as lost as a full disk.
            if os.fstat(self._file.fileno()).st_nlink == 0:
                raise FileNotFoundError(errno.ENOENT, "the file was removed during the run")
        except OSError as exc:
            self._failed(exc)

    def catch_up(self, records: Sequence[Mapping[str, Any]]) -> None:
        """After a failed write: write the whole file again from ``records`` (all the session
        holds), beside it first and then moved into place, so a torn or missing line is mended
        and the old file stays as it was if this fails too (``error`` then says why). Does
        nothing when no write failed."""
        if self.error is None:
            return
        spare = self.path.with_name(f".{self.path.name}.partial")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with spare.open("w", encoding="utf-8") as f:
                for record in records:
                    f.write(self._line(record))
            os.replace(spare, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                spare.unlink()
            self.error = None  # so that _failed words the new reason
            self._failed(exc)
            return
        self.error = None

    def close(self) -> None:
        if self._file is not None:
            # Nothing is buffered after a flushed write; a failed one was set aside in ``error``.
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None

    def _line(self, record: Mapping[str, Any]) -> str:
        return self._redactor.scrub(dumps(record)) + "\n"

    def _failed(self, exc: OSError) -> None:
        self.close()  # the next try opens the file again
        self.error = AutosaveError(
            f"The autosave of the trajectory to {self.path} failed: {exc.strerror or exc}",
            fix="Nothing is lost: every record is kept in memory, and the session takes no further "
            "step until it can write them. Save them elsewhere with result.trajectory.save(path) "
            "(or session.trajectory.save(path)); "
            f"free space in {self.path.parent} and resume (session.run(), %rlm resume) to write "
            "the file whole again and go on; set RLM.trajectory_dir to a disk with room for new "
            "sessions",
            setting="RLM.trajectory_dir",
        )
