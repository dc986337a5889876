"""PostgreSQL full-text search as a retriever: for a collection that outgrows one machine's file.

One table holds the documents (``id``, ``title``, ``text``, ``meta`` jsonb) and a generated
``tsvector`` column (the title weighted A, the text B) with a GIN index on it. A query goes through
``websearch_to_tsquery`` (free text is always a valid query: quotes make a phrase, ``-word``
excludes, ``or`` alternates, and nothing raises a syntax error), the hits are ranked by
``ts_rank_cd`` (cover density: terms close together count more) and only the top ``k`` get a
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

import json
import re
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import RetrievalError
from ._protocol import Hit

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresIndex", "PostgresRetriever", "parse_spec", "safe_dsn"]

CONFIGS = ("english", "simple")
_SECRET_KEYS = ("password", "sslpassword", "passfile")
_OPTIONS = ("table", "config")  # ours, taken out of a spec before libpq sees it
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_MAX_K = 1000
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
    url = urlsplit(spec)
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
    """Search an index table of a PostgreSQL database (``PostgresIndex`` builds one).

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
        self.config = _config(str(meta.get("config", "english")))
        self.complete = bool(meta.get("complete"))

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
        query = _clean(query)
        if not query.strip() or (within is not None and not within):
            return []
        scope = "AND id = ANY(%(within)s)" if within is not None else ""
        sql = f"""
            WITH q AS (SELECT websearch_to_tsquery(%(cfg)s::regconfig, %(query)s) AS q),
            top AS (
                SELECT d.id, d.title, d.text, ts_rank_cd(d.tsv, q.q) AS score
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
        params = {
            "cfg": self.config,
            "query": query,
            "k": k,
            "hl": _HEADLINE,
            "within": [_clean(str(i)) for i in within] if within is not None else None,
        }
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
        """How many documents the table holds (the planner's estimate is not used: exact)."""
        with self._db.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM {self.table}")
            row = cur.fetchone()
        return int(row[0]) if row else 0

    def describe(self) -> str:
        """``PostgreSQL full-text index 'documents' (english) at postgresql://user@host:port/db``."""
        state = "" if self.complete else ", build unfinished"
        return f"PostgreSQL full-text index {self.table!r} ({self.config}{state}) at {safe_dsn(self._dsn)}"

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


class PostgresIndex:
    """Write an index table: ``create()``, ``add(documents)`` in batches, ``finish()``.

    ``documents`` are ``(id, title, text, meta)`` tuples. Each ``add`` is one transaction (a
    ``COPY`` into the table, with the position the source reached), so a build killed midway
    leaves the batches before it and ``position()`` says where to go on from. ``finish()`` marks
    the table complete. Rows are streamed to the server as they come: memory does not grow with the
    collection.
    """

    def __init__(
        self,
        dsn: str,
        table: str = "documents",
        *,
        config: str = "english",
        connect_timeout: float = 10.0,
    ) -> None:
        self.table = _table_name(table)
        self.config = _config(config)
        self._dsn = dsn
        self._db = _Connection(dsn, self.table, connect_timeout)

    @classmethod
    def from_spec(cls, spec: str, **kwargs: Any) -> PostgresIndex:
        """``postgresql://…?table=name&config=simple``."""
        dsn, options = parse_spec(spec)
        if "config" in options:
            kwargs.setdefault("config", options["config"])
        return cls(dsn, options.get("table", "documents"), **kwargs)

    def state(self) -> dict[str, Any] | None:
        """What the table's comment says (config, complete, position, source), None without one."""
        with self._db.cursor() as cur:
            return _read_comment(cur, self.table)

    def create(self, *, source: str = "", replace: bool = False) -> None:
        """Make the table (dropping an existing one with ``replace``). An existing index table of
        another configuration or source is refused rather than mixed into."""
        with self._db.cursor() as cur:
            existing = _read_comment(cur, self.table)
            if existing is not None and not replace:
                if (
                    existing.get("config") != self.config
                    or existing.get("source", source) != source
                ):
                    raise RetrievalError(
                        f"{self.describe()} already holds an index of another source or"
                        f" configuration ({existing.get('source')!r}, {existing.get('config')})",
                        fix="pass replace=True to build it anew, or use another table",
                    )
                return
            t, cfg = self.table, self.config
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
            cur.execute(f"CREATE INDEX {t}_tsv ON {t} USING gin (tsv)")
            self._comment(cur, {"position": 0, "source": source, "complete": False})

    def position(self) -> int:
        """How many documents of the source the committed batches covered (0 for a new table)."""
        meta = self.state()
        return int(meta.get("position", 0)) if meta else 0

    def add(
        self, documents: Iterable[tuple[str, str, str, Mapping[str, Any]]], *, position: int
    ) -> int:
        """Write one batch in one transaction and record ``position`` (how far the source got);
        an id already in the table is replaced. Returns how many rows were written."""
        rows = 0
        with self._db.cursor() as cur, cur.connection.transaction():
            t = self.table
            cur.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS _rlm_batch (LIKE {t} INCLUDING DEFAULTS)"
                " ON COMMIT DELETE ROWS"
            )
            with cur.copy("COPY _rlm_batch (id, title, text, meta) FROM STDIN") as copy:
                for doc_id, title, text, meta in documents:
                    copy.write_row((_clean(doc_id), _clean(title), _clean(text), json.dumps(meta)))
                    rows += 1
            cur.execute(
                f"INSERT INTO {t} (id, title, text, meta) SELECT DISTINCT ON (id) id, title, text, meta"
                " FROM _rlm_batch ORDER BY id"
                " ON CONFLICT (id) DO UPDATE SET title = EXCLUDED.title, text = EXCLUDED.text,"
                " meta = EXCLUDED.meta"
            )
            meta_now = _read_comment(cur, t) or {}
            self._comment(cur, {**meta_now, "position": position})
        return rows

    def finish(self) -> PostgresRetriever:
        """Mark the build complete (``ANALYZE`` too, for the planner) and open it for search."""
        with self._db.cursor() as cur:
            cur.execute(f"ANALYZE {self.table}")
            self._comment(cur, {**(_read_comment(cur, self.table) or {}), "complete": True})
        self._db.close()
        return PostgresRetriever(self._dsn, self.table)

    def size(self) -> int:
        """Bytes the table, its TOAST and its indexes take on the server."""
        with self._db.cursor() as cur:
            cur.execute("SELECT pg_total_relation_size(to_regclass(%s))", (self.table,))
            row = cur.fetchone()
        return int(row[0] or 0) if row else 0

    def describe(self) -> str:
        """The table and the server, without a password."""
        return f"PostgreSQL index table {self.table!r} ({self.config}) at {safe_dsn(self._dsn)}"

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def __repr__(self) -> str:
        return f"<PostgresIndex {self.describe()}>"

    def _comment(self, cur: psycopg.Cursor[Any], values: Mapping[str, Any]) -> None:
        text = json.dumps({"rlm_kernel": 1, **values, "config": self.config})
        # COMMENT takes no parameters: the JSON goes in as a quoted literal.
        literal = "'" + text.replace("'", "''") + "'"
        cur.execute(f"COMMENT ON TABLE {self.table} IS {literal}")
