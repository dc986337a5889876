"""The embedded index: real SQLite FTS5 files built from a directory, JSON Lines, JSON, text and lists,
searched through ``rlm_kernel.retrieval``; a build killed for real in a subprocess resumes without
duplicates; the ``rlm-kernel index`` command in a fresh interpreter.
"""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

import rlm_kernel
from rlm_kernel.errors import ContextError, RetrievalError
from rlm_kernel.retrieval import (
    Progress,
    SQLiteIndex,
    build_index,
    open_retriever,
)
from rlm_kernel.retrieval._build import ProgressBar
from rlm_kernel.testing import run_cli

WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
]


def records(n: int) -> list[dict[str, Any]]:
    """Issue-like records; every 7th is about a memory leak in the exporter, in its title."""
    out = []
    for i in range(n):
        filler = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(40))
        leak = i % 7 == 0
        out.append(
            {
                "id": f"repo#{i}",
                "title": f"Memory leak in the exporter ({i})" if leak else f"Issue number {i}",
                "body": f"{filler}. The exporter {'leaks' if leak else 'works'} in version 1.{i % 5}.",
                "state": "open" if i % 2 else "closed",
            }
        )
    return out


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def docs_table(path: Path) -> tuple[int, int]:
    """(rows, distinct ids) of an index file, read with sqlite3 itself."""
    with sqlite3.connect(path) as db:
        rows, ids = db.execute("SELECT count(*), count(DISTINCT id) FROM docs").fetchone()
    return int(rows), int(ids)


@pytest.fixture
def jsonl_index(tmp_path: Path) -> SQLiteIndex:
    source = write_jsonl(tmp_path / "issues.jsonl", records(700))
    index = rlm_kernel.index(source, tmp_path / "issues.sqlite", progress=False)
    assert isinstance(index, SQLiteIndex)
    return index


# ---- building from each kind of source ----------------------------------------------------------


def test_a_jsonl_file_is_indexed_record_by_record(jsonl_index: SQLiteIndex) -> None:
    assert jsonl_index.count() == 700
    assert docs_table(jsonl_index.path) == (700, 700)
    assert "700 documents" in jsonl_index.describe()
    assert jsonl_index.get("repo#14").endswith("The exporter leaks in version 1.4.")
    assert jsonl_index.meta("repo#3") == {"state": "open"}  # the record's other fields
    assert jsonl_index.get("repo#3").startswith("state: open\n\n")  # ... lead its text
    assert "repo#3" in {h["id"] for h in jsonl_index.search("open", k=700)}  # and are searched


def test_hits_are_ranked_with_the_four_keys_and_snippets_never_whole_documents(
    jsonl_index: SQLiteIndex,
) -> None:
    hits = jsonl_index.search("memory leak exporter", k=10)
    assert len(hits) == 10
    assert all(set(h) == {"id", "score", "title", "snippet"} for h in hits)
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    # The leak issues hold every word, in the title too: they rank above all the others.
    assert all(int(h["id"].split("#")[1]) % 7 == 0 for h in hits)
    for hit in hits:
        text = jsonl_index.get(hit["id"])
        assert hit["snippet"]
        assert hit["snippet"] != text
        assert len(hit["snippet"]) < len(text)
        assert hit["snippet"].strip("…").strip() in text


def test_stemming_and_the_title_weight(tmp_path: Path) -> None:
    rows = [
        {"id": "body", "title": "Something else", "text": "the parser crashes on long input"},
        {"id": "title", "title": "Parser crashes", "text": "on long input, see the log"},
        {"id": "other", "title": "Unrelated", "text": "nothing to see here"},
    ]
    index = rlm_kernel.index(rows, tmp_path / "x.sqlite", progress=False)
    assert [h["id"] for h in index.search("parser crash")] == ["title", "body"]  # crash ~ crashes


def test_a_long_document_gets_a_short_snippet(tmp_path: Path) -> None:
    long_text = ("lorem ipsum dolor " * 2000) + "the needle sits here " + ("sit amet " * 2000)
    index = rlm_kernel.index([long_text, "short text"], tmp_path / "x.sqlite", progress=False)
    (hit,) = index.search("needle")
    assert hit["id"] == "0"
    assert "needle" in hit["snippet"]
    assert len(hit["snippet"]) < 400 < len(long_text)


def test_a_directory_is_indexed_by_the_loaders_rules(tmp_path: Path) -> None:
    top = tmp_path / "repo"
    (top / "src").mkdir(parents=True)
    (top / "node_modules" / "dep").mkdir(parents=True)
    (top / "src" / "app.py").write_text("def handler():\n    return 'websocket reconnect'\n")
    (top / "README.md").write_text("# Project\nHow the websocket reconnect works.\n")
    (top / "notes.log").write_text("websocket reconnect in the log\n")
    (top / ".gitignore").write_text("*.log\n")
    (top / "node_modules" / "dep" / "index.js").write_text("websocket reconnect")
    (top / "logo.png").write_bytes(b"\x89PNG\0\0\0websocket")
    report = build_index(top, tmp_path / "repo.sqlite", progress=False)
    assert (report.documents, report.skipped) == (
        3,
        1,
    )  # .gitignore, README.md, src/app.py; the png
    index = open_retriever(tmp_path / "repo.sqlite")
    assert sorted(h["id"] for h in index.search("websocket reconnect")) == [
        "README.md",
        "src/app.py",
    ]
    assert index.get("src/app.py").startswith("def handler")
    only_py = build_index(top, tmp_path / "py.sqlite", include="*.py", progress=False)
    assert only_py.documents == 1


def test_a_glob_a_dict_and_a_json_array(tmp_path: Path) -> None:
    for name in ("a.txt", "b.txt", "c.md"):
        (tmp_path / name).write_text(f"file {name} mentions quokkas")
    assert (
        build_index(str(tmp_path / "*.txt"), tmp_path / "g.sqlite", progress=False).documents == 2
    )
    index = rlm_kernel.index(
        {"k1": "quokkas here", "k2": "wombats"}, tmp_path / "d.sqlite", progress=False
    )
    assert [h["id"] for h in index.search("quokkas")] == ["k1"]
    (tmp_path / "arr.json").write_text(
        json.dumps([{"title": "T", "text": "a quokka"}, "plain wombat"])
    )
    index = rlm_kernel.index(tmp_path / "arr.json", tmp_path / "j.sqlite", progress=False)
    assert index.count() == 2
    assert index.get("1") == "plain wombat"


def test_a_text_file_is_cut_into_passages_with_their_lines(tmp_path: Path) -> None:
    paragraphs = [
        f"Paragraph {i} about topic{i}.\n" + "filler words here\n" * 20 for i in range(30)
    ]
    (tmp_path / "book.txt").write_text("\n".join(paragraphs))
    index = rlm_kernel.index(
        tmp_path / "book.txt", tmp_path / "b.sqlite", chunk_chars=500, progress=False
    )
    assert index.count() > 10
    (hit,) = index.search("topic17")
    assert hit["id"].startswith("book.txt:L")
    text = index.get(hit["id"])
    assert "Paragraph 17 about topic17." in text
    assert len(text) < 1500


# ---- searching ----------------------------------------------------------------------------------


def test_within_scopes_search_and_get_in_the_query(jsonl_index: SQLiteIndex) -> None:
    scope = ["repo#1", "repo#2", "repo#7", "no-such-id"]
    hits = jsonl_index.search("exporter", k=10, within=scope)
    assert {h["id"] for h in hits} == {"repo#1", "repo#2", "repo#7"}
    assert hits[0]["id"] == "repo#7"  # the leak issue, among the three
    assert jsonl_index.search("exporter", within=[]) == []
    assert "exporter leaks" in jsonl_index.get("repo#7", within=scope)
    with pytest.raises(RetrievalError, match="outside") as err:
        jsonl_index.get("repo#14", within=scope)
    assert err.value.fix


def test_get_of_a_missing_id_says_so(jsonl_index: SQLiteIndex) -> None:
    with pytest.raises(RetrievalError, match="No document 'nope'") as err:
        jsonl_index.get("nope")
    assert "search()" in err.value.fix


@pytest.mark.parametrize(
    ("query", "finds"),
    [
        ('"unbalanced exporter', True),
        ("exporter AND", True),
        ("OR NOT exporter", True),
        ("exporter*", True),
        ("NEAR(exporter leak", True),
        ("NEAR(exporter, leak, 5)", True),
        ("title:exporter", False),  # a phrase "title exporter", not a column filter
        ("^exporter", True),
        ("exporter - leak", True),
        ("(((exporter", True),
        ("exporter's {leak}", True),
        ("'; DROP TABLE docs; --", False),
        ("ünïcödé exporter", True),
        ("日本語", False),
        ("emoji 🎉 exporter", True),
        ('"memory leak"', True),
        ("AND", False),  # the word "and", which no document holds
    ],
)
def test_free_text_is_never_an_fts5_syntax_error(
    jsonl_index: SQLiteIndex, query: str, finds: bool
) -> None:
    hits = jsonl_index.search(query, k=5)
    assert bool(hits) == finds
    assert docs_table(jsonl_index.path) == (700, 700)


@pytest.mark.parametrize("query", ["", "   ", '"', "***", '""', "()", "- * ^"])
def test_a_query_without_words_is_refused(jsonl_index: SQLiteIndex, query: str) -> None:
    with pytest.raises(RetrievalError, match="no words") as err:
        jsonl_index.search(query)
    assert err.value.fix


def test_a_phrase_and_a_prefix(jsonl_index: SQLiteIndex) -> None:
    phrase = jsonl_index.search('"memory leak in the exporter"', k=200)
    assert len(phrase) == 100  # the 100 leak issues of 700, and only they
    assert len(jsonl_index.search("expor*", k=1000)) == 700


@pytest.mark.parametrize("k", [0, -1, 1001, 2.5, True])
def test_k_out_of_range_is_refused(jsonl_index: SQLiteIndex, k: Any) -> None:
    with pytest.raises(RetrievalError, match="k must be"):
        jsonl_index.search("exporter", k=k)


def test_search_from_many_threads_at_once(jsonl_index: SQLiteIndex) -> None:
    expected = [h["id"] for h in jsonl_index.search("leak version", k=5)]
    got: list[list[str]] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                got.append([h["id"] for h in jsonl_index.search("leak version", k=5)])
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(got) == 160
    assert all(ids == expected for ids in got)
    assert len(jsonl_index._open) <= 8  # pooled: a connection per concurrent query at most
    jsonl_index.close()


# ---- rebuilds, refusals, resume -----------------------------------------------------------------


def test_an_up_to_date_index_is_reused_and_a_changed_source_refused(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "s.jsonl", records(50))
    target = tmp_path / "s.sqlite"
    first = build_index(source, target, progress=False)
    assert (first.documents, first.added, first.up_to_date) == (50, 50, False)
    again = build_index(source, target, progress=False)
    assert (again.documents, again.added, again.up_to_date) == (50, 0, True)
    with source.open("a") as f:
        f.write(json.dumps({"id": "new", "text": "added later"}) + "\n")
    with pytest.raises(RetrievalError, match="changed") as err:
        build_index(source, target, progress=False)
    assert "rebuild" in err.value.fix
    assert open_retriever(target).count() == 50  # the refused run changed nothing
    rebuilt = build_index(source, target, rebuild=True, progress=False)
    assert (rebuilt.documents, rebuilt.resumed) == (51, 0)
    assert open_retriever(target).get("new") == "added later"


def test_duplicate_ids_are_an_error_naming_the_id(tmp_path: Path) -> None:
    rows = [{"id": "a", "text": "one"}, {"id": "b", "text": "two"}, {"id": "a", "text": "three"}]
    with pytest.raises(RetrievalError, match="'a' twice") as err:
        build_index(rows, tmp_path / "x.sqlite", progress=False)
    assert "id_field" in err.value.fix
    numbered = build_index(rows, tmp_path / "y.sqlite", id_field="", progress=False)
    assert numbered.documents == 3


def test_what_is_not_an_index_is_refused_and_left_alone(tmp_path: Path) -> None:
    foreign = tmp_path / "app.db"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE users (name TEXT)")
    with pytest.raises(RetrievalError, match="not an rlm_kernel index"):
        build_index(["text"], foreign, rebuild=True, progress=False)
    with sqlite3.connect(foreign) as db:  # nothing of it dropped, even with rebuild
        assert db.execute("SELECT name FROM sqlite_master").fetchall() == [("users",)]
    with pytest.raises(RetrievalError, match="not an rlm_kernel index"):
        open_retriever(foreign)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(RetrievalError, match="not an index") as err:
        open_retriever(tmp_path / "notes.txt")
    assert "rlm_kernel.index" in err.value.fix
    with pytest.raises(RetrievalError, match="No index at"):
        open_retriever(tmp_path / "missing.sqlite")


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from rlm_kernel.retrieval._build import build
    from rlm_kernel.retrieval._documents import documents
    from rlm_kernel.retrieval.sqlite import SQLiteWriter

    source, target, mode = sys.argv[1:]
    commits = 0

    class Writer(SQLiteWriter):
        def add(self, docs):
            super().add(docs)
            if mode == "mid-batch" and commits == 3:  # rows written, the transaction still open
                os.kill(os.getpid(), signal.SIGKILL)

    def on_progress(p):
        global commits
        commits += 1
        if mode == "after-commit" and commits == 4:
            os.kill(os.getpid(), signal.SIGKILL)

    build(documents(source), Writer(target), batch_docs=100, on_progress=on_progress)
    """
)


@pytest.mark.parametrize(("mode", "committed"), [("after-commit", 400), ("mid-batch", 300)])
def test_a_killed_build_resumes_without_duplicates(
    tmp_path: Path, mode: str, committed: int
) -> None:
    source = write_jsonl(tmp_path / "big.jsonl", records(1000))
    target = tmp_path / "big.sqlite"
    done = subprocess.run(
        [sys.executable, "-c", KILLER, str(source), str(target), mode],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == -9, done.stderr  # killed for real, by SIGKILL
    assert docs_table(target) == (committed, committed)  # the open batch is gone, not half there
    with pytest.raises(RetrievalError, match="not finished"):
        open_retriever(target)
    seen: list[Progress] = []
    report = build_index(source, target, progress=seen.append)
    assert (report.resumed, report.added, report.documents) == (committed, 1000 - committed, 1000)
    assert docs_table(target) == (1000, 1000)
    assert seen[-1].finished
    assert seen[-1].done == source.stat().st_size
    index = open_retriever(target)
    assert index.count() == 1000
    assert index.get("repo#999").endswith("version 1.4.")
    assert len(index.search('"memory leak in the exporter"', k=1000)) == 143


# ---- progress and the command -------------------------------------------------------------------


def test_progress_reaches_the_callback_and_the_bar(tmp_path: Path) -> None:
    rows = records(5000)
    seen: list[Progress] = []
    build_index(rows, tmp_path / "p.sqlite", progress=seen.append)
    assert [p.documents for p in seen] == [2000, 4000, 5000, 5000]
    assert seen[-1].finished
    assert (seen[-1].done, seen[-1].total) == (5000, 5000)
    out = io.StringIO()
    build_index(rows, tmp_path / "q.sqlite", progress=ProgressBar("indexing rows", file=out))
    assert "indexing rows" in out.getvalue()
    assert "100%" in out.getvalue()
    assert "5,000 docs" in out.getvalue()


def test_the_index_command(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "issues.jsonl", records(300))
    done = run_cli("index", "issues.jsonl", "issues.sqlite", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Indexed 300 documents (300 added) in ")
    assert "issues.sqlite, " in done.stdout
    assert "MB on disk" in done.stdout
    assert "indexing issues.jsonl" in done.stderr
    assert "300 docs" in done.stderr
    again = run_cli("index", "issues.jsonl", "issues.sqlite", "--quiet", cwd=tmp_path)
    assert (again.returncode, again.stderr) == (0, "")
    assert again.stdout.startswith("issues.sqlite is up to date: 300 documents")
    assert open_retriever(tmp_path / "issues.sqlite").count() == 300
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("print('hi')")
    (tmp_path / "src" / "b.md").write_text("# hi")
    py = run_cli("index", "src", "src.sqlite", "--include", "*.py", "--quiet", cwd=tmp_path)
    assert py.returncode == 0, py.stderr
    assert py.stdout.startswith("Indexed 1 documents")


def test_the_index_command_explains_failures(tmp_path: Path) -> None:
    missing = run_cli("index", "nowhere.jsonl", "x.sqlite", cwd=tmp_path)
    assert missing.returncode == 3
    assert "nowhere.jsonl" in missing.stderr
    (tmp_path / "a.jsonl").write_text('{"id": 1}\n')
    (tmp_path / "b.jsonl").write_text('{"id": 2}\n')
    assert run_cli("index", "a.jsonl", "x.sqlite", "--quiet", cwd=tmp_path).returncode == 0
    other = run_cli("index", "b.jsonl", "x.sqlite", "--quiet", cwd=tmp_path)
    assert other.returncode == 3
    assert "--rebuild" in other.stderr
    assert (
        run_cli("index", "b.jsonl", "x.sqlite", "--rebuild", "--quiet", cwd=tmp_path).returncode
        == 0
    )
    (tmp_path / "bad.jsonl").write_text('{"id": 1}\n{broken\n')
    bad = run_cli("index", "bad.jsonl", "bad.sqlite", "--quiet", cwd=tmp_path)
    assert bad.returncode == 3
    assert "line 2" in bad.stderr


def test_the_package_face_imports_no_index_until_asked() -> None:
    code = "import sys, rlm_kernel; print('rlm_kernel.retrieval.sqlite' in sys.modules, 'tqdm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
    assert rlm_kernel.index.__module__ == "rlm_kernel.retrieval"


# ---- the bounded plan: BM25 scores at most CANDIDATES documents per query -----------------------


@pytest.fixture
def planned_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SQLiteIndex:
    """300 documents: "kernel" in all, "parser" in 120, "segfault" in 6 (two of those also say
    "parser"), "deadlock" in 4; the candidate cap lowered to 50 so the plan's cases show at this size."""
    from rlm_kernel.retrieval import sqlite as backend

    monkeypatch.setattr(backend, "CANDIDATES", 50)
    rows = []
    for i in range(300):
        words = ["kernel", "report", WORDS[i % len(WORDS)]]
        if i % 5 < 2:
            words.append("parser")
        if i in (3, 50, 104, 151, 202, 253):
            words.append("segfault")
        if i in (7, 77, 177, 277):
            words.append("deadlock")
        rows.append({"id": f"d{i}", "title": f"Report {i}", "text": " ".join(words)})
    return rlm_kernel.index(rows, tmp_path / "planned.sqlite", progress=False)  # type: ignore[return-value]


def plan(index: SQLiteIndex, query: str, cap: int = 50) -> str | None:
    from rlm_kernel.retrieval.sqlite import match_phrases, plan_match

    with sqlite3.connect(index.path) as db:
        return plan_match(db, match_phrases(query), cap)


def test_rare_phrases_pick_the_candidates_and_every_phrase_ranks_them(
    planned_index: SQLiteIndex,
) -> None:
    # "kernel" (300) and "parser" (120) are past the cap (counted up to it only, so they tie and
    # keep the query's order): the rare words choose the candidates, all of the words score them.
    assert plan(planned_index, "kernel parser segfault deadlock") == (
        '("deadlock" OR "segfault") AND ("deadlock" OR "segfault" OR "kernel" OR "parser")'
    )
    hits = planned_index.search("kernel parser segfault", k=10)
    with_segfault = {"d3", "d50", "d104", "d151", "d202", "d253"}
    assert {h["id"] for h in hits} == with_segfault  # the candidates: never more than the rare
    # The common words still score the candidates: "parser" adds to d50's score (it says parser),
    # nothing to d3's (it does not).
    without = {h["id"]: h["score"] for h in planned_index.search("kernel segfault", k=10)}
    scores = {h["id"]: h["score"] for h in hits}
    assert scores["d50"] > without["d50"]
    assert scores["d3"] == pytest.approx(without["d3"])
    # Rare words alone, or a word nowhere, plan the plain OR (or nothing).
    assert plan(planned_index, "segfault deadlock") == '"deadlock" OR "segfault"'  # rarest first
    assert plan(planned_index, "zyzzyva") is None
    assert planned_index.search("zyzzyva") == []
    assert plan(planned_index, "kernel parser", cap=10_000) == '"parser" OR "kernel"'


def test_a_query_of_only_common_words_ranks_the_documents_holding_all(
    planned_index: SQLiteIndex,
) -> None:
    assert plan(planned_index, "kernel parser") == '"kernel" AND "parser"'
    hits = planned_index.search("kernel parser", k=20)
    assert len(hits) == 20
    assert all("parser" in planned_index.get(h["id"]) for h in hits)


def test_a_small_scope_is_ranked_exactly(planned_index: SQLiteIndex) -> None:
    # Within 30 documents (<= the cap) the plain OR ranks the scope: a document without the rare
    # word still comes back, as the exact ranking has it.
    scope = [f"d{i}" for i in range(30)]
    hits = planned_index.search("kernel segfault", k=30, within=scope)
    assert {h["id"] for h in hits} == set(scope)
    assert hits[0]["id"] == "d3"  # the one with the rare word first
    # A scope past the cap goes through the plan: the rare word's documents inside it.
    wide = [f"d{i}" for i in range(120)]
    assert {h["id"] for h in planned_index.search("kernel segfault", k=30, within=wide)} == {
        "d3",
        "d50",
        "d104",
    }


def test_a_build_in_a_notebook_shows_a_progress_widget(env: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    write_jsonl(env / "issues.jsonl", records(3000))
    build = "import rlm_kernel\nidx = rlm_kernel.index('issues.jsonl', 'issues.sqlite')\n"
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(build + "print(idx.count())"),
            nbformat.v4.new_code_cell(build.replace(")\n", ", progress=False)\n") + "print(1)"),
        ]
    )
    NotebookClient(
        nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(env)}}
    ).execute()
    outputs, quiet = nb.cells[0].outputs, nb.cells[1].outputs
    widgets = [
        o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    assert len(widgets) == 1  # tqdm.auto's bar, not a text line on stderr
    assert widgets[0]["data"]["text/plain"].startswith("indexing issues.jsonl: ")
    assert [o["text"] for o in outputs if o.get("output_type") == "stream"] == ["3000\n"]
    assert [o.get("text") for o in quiet] == ["1\n"]  # up to date, and progress=False: no bar


def test_a_line_that_is_not_the_encoding_is_a_context_error_naming_it(tmp_path: Path) -> None:
    source = tmp_path / "bad.jsonl"
    source.write_bytes(b'{"id": "a", "text": "fine"}\n{"id": "b", "text": "bad \xff"}\n')
    with pytest.raises(ContextError, match=r"line 2, is not utf-8 text"):
        rlm_kernel.index(source, tmp_path / "bad.sqlite", progress=False)
    text = tmp_path / "bad.txt"
    text.write_bytes(b"fine\n\nbad \xff\n")
    with pytest.raises(ContextError, match=r"line 3, is not utf-8 text"):
        rlm_kernel.index(text, tmp_path / "bad2.sqlite", progress=False)


def test_the_retrieval_package_is_reached_from_the_package_face() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import rlm_kernel, sys\n"
            "assert 'rlm_kernel.retrieval' not in sys.modules\n"
            "print(rlm_kernel.retrieval.open_retriever.__name__)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == "open_retriever", done.stderr
