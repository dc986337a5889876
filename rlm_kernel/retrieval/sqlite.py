"""The embedded index: one SQLite file with an FTS5 full-text table, BM25 ranking, no server.

Schema: ``docs`` (rowid, ``id`` unique, ``title``, ``text``, ``meta`` JSON) holds the documents once;
``fts`` is an FTS5 table over ``title`` and ``text`` with ``docs`` as its external content (the text
is not stored twice), kept in step by triggers; ``build`` holds the builder's checkpoint. Tokens are
Unicode words with diacritics folded and English (Porter) stemming, so "leaks" finds "leak".

A query is free text and never an FTS5 syntax error: each word (or a "quoted phrase") becomes a
quoted FTS5 phrase, a trailing ``*`` a prefix; the phrases are OR-ed and BM25 ranks the documents
holding more and rarer of them first (the title weighs ``TITLE_WEIGHT`` times the text). OR rather
than AND because the model writes questions, not boolean queries: AND of every word returns nothing
as soon as one word is absent from the right document, while BM25 over OR still puts the documents
with all the words on top. ``within`` is a rowid join in the same SQL; snippets are computed for the
``k`` hits only.

BM25 is computed for a bounded set of candidates (``CANDIDATES``), not for every match: FTS5 scores
each matching row (about 4 µs a row here) before it sorts, so a query with a common word ("error",
"the") would cost in proportion to the collection: at 10⁶ generated issues (a Zipf vocabulary with
stop words, topic words in 1-16% of the documents) and 200 questions of 1-5 words, a median of 950
ms, 5 s at the 95th percentile. Counting a phrase's matches walks its doclist without scoring (some
70 times cheaper), so each phrase's count, capped, is taken first (``plan_match``): the candidates
are the documents holding one of the rarest phrases (their counts summing to at most
``CANDIDATES``), still scored by every phrase of the query; a query whose phrases are all common
ranks the documents holding all of them (the first ``CANDIDATES`` of those, where more do). The rare
phrases weigh twice in the score of such a query (they are in both halves of its expression): they
carry the IDF anyway. On the same queries, with the whole search (snippets included), the median is
57 ms at 10⁶ (125 ms at the 95th percentile; 9.6 ms at 10⁵), and the top ten agree with the exact OR
ranking for all hits at 10⁵ and 0.70 of them at 10⁶. ``CANDIDATES`` trades one for the other: 10,000
gave 10 ms and 0.50 at 10⁶, 100,000 gave 65 ms and 0.84 (ranking alone, on two shared cores); 50,000
keeps the median at half the 100 ms target. Within a scope of at most ``CANDIDATES`` documents the
ranking is the exact one: the scope bounds it already.

Connections: opened read-only and pooled (the model's code may call ``search`` from many
``llm_batch`` threads at once: each query takes one and puts it back); a finished index is switched
out of WAL, so it is one self-contained file.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import threading
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .. import _stdjson as json
from ..errors import RetrievalError
from ._build import Checkpoint
from ._documents import Doc
from ._protocol import Hit

__all__ = [
    "CANDIDATES",
    "SCHEMA_VERSION",
    "SQLiteIndex",
    "SQLiteWriter",
    "match_expression",
    "match_phrases",
    "plan_match",
]

SCHEMA_VERSION = 1
TITLE_WEIGHT = 2.0
SNIPPET_TOKENS = 32
TOKENIZE = "porter unicode61 remove_diacritics 2"
_TERMS = re.compile(r'"([^"]*)"|(\S+)')  # a lone quote is part of a word, and dropped
_WORD = re.compile(r"\w")

_SCHEMA = f"""
CREATE TABLE docs (rowid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, title TEXT NOT NULL,
                   text TEXT NOT NULL, meta TEXT);
CREATE VIRTUAL TABLE fts USING fts5(title, text, content='docs', content_rowid='rowid',
                                    tokenize='{TOKENIZE}');
CREATE TRIGGER docs_ai AFTER INSERT ON docs BEGIN
  INSERT INTO fts(rowid, title, text) VALUES (new.rowid, new.title, new.text);
END;
CREATE TRIGGER docs_ad AFTER DELETE ON docs BEGIN
  INSERT INTO fts(fts, rowid, title, text) VALUES ('delete', old.rowid, old.title, old.text);
END;
CREATE TRIGGER docs_au AFTER UPDATE ON docs BEGIN
  INSERT INTO fts(fts, rowid, title, text) VALUES ('delete', old.rowid, old.title, old.text);
  INSERT INTO fts(rowid, title, text) VALUES (new.rowid, new.title, new.text);
END;
CREATE TABLE build (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO fts(fts, rank) VALUES ('rank', 'bm25({TITLE_WEIGHT}, 1.0)');
"""
_INSERT = "INSERT INTO docs (id, title, text, meta) VALUES (?, ?, ?, ?)"
MAX_K = 1000  # hits per search: more is a scan of the collection, not a search
CANDIDATES = 50_000  # documents BM25 scores per query at most (see the module docstring)


def _check_fts5() -> None:
    try:
        sqlite3.connect(":memory:").execute("CREATE VIRTUAL TABLE t USING fts5(x)").close()
    except sqlite3.OperationalError as e:
        raise RetrievalError(
            f"This Python's SQLite ({sqlite3.sqlite_version}) has no FTS5 full-text search",
            fix="Use a Python whose sqlite3 is built with FTS5 (python.org, conda, Debian and "
            "Ubuntu builds are), or the PostgreSQL backend (postgresql://...)",
        ) from e


def match_phrases(query: str) -> list[str]:
    """The FTS5 phrases of ``query``, each quoted (so none is a syntax error), once each: a word
    or a "quoted phrase", a trailing ``*`` a prefix; text without a word character is dropped."""
    phrases = []
    for quoted, word in _TERMS.findall(query):
        text = quoted if quoted else word
        prefix = not quoted and text.endswith("*")
        text = text.rstrip("*") if prefix else text
        if _WORD.search(text):
            phrases.append('"' + text.replace('"', '""') + '"' + ("*" if prefix else ""))
    return list(dict.fromkeys(phrases))


def match_expression(query: str) -> str:
    """``query`` as an FTS5 MATCH expression that cannot be a syntax error ("" when it has no
    words): its phrases (``match_phrases``) OR-ed."""
    return " OR ".join(match_phrases(query))


def plan_match(db: sqlite3.Connection, phrases: Sequence[str], cap: int = CANDIDATES) -> str | None:
    """The MATCH expression whose matches BM25 scores: at most about ``cap`` of them (see the
    module docstring). None when no phrase occurs in the index at all."""
    count = "SELECT count(*) FROM (SELECT 1 FROM fts WHERE fts MATCH ? LIMIT ?)"
    counts = {p: int(db.execute(count, (p, cap + 1)).fetchone()[0]) for p in phrases}
    present = sorted((p for p in phrases if counts[p]), key=counts.__getitem__)
    if not present:
        return None
    rare: list[str] = []
    total = 0
    for phrase in present:
        if total + counts[phrase] > cap:
            break
        rare.append(phrase)
        total += counts[phrase]
    every = " OR ".join(present)
    if not rare:
        return " AND ".join(present)
    if len(rare) == len(present):
        return every
    return f"({' OR '.join(rare)}) AND ({every})"


class SQLiteWriter:
    """The builder's writer for an index file (``_build.IndexWriter``)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        _check_fts5()
        self.path = Path(path).expanduser()
        if self.path.is_dir():
            raise RetrievalError(
                f"{str(self.path)!r} is a directory", fix="Name a file, e.g. index.sqlite"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.DatabaseError as e:
            raise _not_an_index(self.path, e) from e
        self._wal = False

    def _writing(self) -> None:
        """WAL from the first write on (a finished index only looked at stays as it is). A killed
        process loses nothing committed at synchronous=NORMAL in WAL mode; only a power loss could,
        and then the build resumes from an earlier checkpoint."""
        if not self._wal:
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = NORMAL")
            self._wal = True

    def checkpoint(self) -> Checkpoint | None:
        """The committed checkpoint; None for a new file. A file that is not an index is refused
        here, before ``start`` could drop anything of it."""
        try:
            tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master")}
            if not tables:
                return None
            if "build" not in tables or "docs" not in tables:
                raise _not_an_index(self.path)
            state = _checkpoint(self.db, self.path)
        except sqlite3.DatabaseError as e:
            raise _not_an_index(self.path, e) from e
        if "fingerprint" not in state:
            return None  # created, but killed before its first checkpoint
        return Checkpoint(**state)

    def start(self, fingerprint: str, source: str, cursor: Any) -> None:
        """Drop what the file holds and make the tables, with a fresh checkpoint."""
        drop = "DROP TABLE IF EXISTS fts; DROP TABLE IF EXISTS docs; DROP TABLE IF EXISTS build;"
        self._writing()
        self.db.executescript(
            f"BEGIN IMMEDIATE; {drop} {_SCHEMA} "
            f"INSERT INTO build VALUES ('schema', '{SCHEMA_VERSION}'); COMMIT;"
        )
        self._record(Checkpoint(fingerprint, source, cursor, 0, False))

    def add(self, docs: Sequence[Doc]) -> None:
        """Insert a batch in the open transaction; an id already there is the source's error."""
        self._writing()
        if not self.db.in_transaction:
            self.db.execute("BEGIN")
        rows = [
            (d.id, d.title, d.text, None if d.meta is None else json.dumps(d.meta, default=str))
            for d in docs
        ]
        try:
            self.db.executemany(_INSERT, rows)
        except sqlite3.IntegrityError as e:
            self.db.execute("ROLLBACK")
            raise self._duplicate(rows) from e

    def _duplicate(self, rows: Sequence[tuple[Any, ...]]) -> RetrievalError:
        ids = [r[0] for r in rows]
        seen: set[str] = set()
        twice = next((i for i in ids if i in seen or seen.add(i)), None)  # type: ignore[func-returns-value]
        if twice is None:
            marks = ",".join("?" * len(ids))
            found = self.db.execute(f"SELECT id FROM docs WHERE id IN ({marks})", ids).fetchone()
            twice = found[0] if found else ids[0]
        return RetrievalError(
            f"The source holds document id {twice!r} twice: an index needs each id once",
            fix="Make the ids unique, pick another field (id_field=..., --id-field), or number "
            "the records by position (id_field='')",
        )

    def commit(self, cursor: Any, documents: int) -> None:
        """Commit the batches since the last commit together with the checkpoint after them."""
        state = _checkpoint(self.db, self.path)
        self._record(Checkpoint(state["fingerprint"], state["source"], cursor, documents, False))

    def _record(self, checkpoint: Checkpoint) -> None:
        self._writing()
        if not self.db.in_transaction:
            self.db.execute("BEGIN")
        value = json.dumps(vars(checkpoint))
        self.db.execute("INSERT OR REPLACE INTO build VALUES ('checkpoint', ?)", (value,))
        self.db.execute("COMMIT")

    def finish(self, documents: int) -> None:
        """Merge the index's segments (faster queries), mark it complete, leave WAL: a finished
        index is one self-contained file, readable where it cannot be written."""
        self.db.execute("INSERT INTO fts(fts) VALUES ('optimize')")
        state = _checkpoint(self.db, self.path)
        fingerprint, source, cursor = state["fingerprint"], state["source"], state["cursor"]
        self._record(Checkpoint(fingerprint, source, cursor, documents, True))
        # A reader holding it open (a rebuild under a live retriever) keeps it WAL: as valid.
        with contextlib.suppress(sqlite3.OperationalError):
            self.db.execute("PRAGMA journal_mode = DELETE")

    def size(self) -> int:
        """Bytes on disk: the file, with its write-ahead log while there is one."""
        wal = self.path.with_name(self.path.name + "-wal")
        return sum(p.stat().st_size for p in (self.path, wal) if p.exists())

    def close(self) -> None:
        """Close the connection; an uncommitted batch is rolled back."""
        self.db.close()


def _not_an_index(path: Path, error: Exception | None = None) -> RetrievalError:
    why = f" ({error})" if error else ""
    return RetrievalError(
        f"{str(path)!r} is not an rlm_kernel index{why}",
        fix="Point at a file rlm_kernel.index() wrote, or at a new path to build one there",
    )


def _checkpoint(db: sqlite3.Connection, path: Path) -> dict[str, Any]:
    row = db.execute("SELECT value FROM build WHERE key = 'checkpoint'").fetchone()
    schema = db.execute("SELECT value FROM build WHERE key = 'schema'").fetchone()
    if schema is None or int(schema[0]) != SCHEMA_VERSION:
        raise RetrievalError(
            f"{str(path)!r} is an index of another format ({schema and schema[0]})",
            fix="Rebuild it with this version (rlm-kernel index --rebuild)",
        )
    return {} if row is None else dict(json.loads(row[0]))


class SQLiteIndex:
    """A finished index file, searched in place: ``search``, ``get``, ``count``, ``describe``.

    Connections are opened read-only and pooled: a thread takes one for a query and puts it back,
    so ``search`` from many ``llm_batch`` threads at once shares a few connections, never one.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        _check_fts5()
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise RetrievalError(
                f"No index at {str(self.path)!r}",
                fix="Build one first: rlm_kernel.index(source, path) or rlm-kernel index SOURCE PATH",
            )
        self._idle: list[sqlite3.Connection] = []
        self._open: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        try:
            with self._connection() as db:
                state = _checkpoint(db, self.path)
        except sqlite3.DatabaseError as e:
            raise _not_an_index(self.path, e) from e
        if not state.get("complete"):
            raise RetrievalError(
                f"The index {str(self.path)!r} is not finished ({state.get('documents', 0):,} "
                f"documents so far, from {state.get('source')!r})",
                fix="Rerun the same rlm_kernel.index(source, path) / rlm-kernel index to finish it",
            )
        self._count = int(state["documents"])
        self.source = str(state.get("source", ""))

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = self._idle.pop() if self._idle else None
        if db is None:
            uri = self.path.resolve().as_uri() + "?mode=ro"
            try:
                db = sqlite3.connect(uri, uri=True, check_same_thread=False)
            except sqlite3.Error as e:
                raise _not_an_index(self.path, e) from e
            with self._lock:
                self._open.append(db)
        try:
            yield db
        finally:
            with self._lock:
                self._idle.append(db)

    def search(
        self, query: str, k: int = 10, *, within: Collection[str] | None = None
    ) -> list[Hit]:
        """The ``k`` best BM25 matches for ``query``; with ``within``, among those ids only."""
        if not isinstance(query, str):
            raise RetrievalError(f"search() takes a str query, not a {type(query).__name__}")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise RetrievalError(f"k must be an int from 1 to {MAX_K}, not {k!r}", fix="e.g. k=10")
        phrases = match_phrases(query)
        if not phrases:
            raise RetrievalError(
                f"The query {query!r} has no words to search for",
                fix="Pass words or a \"quoted phrase\", e.g. search('memory leak exporter')",
            )
        if within is not None and not within:
            return []
        expression = " OR ".join(phrases)
        scope, scope_args = "", []
        if within is not None:
            scope = (
                "AND rowid IN (SELECT d.rowid FROM docs d JOIN json_each(?) j ON d.id = j.value)"
            )
            scope_args.append(json.dumps([str(i) for i in within]))
        # The k best of a bounded set of candidates, then the snippets for those k alone: a
        # snippet re-reads a document.
        sql = (
            "WITH top AS (SELECT rowid, rank FROM (SELECT rowid, rank FROM fts WHERE fts MATCH ? "
            f"{scope} LIMIT ?) ORDER BY rank LIMIT ?) "
            f"SELECT d.id, -top.rank, d.title, snippet(fts, 1, '', '', '…', {SNIPPET_TOKENS}) "
            "FROM top JOIN fts ON fts.rowid = top.rowid JOIN docs d ON d.rowid = top.rowid "
            "WHERE fts MATCH ? ORDER BY top.rank"
        )
        try:
            with self._connection() as db:
                bounded = within is not None and len(within) <= CANDIDATES
                candidates = expression if bounded else plan_match(db, phrases, CANDIDATES)
                if candidates is None:
                    return []
                args = [candidates, *scope_args, CANDIDATES, k, expression]
                rows = db.execute(sql, args).fetchall()
        except sqlite3.Error as e:
            raise RetrievalError(
                f"The index {str(self.path)!r} could not answer {query!r}: {e}"
            ) from e
        return [Hit(id=i, score=float(s), title=t, snippet=sn) for i, s, t, sn in rows]

    def get(self, doc_id: str, *, within: Collection[str] | None = None) -> str:
        """The text of ``doc_id``; a ``RetrievalError`` when it is not there or outside ``within``."""
        if within is not None and doc_id not in within:
            raise RetrievalError(
                f"Document {doc_id!r} is outside this session's scope",
                fix="Use an id from this session's search() hits",
            )
        with self._connection() as db:
            row = db.execute("SELECT text FROM docs WHERE id = ?", (str(doc_id),)).fetchone()
        if row is None:
            raise RetrievalError(
                f"No document {doc_id!r} in {self.describe()}",
                fix="Use an id from a search() hit",
            )
        return str(row[0])

    def meta(self, doc_id: str) -> dict[str, Any]:
        """The metadata recorded with ``doc_id`` (a record's other fields), {} when none."""
        with self._connection() as db:
            row = db.execute("SELECT meta FROM docs WHERE id = ?", (str(doc_id),)).fetchone()
        if row is None:
            raise RetrievalError(f"No document {doc_id!r} in {self.describe()}")
        return {} if row[0] is None else dict(json.loads(row[0]))

    def count(self) -> int:
        """How many documents the index holds (recorded when it was finished)."""
        return self._count

    def describe(self) -> str:
        """The backend, the file and the count."""
        return f"SQLite FTS5 index {self.path.name} ({self._count:,} documents)"

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            for db in self._open:
                db.close()
            self._open.clear()
            self._idle.clear()

    def __enter__(self) -> SQLiteIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SQLiteIndex({str(self.path)!r}, {self._count:,} documents)"
