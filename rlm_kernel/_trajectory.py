"""The trajectory: one versioned record schema, written as it happens and read back.

A trajectory is a list of records, each a JSON object with a ``type``:

- ``session`` (first): ids, question, context fingerprint (type, length, sha256 — never the context
  itself), settings (never an API key), models, and the system and metadata messages the model saw.
- ``iteration``: the model call (model, request key, usage, latency), the raw response, the code as
  proposed and as executed (``edited_by_user`` and a unified diff when a person changed it), each
  block's stdout/stderr/traceback/value, the observation sent back, notes, the sub-call tree (child
  RLMs nested as their own trajectories), and the submission if any.
- ``rewind``: later iterations from ``to_iteration`` on are superseded (a person re-ran an earlier step).
- ``compaction``: the root history was summarised after ``after_iteration``.
- ``follow_up``: a new question asked in the same session after ``after_iteration``.
- ``final``: answer, reason, usage, and the forced best-answer call if a limit ended the run (one per
  question; a follow-up adds another).

Autosave appends each record as one JSONL line and flushes it, so a crash loses at most the iteration
in flight. ``save``/``load`` round-trip both ``.jsonl`` and ``.json`` (``{"schema_version", "records"}``);
both formats are this module's own, and so is keeping secrets out of what it writes. The other formats
are views written by ``rlm_kernel.exporters``, which import this module: ``Trajectory.export`` reaches
them through the exporter installed with ``use_exporter``, never by importing them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any, Protocol

from ._environment import env_value
from ._secrets import Redactor
from .errors import TrajectoryError

SCHEMA_VERSION = 1
RECORD_TYPES = frozenset({"session", "iteration", "rewind", "compaction", "follow_up", "final"})


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

    def __init__(self, records: list[dict[str, Any]] | None = None) -> None:
        self.records: list[dict[str, Any]] = records if records is not None else []

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Trajectory) and self.records == other.records

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        question = self.session.get("question", "") if self.records else ""
        return f"<Trajectory {question[:40]!r}: {len(self.iterations)} iterations>"

    def append(self, record: dict[str, Any]) -> None:
        """Add ``record`` at the end (the session does; readers need not)."""
        self.records.append(record)

    @property
    def session(self) -> dict[str, Any]:
        """The first record: ids, question, context fingerprint, settings, models, preamble."""
        if not self.records or self.records[0].get("type") != "session":
            raise TrajectoryError(
                "This trajectory has no session record", fix="Load a complete trajectory file"
            )
        return self.records[0]

    @property
    def iterations(self) -> list[dict[str, Any]]:
        """The iterations that stand, with rewinds applied."""
        current: list[dict[str, Any]] = []
        for record in self.records:
            if record["type"] == "iteration":
                current.append(record)
            elif record["type"] == "rewind":
                current = [r for r in current if r["iteration"] < record["to_iteration"]]
        return current

    @property
    def final(self) -> dict[str, Any] | None:
        """The latest final record, if the latest question was answered."""
        last = self.records[-1] if self.records else None
        return last if last is not None and last["type"] == "final" else None

    def subcalls(self) -> Iterator[dict[str, Any]]:
        """Every sub-call in the tree, children's included, depth first."""
        for iteration in self.iterations:
            for call in iteration.get("subcalls", []):
                yield call
                if call.get("child"):
                    yield from Trajectory.from_dict(call["child"]).subcalls()

    def to_dict(self) -> dict[str, Any]:
        """``{"schema_version", "records"}``: what the ``json`` format holds."""
        return {"schema_version": SCHEMA_VERSION, "records": self.records}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Trajectory:
        """The trajectory ``to_dict`` made (a child RLM's, say), checked like a file."""
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise TrajectoryError(
                f"Trajectory schema version {version!r} is not supported (this rlm_kernel reads "
                f"version {SCHEMA_VERSION})",
                fix="Open it with the rlm_kernel version that wrote it",
            )
        records = list(data.get("records", []))
        _validate(records, "<dict>")
        return cls(records)

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
        records: list[dict[str, Any]] = []
        # Split on newline bytes only: str.splitlines() would also split inside a record's text at
        # characters JSON leaves unescaped (U+2028, U+0085, ...).
        lines = data.split(b"\n")
        while lines and not lines[-1].strip():
            lines.pop()
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line.decode("utf-8")))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                if number == len(lines):
                    break  # the last line was being written when the process died (even mid-character)
                raise TrajectoryError(
                    f"{source}, line {number}, is not valid JSON: {exc}", fix="Check the file"
                ) from exc
        _validate(records, str(source))
        if records[0].get("schema_version") != SCHEMA_VERSION:
            raise TrajectoryError(
                f"{source} has schema version {records[0].get('schema_version')!r}; this rlm_kernel "
                f"reads version {SCHEMA_VERSION}",
                fix="Open it with the rlm_kernel version that wrote it",
            )
        return cls(records)


def _validate(records: list[dict[str, Any]], where: str) -> None:
    if not records or records[0].get("type") != "session":
        raise TrajectoryError(f"{where} does not start with a session record", fix="Check the file")
    for record in records:
        if record.get("type") not in RECORD_TYPES:
            raise TrajectoryError(
                f"{where} holds a record of unknown type {record.get('type')!r}",
                fix="Open it with the rlm_kernel version that wrote it",
            )


def dumps(record: Mapping[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)


class TrajectoryWriter:
    """Appends records to a JSONL file, one flushed line each."""

    def __init__(self, path: Path, redactor: Redactor) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._redactor = redactor
        self._file: IO[str] | None = None

    def write(self, record: Mapping[str, Any]) -> None:
        if self._file is None:
            # Opened on demand, so a finished session that is rewound keeps appending.
            self._file = self.path.open("a", encoding="utf-8")
        self._file.write(self._redactor.scrub(dumps(record)) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
