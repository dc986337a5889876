"""The PostgreSQL full-text backend against a real server (the ``postgres`` fixture starts a
throwaway cluster): builds from JSON Lines, a directory and a list through the shared builder,
ranking and snippets, web-search syntax, hostile queries, scope, errors with fixes, a DSN's password
kept out of everything shown, and a build killed mid-way and resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from rlm_kernel.errors import RetrievalError
from rlm_kernel.retrieval._build import build
from rlm_kernel.retrieval._documents import documents
from rlm_kernel.retrieval._protocol import Retriever
from rlm_kernel.testing import run_cli

psycopg = pytest.importorskip("psycopg") if not os.environ.get("CI") else __import__("psycopg")
from rlm_kernel.retrieval.postgres import (  # noqa: E402 - after the importorskip
    PostgresRetriever,
    PostgresWriter,
    parse_spec,
    safe_dsn,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))
import make_issues  # noqa: E402
from _postgres import PASSWORD, start_server  # noqa: E402

N = 3000  # issues in the shared collection: enough for the planted question


def index(dsn: str, source: Any, table: str, **kwargs: Any) -> PostgresRetriever:
    writer = PostgresWriter(dsn, table, config=kwargs.pop("config", "english"))
    try:
        build(documents(source), writer, **kwargs)
    finally:
        writer.close()
    return PostgresRetriever(dsn, table)


@pytest.fixture(scope="module")
def issues_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "issues.jsonl"
    with path.open("w", encoding="utf-8") as f:
        make_issues.write_jsonl(N, f)
    return path


@pytest.fixture(scope="module")
def issues(postgres: str, issues_file: Path) -> PostgresRetriever:
    return index(postgres, issues_file, "issues")


def psql(dsn: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(sql)
        return cur.fetchall() if cur.description else []


# ---- built from a JSON Lines file ------------------------------------------------------------


def test_jsonl_build_counts_and_searches(
    issues: PostgresRetriever, postgres: str, issues_file: Path
) -> None:
    assert isinstance(issues, Retriever)
    assert issues.count() == N
    assert psql(postgres, "SELECT count(*), count(DISTINCT id) FROM issues") == [(N, N)]
    hits = issues.search("memory leak exporter", k=20)
    assert len(hits) == 20
    assert all(set(h) == {"id", "score", "title", "snippet"} for h in hits)
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] > 0
    records = {r["id"]: r for r in map(json.loads, issues_file.read_text().splitlines())}
    for hit in hits:
        assert make_issues.is_leak(records[hit["id"]]), hit  # the words only occur in leak reports
        assert "**" in hit["snippet"]  # the matched words are marked
        assert len(hit["snippet"]) < len(records[hit["id"]]["body"]) + 10
        assert hit["title"] == records[hit["id"]]["title"]
    record = records[hits[0]["id"]]
    # The record's other fields lead the text as lines: the model reads an issue's state with get().
    text = issues.get(hits[0]["id"])
    assert text.endswith("\n\n" + record["body"])
    assert f"\nstate: {record['state']}\n" in text
    assert text.startswith(f"repo: {record['repo']}\n")
    meta = psql(postgres, f"SELECT meta FROM issues WHERE id = '{hits[0]['id']}'")[0][0]
    assert meta["repo"] == record["repo"]
    assert meta["labels"] == record["labels"]


def test_the_planted_question_is_answerable_by_search_then_count(
    issues: PostgresRetriever, issues_file: Path
) -> None:
    """Search finds the leak reports, their records give state and version: the count by hand
    matches what the generator planted (and the decoy leads more reports in all)."""
    expected = make_issues.planted(N)
    queries = ("memory leak exporter", "exporter OOM", "exporter RSS", "exporter memory grows")
    ids = {h["id"] for q in queries for h in issues.search(q, k=1000)}
    records = [r for r in map(json.loads, issues_file.read_text().splitlines()) if r["id"] in ids]
    assert sum(map(make_issues.is_leak, records)) == sum(
        map(make_issues.is_leak, map(json.loads, issues_file.read_text().splitlines()))
    )  # every leak report found
    found = make_issues.truth(records)
    assert found["repo"] == expected["repo"]
    assert found["version"] == expected["version"]
    assert found["open"] >= expected["open_at_least"]
    assert found["most_in_all"] == expected["most_in_all"]


def test_title_weighs_more_than_text(postgres: str) -> None:
    docs = [
        {"id": "body", "title": "notes", "text": "the scheduler stalls at night, sometimes"},
        {"id": "title", "title": "scheduler stalls", "text": "it happens at night, sometimes"},
    ]
    r = index(postgres, docs, "weights")
    assert [h["id"] for h in r.search("scheduler stalls")] == ["title", "body"]


# ---- built from a directory --------------------------------------------------------------------


def test_directory_build(postgres: str, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "src").mkdir(parents=True)
    (tree / "src" / "pool.py").write_text(
        "def acquire():\n    # the connection pool is exhausted\n"
    )
    (tree / "README.md").write_text("# Widgets\nHow to configure the widget cache.\n")
    (tree / ".gitignore").write_text("build/\n")
    (tree / "build").mkdir()
    (tree / "build" / "out.txt").write_text("connection pool copy that is ignored\n")
    r = index(postgres, tree, "tree")
    assert r.count() == 3  # the two files and .gitignore itself; build/ is ignored
    hits = r.search("connection pool")
    assert [h["id"] for h in hits] == ["src/pool.py"]
    assert r.get("src/pool.py") == (tree / "src" / "pool.py").read_text()


# ---- query syntax, hostile input -----------------------------------------------------------------


@pytest.fixture(scope="module")
def small(postgres: str) -> PostgresRetriever:
    docs = [
        {"id": "a", "title": "memory grows", "text": "the exporter memory grows after an hour"},
        {"id": "b", "title": "grows slowly", "text": "memory is fine, the queue grows"},
        {"id": "c", "title": "crash", "text": "the parser crashes on a unicode path: naïve café"},
        {"id": "d", "title": "the and or", "text": "to be or not to be"},
    ]
    return index(postgres, docs, "small")


def test_websearch_syntax(small: PostgresRetriever) -> None:
    assert {h["id"] for h in small.search("memory grows")} == {"a", "b"}
    assert [h["id"] for h in small.search('"memory grows"')] == ["a"]  # a phrase
    assert [h["id"] for h in small.search("memory -exporter")] == ["b"]  # an exclusion
    assert {h["id"] for h in small.search("crashes or exporter")} == {"a", "c"}
    assert [h["id"] for h in small.search("crashing")] == ["c"]  # english stems


def test_any_word_when_all_words_find_nothing(small: PostgresRetriever) -> None:
    """A question with a word no document holds still finds the documents with the others;
    an explicit operator is taken at its word."""
    hits = small.search("which issues mention exporter memory")
    assert hits
    assert hits[0]["id"] == "a"
    assert small.search('"which issues" exporter') == []


@pytest.mark.parametrize(
    "query",
    [
        "",
        "   ",
        "the",
        '"',
        '"unbalanced phrase',
        "'; DROP TABLE small; --",
        "a & | ! ( ) : * <-> b",
        "memory\x00grows",
        "naïve café 日本語 🚀",
        "-",
        "or or or",
        "x" * 5000,
        "memory " * 2000,
        "\\",
        "$$ $1 %s %(query)s {}",
    ],
    ids=lambda q: repr(q)[:24],
)
def test_hostile_queries_never_raise(small: PostgresRetriever, query: str, postgres: str) -> None:
    hits = small.search(query)
    assert isinstance(hits, list)
    assert psql(postgres, "SELECT count(*) FROM small") == [(4,)]


def test_a_huge_query_is_cut_not_slow(small: PostgresRetriever) -> None:
    began = time.monotonic()
    assert {h["id"] for h in small.search("memory " * 5000)} == {"a", "b"}
    assert time.monotonic() - began < 2  # 2,000 words took 21 s before the cut


def test_unicode_and_nul(small: PostgresRetriever) -> None:
    assert [h["id"] for h in small.search("café")] == ["c"]
    assert {h["id"] for h in small.search("memory\x00 grows")} == {"a", "b"}


def test_bad_k_and_query_type(small: PostgresRetriever) -> None:
    for k in (0, -1, 1001, 2.5, True):
        with pytest.raises(RetrievalError, match="k must be"):
            small.search("memory", k=k)  # type: ignore[arg-type]
    with pytest.raises(RetrievalError, match="str query"):
        small.search(["memory"])  # type: ignore[arg-type]
    assert len(small.search("memory grows", k=1)) == 1


def test_simple_configuration_keeps_every_word(postgres: str) -> None:
    docs = [{"id": "d", "title": "", "text": "to be or not to be"}, {"id": "e", "text": "be quick"}]
    r = index(postgres, docs, "plain", config="simple")
    assert r.config == "simple"
    assert [h["id"] for h in r.search('"not to be"')] == ["d"]
    english = index(postgres, docs, "stemmed")
    assert english.config == "english"
    assert english.search('"not to be"') == []


# ---- within ----------------------------------------------------------------------------------------


def test_within_is_applied_in_the_query(small: PostgresRetriever) -> None:
    assert [h["id"] for h in small.search("memory", within=["b", "c"])] == ["b"]
    assert small.search("memory", within=[]) == []
    assert small.search("memory", within=["nope", "c"]) == []
    # within the scope, k still counts from the best: no over-fetch, no filter after the limit
    assert [h["id"] for h in small.search("grows", k=1, within={"b"})] == ["b"]
    assert small.get("a", within=["a"]).startswith("the exporter")
    with pytest.raises(RetrievalError, match="outside the scope"):
        small.get("a", within=["b"])


def test_get_errors(small: PostgresRetriever) -> None:
    with pytest.raises(RetrievalError, match="no document 'zzz'") as info:
        small.get("zzz")
    assert info.value.fix
    assert small.get("c\x00") == small.get("c")


def test_threads_share_a_retriever(issues: PostgresRetriever) -> None:
    expected = [h["id"] for h in issues.search("exporter memory", k=5)]
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(10):
                results.append([h["id"] for h in issues.search("exporter memory", k=5)])
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 60
    assert all(r == expected for r in results)


# ---- errors, secrets ----------------------------------------------------------------------------


def test_missing_table(postgres: str) -> None:
    with pytest.raises(RetrievalError, match="no rlm_kernel index table 'absent'") as info:
        PostgresRetriever(postgres, "absent")
    assert "rlm_kernel.index" in (info.value.fix or "")
    assert PASSWORD not in str(info.value) + str(info.value.fix)


def test_bad_table_names_and_configs(postgres: str) -> None:
    for name in ("x; drop", "1abc", "a" * 64, "", "tab le"):
        with pytest.raises(RetrievalError, match="not a table name"):
            PostgresRetriever(postgres, name)
    with pytest.raises(RetrievalError, match="text search configuration"):
        PostgresWriter(postgres, "t", config="klingon")


def test_server_down_and_wrong_password(postgres: str) -> None:
    nobody = make_dsn_port(postgres, free_port())
    with pytest.raises(RetrievalError, match="cannot reach PostgreSQL") as info:
        PostgresRetriever(nobody, "issues", connect_timeout=2)
    assert "start the server" in (info.value.fix or "")
    wrong = postgres.replace(PASSWORD, "not-the-password")
    with pytest.raises(RetrievalError, match="password authentication failed") as info:
        PostgresRetriever(wrong, "issues")
    assert "not-the-password" not in str(info.value)


def make_dsn_port(dsn: str, port: int) -> str:
    head, _, tail = dsn.rpartition(":")
    return f"{head}:{port}/{tail.split('/', 1)[1]}"


def free_port() -> int:
    from _postgres import free_port as port

    return port()


def test_server_stopping_under_an_open_retriever() -> None:
    server = start_server()
    assert not isinstance(server, str)
    try:
        r = index(server.dsn, [{"id": "x", "text": "alpha beta"}], "gone")
        assert [h["id"] for h in r.search("alpha")] == ["x"]
    finally:
        server.stop()
    with pytest.raises(RetrievalError, match="cannot reach PostgreSQL") as info:
        r.search("alpha")
    assert PASSWORD not in str(info.value)


def test_password_never_shown(issues: PostgresRetriever, postgres: str) -> None:
    assert PASSWORD in postgres
    shown = [issues.describe(), repr(issues), safe_dsn(postgres)]
    writer = PostgresWriter(postgres, "issues")
    try:
        shown += [writer.describe(), repr(writer)]
    finally:
        writer.close()
    for text in shown:
        assert PASSWORD not in text, text
    assert "127.0.0.1" in issues.describe()
    assert "rlm_test" in issues.describe()
    kv = f"host=127.0.0.1 port=5 dbname=d user=u password={PASSWORD} sslpassword=x2"
    assert safe_dsn(kv) == "postgresql://u@127.0.0.1:5/d"
    dsn, options = parse_spec(postgres + "?table=issues&config=simple&sslmode=disable")
    assert options == {"table": "issues", "config": "simple"}
    assert dsn.endswith("?sslmode=disable")
    assert PostgresRetriever.from_spec(postgres + "?table=issues").count() == N


@pytest.mark.parametrize(
    "dsn",
    [
        f"postgresql://u:{PASSWORD} x@127.0.0.1:1/db",  # libpq quotes the part with the space
        f"host=127.0.0.1 password={PASSWORD} junk",
        f"postgresql://u:{PASSWORD}@127.0.0.1:1/db?bogus=1",
    ],
)
def test_a_connection_string_that_does_not_parse_is_not_echoed(dsn: str) -> None:
    for opener in (PostgresRetriever, PostgresWriter):
        with pytest.raises(RetrievalError, match="does not parse") as info:
            opener(dsn)
        assert PASSWORD not in f"{info.value} {info.value.fix}"
        assert "percent-encoded" in (info.value.fix or "")


def test_foreign_table_is_never_replaced(postgres: str) -> None:
    psql(postgres, "CREATE TABLE notes (id int); INSERT INTO notes VALUES (1)")
    writer = PostgresWriter(postgres, "notes")
    try:
        with pytest.raises(RetrievalError, match="not an rlm_kernel index"):
            build(documents([{"id": "1", "text": "x"}]), writer, rebuild=True)
    finally:
        writer.close()
    assert psql(postgres, "SELECT * FROM notes") == [(1,)]
    with pytest.raises(RetrievalError, match="no rlm_kernel index table"):
        PostgresRetriever(postgres, "notes")


def test_duplicate_ids_are_named(postgres: str) -> None:
    writer = PostgresWriter(postgres, "dups")
    try:
        with pytest.raises(RetrievalError, match=r"id twice: .*same") as info:
            build(documents([{"id": "same", "text": "a"}, {"id": "same", "text": "b"}]), writer)
    finally:
        writer.close()
    assert "unique id" in (info.value.fix or "")


def test_rebuild_and_changed_source(postgres: str, tmp_path: Path) -> None:
    source = tmp_path / "docs.jsonl"
    source.write_text('{"id": "1", "text": "first version"}\n')
    assert index(postgres, source, "changing").search("first")
    time.sleep(0.01)
    source.write_text('{"id": "1", "text": "second version"}\n{"id": "2", "text": "more"}\n')
    with pytest.raises(RetrievalError, match="another source, or that one has changed"):
        index(postgres, source, "changing")
    r = index(postgres, source, "changing", rebuild=True)
    assert r.count() == 2
    assert r.search("first") == []
    assert r.search("second")


# ---- resume after a real kill ------------------------------------------------------------------

BUILDER = """
import sys
from rlm_kernel.retrieval._build import build
from rlm_kernel.retrieval._documents import documents
from rlm_kernel.retrieval.postgres import PostgresWriter

build(documents(sys.argv[2]), PostgresWriter(sys.argv[1], "killed"), batch_docs=200)
"""


def test_resume_after_a_kill(postgres: str, tmp_path: Path) -> None:
    total = 20_000
    source = tmp_path / "many.jsonl"
    with source.open("w", encoding="utf-8") as f:
        make_issues.write_jsonl(total, f, seed=3)
    child = subprocess.Popen([sys.executable, "-c", BUILDER, postgres, str(source)])
    try:
        committed = wait_for_progress(postgres, child)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    state = checkpoint(postgres)
    assert state is not None
    assert not state["complete"]
    assert 0 < state["documents"] < total
    rows = psql(postgres, "SELECT count(*) FROM killed")[0][0]
    assert rows == state["documents"] >= committed  # exactly the committed batches
    with pytest.raises(RetrievalError, match="not finished"):
        PostgresRetriever(postgres, "killed")
    writer = PostgresWriter(postgres, "killed")
    try:
        report = build(documents(source), writer)
    finally:
        writer.close()
    assert report.resumed == state["documents"]
    assert report.documents == total
    assert report.added == total - state["documents"]
    assert psql(postgres, "SELECT count(*), count(DISTINCT id) FROM killed") == [(total, total)]
    r = PostgresRetriever(postgres, "killed")
    assert r.count() == total
    assert r.search("exporter leaks memory")


def checkpoint(dsn: str) -> dict[str, Any] | None:
    row = psql(dsn, "SELECT obj_description(to_regclass('killed'), 'pg_class')")[0][0]
    return None if row is None else dict(json.loads(row))


def wait_for_progress(dsn: str, child: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert child.poll() is None, "the build finished before it could be killed"
        state = checkpoint(dsn) if psql(dsn, "SELECT to_regclass('killed')")[0][0] else None
        if state and state["documents"] >= 1000:
            return int(state["documents"])
        time.sleep(0.02)
    raise AssertionError("the build made no progress in 60 s")


# ---- the generated corpus ----------------------------------------------------------------------


def test_issue_generator_is_deterministic_and_plants_the_answer() -> None:
    import io

    first, second = io.StringIO(), io.StringIO()
    make_issues.write_jsonl(5000, first)
    make_issues.write_jsonl(5000, second)
    assert first.getvalue() == second.getvalue()
    other = io.StringIO()
    make_issues.write_jsonl(5000, other, seed=2)
    assert other.getvalue() != first.getvalue()
    records = [json.loads(line) for line in first.getvalue().splitlines()]
    assert len({r["id"] for r in records}) == 5000
    assert set(records[0]) == {"id", "title", "body", "repo", "labels", "state", "created"}
    for seed in (make_issues.SEED, 2, 99):
        found = make_issues.truth(make_issues.issues(5000, seed))
        expected = make_issues.planted(5000)
        assert (found["repo"], found["version"], found["most_in_all"]) == (
            expected["repo"],
            expected["version"],
            expected["most_in_all"],
        )
        assert found["open"] >= expected["open_at_least"]
    with pytest.raises(ValueError, match="nothing is planted"):
        make_issues.planted(100)


# ---- through rlm_kernel.index / open_retriever / the CLI ---------------------------------------


def test_rlm_kernel_index_builds_into_postgres(postgres: str, tmp_path: Path) -> None:
    import rlm_kernel
    from rlm_kernel.retrieval import Progress, open_retriever

    source = tmp_path / "issues.jsonl"
    with source.open("w", encoding="utf-8") as f:
        make_issues.write_jsonl(2500, f)
    seen: list[Progress] = []
    spec = f"{postgres}?table=via_index&config=simple"
    r = rlm_kernel.index(source, spec, progress=seen.append)
    assert isinstance(r, PostgresRetriever)
    assert r.count() == 2500
    assert r.config == "simple"
    assert seen[-1].finished
    assert seen[-1].documents == 2500
    assert seen[-1].done == source.stat().st_size
    assert [p.documents for p in seen] == sorted(p.documents for p in seen)
    again = open_retriever(f"{postgres}?table=via_index")
    assert again.search("exporter leaks memory", k=3) == r.search("exporter leaks memory", k=3)
    assert rlm_kernel.index(source, spec, progress=False).count() == 2500  # up to date: reused


def test_messages_of_a_build_never_show_the_password(postgres: str, tmp_path: Path) -> None:
    import rlm_kernel

    source = tmp_path / "one.jsonl"
    source.write_text('{"id": "1", "text": "alpha"}\n')
    spec = f"{postgres}?table=secretive"
    rlm_kernel.index(source, spec, progress=False)
    source.write_text('{"id": "1", "text": "beta"}\n')
    with pytest.raises(RetrievalError) as info:
        rlm_kernel.index(source, spec, progress=False)
    assert PASSWORD not in f"{info.value} {info.value.fix}"


def test_cli_index_into_postgres_never_prints_the_password(postgres: str, tmp_path: Path) -> None:
    source = tmp_path / "cli.jsonl"
    with source.open("w", encoding="utf-8") as f:
        make_issues.write_jsonl(300, f)
    done = run_cli("index", str(source), f"{postgres}?table=from_cli", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "300" in done.stdout
    assert PASSWORD not in done.stdout + done.stderr
    assert PostgresRetriever(postgres, "from_cli").count() == 300


def test_a_session_searches_postgres_and_its_records_hold_no_password(
    issues: PostgresRetriever, serve: Any, tmp_path: Path
) -> None:
    """A real run over the scripted server: the model's code searches and reads the PostgreSQL
    index; the password reaches neither the model, the trajectory file nor the result."""
    import rlm_kernel
    from rlm_kernel.testing import fence, settings

    code = (
        'hits = search("exporter leaks memory", k=3)\n'
        'text = get(hits[0]["id"])\n'
        'print(len(hits), hits[0]["id"], "exporter" in text.lower())'
    )
    server = serve({"root": [fence(code), fence("FINAL(hits[0]['id'])")]})
    result = rlm_kernel.run(
        "Which issue leaks memory?",
        retriever=issues,
        autosave=True,
        trajectory_dir=str(tmp_path),
        **settings(server),
    )
    expected = issues.search("exporter leaks memory", k=3)[0]["id"]
    assert result.answer == expected
    assert f"3 {expected} True" in result.trajectory.iterations[0]["output"]
    described = result.trajectory.session["retriever"]["describe"]
    assert described.startswith("PostgreSQL full-text index 'issues'")
    assert result.path is not None
    assert PASSWORD not in result.path.read_text()
    assert PASSWORD not in json.dumps([r.messages for r in server.requests])


def test_the_password_can_stay_out_of_the_spec(
    issues: PostgresRetriever, postgres: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """libpq reads PGPASSWORD (and ~/.pgpass), as the README says."""
    bare = postgres.replace(f":{PASSWORD}@", "@")
    monkeypatch.delenv("PGPASSWORD", raising=False)
    with pytest.raises(RetrievalError, match="cannot reach PostgreSQL"):
        PostgresRetriever(bare, "issues")
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    assert PostgresRetriever(bare, "issues").count() == N
