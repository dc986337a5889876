"""PostgreSQL full-text search as a retriever: for a collection that outgrows one machine's file.

One table holds the documents (``id``, ``title``, ``text``, ``meta`` jsonb) and a generated
``tsvector`` column (the title weighted A, the text B) with a GIN index on it. A query goes through
``websearch_to_tsquery`` (free text is always a valid query: quotes make a phrase, ``-word``
excludes, ``or`` alternates, and nothing raises a syntax error), the hits are ranked by
``ts_rank_cd`` (cover density: terms close together count more; divided by 1 + the log of the
document's length, so a long document does not win by repeating a word) and only the top ``k`` get a
``ts_headline`` snippet, since a headline re-parses the whole document and is slow on many rows.
``within`` is a parameter of the query (``id = ANY(%s)``), never a filter after it.

The text search configuration (``english`` stems and drops stop words, ``simple`` keeps every word
as written) is chosen when the table is made and kept in the table's comment, with whether its build
finished, so a retriever opened later searches with the same one.

Every connection string is kept away from what is shown: ``describe()`` and ``repr`` name the
server by host, port, database and user only (``safe_dsn``, built with psycopg's own conninfo
parser), and the errors raised from psycopg's are re-worded without it. psycopg is imported only
here, and this module only when a ``postgresql://`` retriever or index is opened (the ``postgres``
extra installs it).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .. import _stdjson as json
from ..errors import RetrievalError
from ._build import Checkpoint
from ._documents import Doc
from ._protocol import Hit

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresRetriever", "PostgresWriter", "parse_spec", "safe_dsn"]

CONFIGS = ("english", "simple")
_SECRET_KEYS = ("password", "sslpassword", "passfile")
_OPTIONS = ("table", "config")  # ours, taken out of a spec before libpq sees it
_QUOTED = re.compile(r'"[^"]*"')
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_MAX_K = 1000
MAX_QUERY_WORDS = 64
# What makes a query more than a bag of words for websearch_to_tsquery: a phrase, an exclusion, an "or".
_OPERATORS = re.compile(r'"|(?:^|\s)-\w|\bor\b', re.IGNORECASE)
# A tsvector holds at most 1 MiB of lexemes; the text indexed is cut to this many characters so a
# huge document is indexed by its start rather than refused (get() still returns all of it).
INDEXED_CHARS = 500_000
_HEADLINE = (
    "MaxFragments=2, MaxWords=18, MinWords=6, FragmentDelimiter=' … ', StartSel=**, StopSel=**"
)


def safe_dsn(dsn: str) -> str:
    """``dsn`` as a ``postgresql://user@host:port/dbname`` line with no password (nor passfile):
    what may be shown, logged and recorded."""
    import psycopg.conninfo

    try:
        parts = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "postgresql://(a connection string that does not parse)"
    user = f"{parts['user']}@" if parts.get("user") else ""
    host = str(parts.get("host") or parts.get("hostaddr") or "localhost")
    if host.startswith("/"):  # a unix socket directory
        host = f"[{host}]"
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{host}{port}/{parts.get('dbname') or ''}"


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """Split a ``postgresql://…?table=issues&config=simple`` spec into the DSN libpq gets and our
    options (libpq refuses query parameters it does not know)."""
    try:
        url = urlsplit(spec)
    except ValueError as e:  # e.g. a bracket in the password: "Invalid IPv6 URL"
        raise RetrievalError(
            f"The PostgreSQL spec does not parse as a URL ({e})",
            fix="percent-encode special characters in it (a password's [ ] @ / as %5B %5D %40 "
            "%2F), or leave the password out and set PGPASSWORD",
        ) from None
    if url.scheme not in ("postgresql", "postgres"):
        raise RetrievalError(
            f"not a PostgreSQL spec: {safe_dsn(spec)!r}",
            fix="write it as postgresql://user@host:5432/dbname?table=documents",
        )
    pairs = parse_qsl(url.query, keep_blank_values=True)
    ours = {k: v for k, v in pairs if k in _OPTIONS}
    rest = [(k, v) for k, v in pairs if k not in _OPTIONS]
    return urlunsplit(url._replace(query=urlencode(rest))), ours


def _table_name(table: str) -> str:
    if not _NAME.fullmatch(table):
        raise RetrievalError(
            f"{table!r} is not a table name rlm_kernel uses",
            fix="letters, digits and underscores, starting with a letter, at most 63 characters",
        )
    return table


def _config(config: str) -> str:
    if config not in CONFIGS:
        raise RetrievalError(
            f"unknown text search configuration {config!r}",
            fix=f"use one of {', '.join(CONFIGS)}",
        )
    return config


def _reworded(error: Exception, dsn: str, table: str) -> RetrievalError:
    """A psycopg error as a RetrievalError with a fix, its message free of the DSN's secrets."""
    import psycopg

    where = safe_dsn(dsn)
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    for secret in _secrets(dsn):
        message = message.replace(secret, "***")
    if not _parses(dsn):
        # libpq quotes the part it could not read, which may be the password: say where, not what.
        shown = _QUOTED.sub('"…"', message)
        return RetrievalError(
            f"the PostgreSQL connection string does not parse: {shown}",
            fix="write it as postgresql://user:password@host:5432/dbname, with spaces and"
            " special characters percent-encoded (%20)",
        )
    if isinstance(error, psycopg.errors.UndefinedTable):
        return RetrievalError(
            f"there is no index table {table!r} in {where}",
            fix=f"build it with rlm_kernel.index(source, '{where}?table={table}'), or name the table"
            " that holds it (?table=…)",
        )
    if isinstance(error, psycopg.OperationalError):
        return RetrievalError(
            f"cannot reach PostgreSQL at {where}: {message}",
            fix="start the server, or correct the host, port, database, user or password",
        )
    return RetrievalError(f"PostgreSQL at {where} failed: {message}", fix="see the server's log")


def _parses(dsn: str) -> bool:
    import psycopg.conninfo

    try:
        psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return False
    return True


def _secrets(dsn: str) -> list[str]:
    import psycopg.conninfo

    try:
        parts = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return []
    return [str(parts[k]) for k in _SECRET_KEYS if parts.get(k)]


class _Connection:
    """One autocommit connection, opened on first use and again after it broke; psycopg serialises
    the calls of several threads on it."""

    def __init__(self, dsn: str, table: str, connect_timeout: float) -> None:
        self._dsn, self._table, self._timeout = dsn, table, connect_timeout
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    @contextmanager
    def cursor(self) -> Iterator[psycopg.Cursor[Any]]:
        import psycopg

        try:
            with self._lock:
                if self._conn is None or self._conn.closed or self._conn.broken:
                    self._conn = psycopg.connect(
                        self._dsn, autocommit=True, connect_timeout=max(1, round(self._timeout))
                    )
                conn = self._conn
            with conn.cursor() as cur:
                yield cur
        except psycopg.Error as error:
            raise _reworded(error, self._dsn, self._table) from None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _read_comment(cur: psycopg.Cursor[Any], table: str) -> dict[str, Any] | None:
    cur.execute("SELECT obj_description(to_regclass(%s), 'pg_class')", (table,))
    row = cur.fetchone()
    if row is None or row[0] is None:
        return None
    try:
        value = json.loads(row[0])
    except ValueError:
        return None
    return value if isinstance(value, dict) and value.get("rlm_kernel") else None


class PostgresRetriever:
    """Search an index table of a PostgreSQL database (``rlm_kernel.index`` builds one).

    ``PostgresRetriever("postgresql://user:pw@host/db", table="documents")``; the configuration the
    table was built with is read from it. Thread-safe (one connection, calls serialised)."""

    def __init__(
        self, dsn: str, table: str = "documents", *, connect_timeout: float = 10.0
    ) -> None:
        self.table = _table_name(table)
        self._dsn = dsn
        self._db = _Connection(dsn, self.table, connect_timeout)
        with self._db.cursor() as cur:
            meta = _read_comment(cur, self.table)
        if meta is None:
            raise _missing(dsn, self.table)
        if not meta.get("complete"):
            raise RetrievalError(
                f"the index table {self.table!r} in {safe_dsn(dsn)} is not finished"
                f" ({int(meta.get('documents', 0)):,} documents so far, from {meta.get('source')!r})",
                fix="rerun the same rlm_kernel.index(source, spec) to finish it",
            )
        self.config = _config(str(meta.get("config", "english")))
        self._count = int(meta.get("documents", 0))
        self.source = str(meta.get("source", ""))

    @classmethod
    def from_spec(cls, spec: str, **kwargs: Any) -> PostgresRetriever:
        """Open ``postgresql://…?table=name`` (``table`` defaults to ``documents``)."""
        dsn, options = parse_spec(spec)
        return cls(dsn, options.get("table", "documents"), **kwargs)

    def search(
        self, query: str, k: int = 10, *, within: Collection[str] | None = None
    ) -> list[Hit]:
        """The ``k`` best matches for ``query`` (web-search syntax), best first."""
        k = _check_k(k)
        if not isinstance(query, str):
            raise RetrievalError(f"search() takes a str query, not a {type(query).__name__}")
        words = _clean(query).split()
        # A query of thousands of words (the same one repeated, say) made the server work for
        # seconds (2,000 words: 21 s); no question needs more than the first MAX_QUERY_WORDS.
        query = " ".join(words[:MAX_QUERY_WORDS])
        if not query or (within is not None and not within):
            return []
        scope = [_clean(str(i)) for i in within] if within is not None else None
        hits = self._search("websearch_to_tsquery(%(cfg)s::regconfig, %(query)s)", query, k, scope)
        if not hits and not _OPERATORS.search(query):
            # websearch_to_tsquery ANDs the words: a question's word that no document has (the
            # model writes "which issues mention…") empties the result. Then any of the words,
            # ranked by how many and how close (ts_rank_cd), rather than nothing.
            anyword = (
                "replace(websearch_to_tsquery(%(cfg)s::regconfig, %(query)s)::text, ' & ', ' | ')"
            )
            hits = self._search(f"NULLIF({anyword}, '')::tsquery", query, k, scope)
        return hits

    def _search(self, tsquery: str, query: str, k: int, within: list[str] | None) -> list[Hit]:
        scope = "AND d.id = ANY(%(within)s)" if within is not None else ""
        # The k best first, the headlines for those alone: a headline re-parses its document.
        sql = f"""
            WITH q AS (SELECT {tsquery} AS q),
            top AS (
                SELECT d.id, d.title, d.text, ts_rank_cd(d.tsv, q.q, 1) AS score
                FROM {self.table} AS d, q
                WHERE d.tsv @@ q.q {scope}
                ORDER BY score DESC, d.id
                LIMIT %(k)s
            )
            SELECT top.id, top.title, top.score,
                   ts_headline(%(cfg)s::regconfig, left(top.text, {INDEXED_CHARS}), q.q, %(hl)s)
            FROM top, q
            ORDER BY top.score DESC, top.id
        """  # the table name is checked by _table_name; the rest are parameters
        params = {"cfg": self.config, "query": query, "k": k, "hl": _HEADLINE, "within": within}
        with self._db.cursor() as cur:
            cur.execute(sql, params)
            rows = cur.fetchall()
        return [
            Hit(id=row[0], score=float(row[2]), title=row[1], snippet=" ".join(row[3].split()))
            for row in rows
        ]

    def get(self, doc_id: str, *, within: Collection[str] | None = None) -> str:
        """The text of ``doc_id``; a ``RetrievalError`` when there is none or it is outside ``within``."""
        doc_id = _clean(str(doc_id))
        if within is not None and doc_id not in {str(i) for i in within}:
            raise RetrievalError(
                f"document {doc_id!r} is outside the scope this session was given",
                fix="read only the ids its search() returns, or the ids in the scope",
            )
        with self._db.cursor() as cur:
            cur.execute(f"SELECT text FROM {self.table} WHERE id = %s", (doc_id,))
            row = cur.fetchone()
        if row is None:
            raise RetrievalError(
                f"no document {doc_id!r} in {self.describe()}",
                fix="use an id that search() returned",
            )
        return str(row[0])

    def count(self) -> int:
        """How many documents the table holds (recorded when its build finished: no scan)."""
        return self._count

    def describe(self) -> str:
        """``PostgreSQL full-text index 'documents' (1,000 documents, english) at
        postgresql://user@host:port/db``: never the password."""
        return (
            f"PostgreSQL full-text index {self.table!r} ({self._count:,} documents, {self.config})"
            f" at {safe_dsn(self._dsn)}"
        )

    def close(self) -> None:
        """Close the connection (a later call opens a new one)."""
        self._db.close()

    def __enter__(self) -> PostgresRetriever:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<PostgresRetriever {self.describe()}>"


def _missing(dsn: str, table: str) -> RetrievalError:
    where = safe_dsn(dsn)
    return RetrievalError(
        f"there is no rlm_kernel index table {table!r} in {where}",
        fix=f"build it with rlm_kernel.index(source, '{where}?table={table}'), or name the table"
        " that holds it (?table=…)",
    )


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= _MAX_K:
        raise RetrievalError(
            f"k must be a whole number from 1 to {_MAX_K}, not {k!r}", fix="search(query, k=10)"
        )
    return k


def _clean(value: str) -> str:
    # PostgreSQL's text cannot hold NUL; it carries no meaning in a query or a document anyway.
    return value.replace("\x00", "")


class PostgresWriter:
    """The builder's writer for a PostgreSQL table (``_build.IndexWriter``): ``rlm_kernel.index(source,
    "postgresql://…?table=name")`` builds through it with the same batches, progress and resume as
    the embedded index.

    Each batch is one transaction: a ``COPY`` of its rows into the table and the checkpoint (kept
    in the table's comment, which PostgreSQL changes transactionally), so a build killed at any
    point leaves the table as of its last checkpoint. The GIN index is made once at the end
    (``finish``): building it over the whole table at once is faster than keeping it up to date
    row by row, and a table that is not finished is not searched anyway. Rows stream to the server
    as they come, so memory stays at one batch.
    """

    def __init__(
        self,
        dsn: str,
        table: str = "documents",
        *,
        config: str = "english",
        connect_timeout: float = 10.0,
    ) -> None:
        import psycopg

        self.table = _table_name(table)
        self.config = _config(config)
        self._dsn = dsn
        try:
            self._conn = psycopg.connect(dsn, connect_timeout=max(1, round(connect_timeout)))
        except psycopg.Error as error:
            raise _reworded(error, dsn, self.table) from None

    @classmethod
    def from_spec(cls, spec: str, **kwargs: Any) -> PostgresWriter:
        """``postgresql://…?table=name&config=simple`` (table ``documents``, config ``english``)."""
        dsn, options = parse_spec(spec)
        if "config" in options:
            kwargs.setdefault("config", options["config"])
        return cls(dsn, options.get("table", "documents"), **kwargs)

    @contextmanager
    def _cursor(self) -> Iterator[psycopg.Cursor[Any]]:
        import psycopg

        try:
            with self._conn.cursor() as cur:
                yield cur
        except psycopg.errors.UniqueViolation as error:
            self._conn.rollback()
            detail = (error.diag.message_detail or "").replace("Key (id)=", "")
            raise RetrievalError(
                f"the source holds a document id twice: {detail}",
                fix="give every document a unique id (id_field=…), then rebuild",
            ) from None
        except psycopg.Error as error:
            if not self._conn.closed:
                self._conn.rollback()
            raise _reworded(error, self._dsn, self.table) from None

    def checkpoint(self) -> Checkpoint | None:
        """The committed checkpoint; None when there is no such table. A table of the same name
        that rlm_kernel did not make is refused, never dropped."""
        with self._cursor() as cur:
            cur.execute("SELECT to_regclass(%s) IS NOT NULL", (self.table,))
            exists = bool((cur.fetchone() or (False,))[0])
            meta = _read_comment(cur, self.table) if exists else None
        self._conn.commit()
        if not exists:
            return None
        if meta is None:
            raise RetrievalError(
                f"{self.describe()}: the table exists and is not an rlm_kernel index",
                fix="name another table (?table=…); rlm_kernel never replaces a table it did not make",
            )
        return Checkpoint(
            fingerprint=str(meta.get("fingerprint", "")),
            source=str(meta.get("source", "")),
            cursor=meta.get("cursor"),
            documents=int(meta.get("documents", 0)),
            complete=bool(meta.get("complete")),
        )

    def start(self, fingerprint: str, source: str, cursor: Any) -> None:
        """Drop the index table (an rlm_kernel one only: ``checkpoint`` checked) and make it anew."""
        self.checkpoint()
        t, cfg = self.table, self.config
        with self._cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {t}")
            cur.execute(
                f"""
                CREATE TABLE {t} (
                    id text PRIMARY KEY,
                    title text NOT NULL DEFAULT '',
                    text text NOT NULL,
                    meta jsonb NOT NULL DEFAULT '{{}}',
                    tsv tsvector GENERATED ALWAYS AS (
                        setweight(to_tsvector('{cfg}'::regconfig, title), 'A') ||
                        setweight(to_tsvector('{cfg}'::regconfig, left(text, {INDEXED_CHARS})), 'B')
                    ) STORED
                )
                """
            )
            self._state = {
                "fingerprint": fingerprint,
                "source": source,
                "cursor": cursor,
                "documents": 0,
                "complete": False,
            }
            self._comment(cur, self._state)
        self._conn.commit()

    def add(self, docs: Sequence[Doc]) -> None:
        """``COPY`` a batch into the table inside the open transaction."""
        with (
            self._cursor() as cur,
            cur.copy(f"COPY {self.table} (id, title, text, meta) FROM STDIN") as copy,
        ):
            for doc in docs:
                meta = json.dumps(doc.meta or {}, default=str, ensure_ascii=False)
                copy.write_row((_clean(doc.id), _clean(doc.title), _clean(doc.text), _clean(meta)))

    def commit(self, cursor: Any, documents: int) -> None:
        """Commit the rows added since the last commit with the checkpoint after them."""
        state = self._current()
        state.update(cursor=cursor, documents=documents)
        with self._cursor() as cur:
            self._comment(cur, state)
        self._conn.commit()

    def finish(self, documents: int) -> None:
        """Make the GIN index, ``ANALYZE``, and mark the build complete."""
        state = self._current()
        state.update(documents=documents, complete=True)
        with self._cursor() as cur:
            cur.execute("SET LOCAL maintenance_work_mem = '256MB'")
            cur.execute(
                f"CREATE INDEX IF NOT EXISTS {self.table}_tsv ON {self.table} USING gin (tsv)"
            )
            cur.execute(f"ANALYZE {self.table}")
            self._comment(cur, state)
        self._conn.commit()

    def size(self) -> int:
        """Bytes the table, its TOAST and its indexes take on the server."""
        with self._cursor() as cur:
            cur.execute("SELECT pg_total_relation_size(to_regclass(%s))", (self.table,))
            row = cur.fetchone()
        self._conn.commit()
        return int(row[0] or 0) if row else 0

    def describe(self) -> str:
        """The table and the server, without a password."""
        return f"the PostgreSQL table {self.table!r} at {safe_dsn(self._dsn)}"

    def close(self) -> None:
        """Close the connection; an uncommitted batch is rolled back by the server."""
        self._conn.close()

    def __repr__(self) -> str:
        return f"<PostgresWriter {self.describe()}>"

    def _current(self) -> dict[str, Any]:
        state = getattr(self, "_state", None)
        if state is None:  # resuming: the checkpoint the table holds
            with self._cursor() as cur:
                state = _read_comment(cur, self.table) or {}
            self._state = state
        return state

    def _comment(self, cur: psycopg.Cursor[Any], values: Mapping[str, Any]) -> None:
        text = json.dumps({"rlm_kernel": 1, **values, "config": self.config})
        # COMMENT takes no parameters: the JSON goes in as a quoted literal.
        literal = "'" + text.replace("'", "''") + "'"
        cur.execute(f"COMMENT ON TABLE {self.table} IS {literal}")
