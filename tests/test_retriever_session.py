"""Sessions with a collection (``retriever=``): the tools in the model's namespace and prompt, the
scope a parent gives a child RLM, the sandbox, a prompt whose size does not follow the collection's,
the record naming the retriever without secrets, ``%rlm --retriever`` in a real kernel, and replay.

The models answer over real HTTP from the loopback scripted server. The retriever is a small real
implementation of the protocol (documents in a dict, or generated from their number), whose source
runs in the kernel test too; the index backends are tested with their own modules.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import rlm_kernel
from rlm_kernel import RLM
from rlm_kernel._replay import replay_session
from rlm_kernel._retrieval_tools import MAX_K, SNIPPET_CHARS
from rlm_kernel._trajectory import Trajectory
from rlm_kernel.errors import ConfigError, ContextMismatchWarning
from rlm_kernel.retrieval._protocol import Retriever
from rlm_kernel.testing import (
    SECRET,
    ChatRequest,
    Kernel,
    ScriptedServer,
    configure,
    fence,
    run_cli,
    settings,
)

# One definition, run here and in the kernel of the %rlm test.
RETRIEVER_SOURCE = '''
from rlm_kernel.errors import RetrievalError


class DictRetriever:
    """Documents in a dict; a hit for every document holding a query word, more words first."""

    def __init__(self, docs, describe="dict collection", long_snippets=False):
        self.docs = dict(docs)
        self.label = describe
        self.long_snippets = long_snippets  # a careless backend: the whole text as its snippet
        self.calls = []

    def search(self, query, k=10, *, within=None):
        self.calls.append(("search", query, k, None if within is None else sorted(within)))
        words = query.lower().split()
        scored = []
        for doc_id, text in self.docs.items():
            if within is not None and doc_id not in within:
                continue
            score = sum(text.lower().count(w) for w in words)
            if score:
                scored.append((-score, doc_id))
        hits = []
        for score, doc_id in sorted(scored)[:k]:
            text = self.docs[doc_id]
            snippet = text if self.long_snippets else text[:60]
            hits.append({"id": doc_id, "score": float(-score), "title": doc_id.upper(), "snippet": snippet})
        return hits

    def get(self, doc_id, *, within=None):
        self.calls.append(("get", doc_id, None if within is None else sorted(within)))
        if doc_id not in self.docs or (within is not None and doc_id not in within):
            raise RetrievalError(f"No document {doc_id!r} in reach", fix="Use an id from search()")
        return self.docs[doc_id]

    def count(self):
        return len(self.docs)

    def describe(self):
        return self.label
'''
_defined: dict[str, Any] = {}
exec(RETRIEVER_SOURCE, _defined)
DictRetriever: Any = _defined["DictRetriever"]

DOCS = {
    "a1": "The apple harvest in Kent was late this year. " * 30,
    "b2": "Pears and apples keep well in a cool cellar.",
    "c3": "Invoices are due within thirty days of receipt.",
}


class GeneratedCollection:
    """``n`` documents made from their number, none held in memory: a collection of any size."""

    def __init__(self, n: int) -> None:
        self.n = n

    def search(self, query: str, k: int = 10, *, within: Any = None) -> list[Any]:
        return [
            {"id": f"d{i}", "score": 1.0 / (i + 1), "title": f"D{i}", "snippet": f"text {i}"}
            for i in range(min(k, self.n))
        ]

    def get(self, doc_id: str, *, within: Any = None) -> str:
        return f"document {doc_id}"

    def count(self) -> int:
        return self.n

    def describe(self) -> str:
        return "generated collection"


def system_of(request: ChatRequest) -> str:
    return str(request.messages[0]["content"])


def first_of(request: ChatRequest) -> str:
    return str(request.messages[1]["content"])


def child_of(call: Any) -> dict[str, Any]:
    """The trajectory of the child RLM an rlm_query call ran."""
    child = call["child"]
    assert child is not None
    return dict(child)


def test_the_tools_are_bound_listed_and_return_hits_never_whole_documents(
    serve: Callable[..., ScriptedServer],
) -> None:
    code = (
        'hits = search("apple harvest", k=2)\n'
        "print(sorted(hits[0]), [h['id'] for h in hits])\n"
        "print(max(len(h['snippet']) for h in hits))\n"
        'print(len(get("a1")))'
    )
    server = serve({"root": [fence(code), fence("FINAL(hits[0]['id'])")]})
    index = DictRetriever(DOCS, long_snippets=True)
    result = rlm_kernel.run(
        "Which document is on apples?", "notes", retriever=index, **settings(server)
    )
    assert result.answer == "a1"
    system, first = system_of(server.requests[0]), first_of(server.requests[0])
    assert "- `search(query: str, k: int = 10) -> list[dict[str, typing.Any]]`" in system
    assert "- `get(doc_id: str) -> str`: The full text of document doc_id" in system
    assert "vector_search" not in system  # this backend has none
    assert "## Working with the collection" in system
    assert "Your collection: dict collection" in first
    assert re.search(r"Documents in the collection: +3\. Tools: search\(\), get\(\)\.", first)
    assert "Your context `P` is a str" in first  # the context stands beside the collection
    output = result.trajectory.iterations[0]["output"]
    assert "['id', 'score', 'snippet', 'title'] ['a1', 'b2']" in output
    # The backend gave whole texts as snippets; the model got them cut, and the text only by get.
    assert f"\n{SNIPPET_CHARS}\n" in output
    assert f"\n{len(DOCS['a1'])}" in output
    assert index.calls[0] == ("search", "apple harvest", 2, None)


class MeaningRetriever(DictRetriever):  # type: ignore[misc]
    """A backend with vector search (here: the keyword search under another name, recorded)."""

    def vector_search(self, query: str, k: int = 10, *, within: Any = None) -> list[Any]:
        hits = self.search(query, k, within=within)
        self.calls[-1] = ("vector_search", *self.calls[-1][1:])
        return list(hits)


def test_a_backend_with_vector_search_gets_that_tool_too(
    serve: Callable[..., ScriptedServer],
) -> None:
    server = serve(
        {"root": [fence('hits = vector_search("cellar", k=1)'), fence("FINAL(hits[0]['id'])")]}
    )
    index = MeaningRetriever(DOCS)
    result = rlm_kernel.run("q", retriever=index, **settings(server))
    assert result.answer == "b2"
    assert index.calls == [("vector_search", "cellar", 1, None)]
    system = system_of(server.requests[0])
    assert "- `vector_search(query: str, k: int = 10)" in system
    assert "Search by meaning (embeddings)" in system
    assert "hybrid_search" not in system
    assert "Tools: search(), get(), vector_search()." in first_of(server.requests[0])
    assert result.trajectory.session["retriever"]["tools"] == ["search", "get", "vector_search"]


def test_with_only_a_retriever_p_is_none_and_the_prompt_says_where_the_documents_are(
    serve: Callable[..., ScriptedServer],
) -> None:
    code = 'print(P is None, context is None)\nhits = search("invoices")\nprint(hits[0]["id"])'
    server = serve({"root": [fence(code), fence('FINAL(get(hits[0]["id"]))')]})
    result = rlm_kernel.run(
        "When are invoices due?", retriever=DictRetriever(DOCS), **settings(server)
    )
    assert result.answer == DOCS["c3"]
    assert result.trajectory.iterations[0]["output"].startswith("True True\nc3")
    system, first = system_of(server.requests[0]), first_of(server.requests[0])
    assert "- `P`: the context (None here: the documents are in the collection)." in system
    assert 'hits = search("keyword")' in system  # the examples use the tools, not P
    assert "`P` is" not in first
    assert "You have not looked at the collection yet" in first
    record = result.trajectory.session["retriever"]
    assert record == {
        "describe": "dict collection",
        "count": 3,
        "tools": ["search", "get"],
        "scope": None,
    }


def test_k_is_clipped_with_one_note_and_errors_reach_the_code_with_their_fix(
    serve: Callable[..., ScriptedServer],
) -> None:
    many = {f"n{i}": f"apple number {i}" for i in range(80)}
    code = (
        'print(len(search("apple", k=500)), len(search("apple", k=60)))\n'
        "for bad in (lambda: get('zz'), lambda: search(''), lambda: search('apple', k=0)):\n"
        "    try:\n"
        "        bad()\n"
        "    except Exception as e:\n"
        "        print(type(e).__name__, '|', e)"
    )
    server = serve({"root": [fence(code), fence("FINAL('done')")]})
    result = rlm_kernel.run("q", retriever=DictRetriever(many), **settings(server))
    output = result.trajectory.iterations[0]["output"]
    assert output.count("was clipped") == 1
    assert f"returns at most {MAX_K} hits" in output
    assert f"\n{MAX_K} {MAX_K}\n" in output
    assert "RetrievalError | No document 'zz' in reach. Use an id from search()." in output
    assert "RetrievalError | search(query, k): query must be a non-empty str" in output
    assert "RetrievalError | search(query, k): k must be a positive int, not 0" in output


def test_a_tool_the_code_overwrites_is_put_back(serve: Callable[..., ScriptedServer]) -> None:
    server = serve(
        {"root": [fence("search = None\nget = len"), fence('FINAL(search("pears")[0]["id"])')]}
    )
    result = rlm_kernel.run("q", retriever=DictRetriever(DOCS), **settings(server))
    assert result.answer == "b2"
    notes = " ".join(result.trajectory.iterations[0]["notes"])
    assert "search" in notes
    assert "get" in notes


@pytest.mark.parametrize("executor", ["namespace", "monty"])
def test_a_child_rlm_searches_and_reads_only_the_scope_its_parent_gave(
    serve: Callable[..., ScriptedServer], executor: str
) -> None:
    parent = fence(
        'ids = [h["id"] for h in search("apple")]\n'
        "print(ids)\n"
        'inside = rlm_query("What keeps well?", scope=["b2"])\n'
        'none = rlm_query("Can you search?", scope=False)\n'
        'wider = rlm_query("x", scope=["b2", "c3"])\n'
        "print(inside, '|', none, '|', wider)"
    )
    child_code = fence(
        'print([h["id"] for h in search("apple")])\n'
        "try:\n"
        '    get("a1")\n'
        "except Exception as e:\n"
        "    print(type(e).__name__, e)\n"
        'print(get("b2")[:5])'
    )

    def sub(request: ChatRequest) -> str:
        asked = first_of(request)
        turn = sum(m["role"] == "assistant" for m in request.messages)
        if "Can you search?" in asked:
            probe = (
                "try:\n    search\n    found = 'tools'\nexcept NameError:\n    found = 'no tools'"
            )
            return fence(f"{probe}\nprint(found)") if turn == 0 else fence("FINAL(found)")
        return child_code if turn == 0 else fence("FINAL('pears')")

    server = serve({"root": [parent, fence("FINAL(inside)")], "sub": sub})
    index = DictRetriever(DOCS)
    result = rlm_kernel.run(
        "q", retriever=index, max_depth=2, executor=executor, **settings(server)
    )
    assert result.answer == "pears"
    out = result.trajectory.iterations[0]["output"]
    assert out.startswith("['a1', 'b2']")
    # The root sees the whole collection, so any ids are within its scope.
    assert out.endswith("pears | no tools | pears")
    calls = result.trajectory.iterations[0]["subcalls"]
    scoped, unscoped, wider = (child_of(c) for c in calls)
    child_out = scoped["records"][1]["output"]
    # The sandbox passes a host exception on as Exception, its message whole.
    raised = "RetrievalError" if executor == "namespace" else "Exception"
    assert child_out.startswith(f"['b2']\n{raised} No document 'a1' in reach. Use an id from")
    assert child_out.endswith("Pears")
    child_first = scoped["records"][0]["messages"][1]["content"]
    assert re.search(r"Documents chosen for you by the parent RLM: +1\.", child_first)
    assert scoped["records"][0]["retriever"]["scope"] == ["b2"]
    # The backend was asked with the scope (in the query), not filtered afterwards.
    assert ("search", "apple", 10, ["b2"]) in index.calls
    # scope=False: no collection, and the prompt names no tools of one.
    assert "retriever" not in unscoped["records"][0]
    assert "search(" not in unscoped["records"][0]["messages"][0]["content"]
    assert unscoped["records"][-1]["answer"] == "no tools"
    assert wider["records"][0]["retriever"]["scope"] == ["b2", "c3"]


def test_a_child_cannot_widen_a_scope_and_a_scope_needs_ids(
    serve: Callable[..., ScriptedServer],
) -> None:
    parent = fence('print(rlm_query("x", scope="b2"))\nprint(rlm_query("y", scope=["b2"]))')
    grandchild = fence('print(rlm_query("z", scope=["a1"]))')

    def sub(request: ChatRequest) -> str:
        turn = sum(m["role"] == "assistant" for m in request.messages)
        return grandchild if turn == 0 else fence("FINAL('ok')")

    server = serve({"root": [parent, fence("FINAL('done')")], "sub": sub})
    result = rlm_kernel.run("q", retriever=DictRetriever(DOCS), max_depth=3, **settings(server))
    out = result.trajectory.iterations[0]["output"]
    assert out.startswith("Error: scope='b2': give a list of document ids")
    child = child_of(result.trajectory.iterations[0]["subcalls"][1])
    assert "Error: scope: 1 id(s) lie outside your own scope (a1)" in child["records"][1]["output"]


def test_the_tools_work_in_the_monty_sandbox(serve: Callable[..., ScriptedServer]) -> None:
    code = (
        'hits = search("apple")\n'
        'print([h["id"] for h in hits], type(hits[0]["score"]).__name__)\n'
        "try:\n"
        '    get("zz")\n'
        "except Exception as e:\n"
        "    print('caught', e)\n"
        'print(get("b2"))'
    )
    server = serve({"root": [fence(code), fence("FINAL(hits[0]['id'])")]})
    result = rlm_kernel.run(
        "q", retriever=DictRetriever(DOCS), executor="monty", **settings(server)
    )
    assert result.answer == "a1"
    out = result.trajectory.iterations[0]["output"]
    assert out.startswith(
        "['a1', 'b2'] float\ncaught No document 'zz' in reach. Use an id from search()."
    )
    assert DOCS["b2"] in out
    assert "search(query: str, k: int = 10)" in system_of(server.requests[0])


def test_the_root_prompt_is_the_same_size_for_a_thousand_or_a_million_documents(
    serve: Callable[..., ScriptedServer],
) -> None:
    lengths, counts = [], []
    for n in (1_000, 1_000_000):
        server = serve({"root": [fence("hit = search('x', k=1)[0]"), fence("FINAL(hit['id'])")]})
        result = rlm_kernel.run("q", retriever=GeneratedCollection(n), **settings(server))
        assert result.answer == "d0"
        sent = server.requests[0].messages
        lengths.append(sum(len(str(m["content"])) for m in sent))
        counts.append(re.search(r"collection: +([\d,]+)\.", str(sent[1]["content"])).group(1))  # type: ignore[union-attr]
    assert counts == ["1,000", "1,000,000"]
    # A thousand times the documents: the prompt grows by the count's four more characters only.
    assert lengths[1] - lengths[0] == len(counts[1]) - len(counts[0])


def test_the_record_names_the_retriever_and_no_password_reaches_it_or_the_model(
    serve: Callable[..., ScriptedServer], tmp_path: Path
) -> None:
    dsn = f"postgresql://reader:{SECRET}@db.example:5432/library"
    server = serve({"root": [fence("FINAL('x')")]})
    result = rlm_kernel.run(
        "q",
        retriever=DictRetriever(DOCS, describe=f"PostgreSQL index docs at {dsn}"),
        autosave=True,
        trajectory_dir=str(tmp_path),
        **settings(server),
    )
    described = result.trajectory.session["retriever"]["describe"]
    assert described.startswith("PostgreSQL index docs at postgresql://db.example:5432/library")
    assert result.path is not None
    assert SECRET not in result.path.read_text()
    assert SECRET not in json.dumps([r.messages for r in server.requests])


def test_a_session_that_searched_replays_with_its_retriever_and_not_without(
    serve: Callable[..., ScriptedServer], tmp_path: Path
) -> None:
    code = 'hits = search("cellar")\nfound = get(hits[0]["id"])\nprint(found[:5])'
    server = serve({"root": [fence(code), fence("FINAL(found)")]})
    result = rlm_kernel.run(
        "Where do pears keep?",
        retriever=DictRetriever(DOCS),
        autosave=True,
        trajectory_dir=str(tmp_path),
        **settings(server),
    )
    assert result.answer == DOCS["b2"]
    assert result.path is not None
    server.stop()  # the replay needs no model
    recording = Trajectory.load(result.path)
    with pytest.raises(ConfigError, match=r"searched a collection \(dict collection\)"):
        replay_session(recording, None, None)
    again = DictRetriever(DOCS)
    replayed = replay_session(
        recording, None, None, retriever=again, base=RLM(autosave=False)
    ).run()
    assert replayed.answer == DOCS["b2"]
    assert [c[0] for c in again.calls] == ["search", "get"]
    with pytest.warns(ContextMismatchWarning, match="'other collection', the session was recorded"):
        replay_session(
            recording, None, None, retriever=DictRetriever(DOCS, describe="other collection")
        )
    # resume: the code runs again, searching the collection given again.
    resumed = rlm_kernel.resume(result.path, None, retriever=DictRetriever(DOCS))
    assert resumed.state == "done"
    assert resumed.answer == DOCS["b2"]


def test_the_reference_protocol_lists_the_tools_and_the_collection(
    serve: Callable[..., ScriptedServer],
) -> None:
    server = serve({"root": [fence("n = len(search('apple'))"), fence("FINAL(n)")]})
    result = rlm_kernel.run("q", retriever=DictRetriever(DOCS), protocol="rlms", **settings(server))
    assert result.answer == "2"
    system, first = system_of(server.requests[0]), first_of(server.requests[0])
    assert "- `search(query: str, k: int = 10)" in system
    assert "## Working with the collection" in system
    assert "Your collection: dict collection" in first
    assert "Your context is" not in first


def test_arun_takes_the_retriever_as_run_does(serve: Callable[..., ScriptedServer]) -> None:
    assert "retriever" in inspect.signature(rlm_kernel.arun).parameters
    server = serve({"root": [fence('hit = search("cellar")[0]'), fence("FINAL(hit['id'])")]})
    result = asyncio.run(rlm_kernel.arun("q", retriever=DictRetriever(DOCS), **settings(server)))
    assert result.answer == "b2"


def test_bad_retrievers_and_clashing_tools_are_refused_clearly() -> None:
    with pytest.raises(ConfigError, match="is a string; run\\(\\) and Session take a retriever"):
        rlm_kernel.Session(
            "q", None, retriever="index.db", client=rlm_kernel.models.ScriptedClient([])
        )
    with pytest.raises(ConfigError, match="lacks search, get, count, describe"):
        rlm_kernel.Session(
            "q", "c", retriever=object(), client=rlm_kernel.models.ScriptedClient([])
        )

    def search(query: str) -> str:
        """Mine."""
        return query

    with pytest.raises(ConfigError, match="search have the name of a retriever's tool"):
        rlm_kernel.Session(
            "q",
            "c",
            retriever=DictRetriever(DOCS),
            tools=[search],
            client=rlm_kernel.models.ScriptedClient([]),
        )
    assert isinstance(DictRetriever(DOCS), Retriever)


def test_rlm_retriever_in_a_real_kernel(
    kernel: Kernel, serve: Callable[..., ScriptedServer]
) -> None:
    code = 'print(P is None)\nFINAL(search("invoices")[0]["id"])'
    server = serve(
        {"root": [fence('print(P is None, [h["id"] for h in search("invoices")])'), fence(code)]}
    )
    configure(kernel, server)
    assert not kernel.run(RETRIEVER_SOURCE + f"\nidx = DictRetriever({DOCS!r})").errors
    run = kernel.run('%rlm "When are invoices due?" --retriever idx')
    assert not run.errors, run.errors
    assert "True ['c3']" in run.stdout
    after = kernel.run(
        "import rlm_kernel\ns = rlm_kernel.current_session()\nprint(s.answer, s.trajectory.session['retriever']['count'])"
    )
    assert after.stdout.strip() == "c3 3"


# --- on a real index (rlm_kernel.index: the SQLite FTS5 backend) --------------------------------------


def ledger_index(path: Path, n: int) -> Any:
    """An SQLite index of ``n`` small records; record 7 is the one about the flood."""
    docs = {f"rec{i}": f"Record {i}: the town ledger lists {i} barrels." for i in range(n)}
    docs["rec7"] = "Record 7: the flood of the spring reached the mill."
    return rlm_kernel.index(docs, path, progress=False)


def test_the_root_prompt_is_the_same_size_for_a_small_and_a_large_real_index(
    serve: Callable[..., ScriptedServer], tmp_path: Path
) -> None:
    lengths = []
    for n, where in ((100, "small"), (20_000, "large")):
        index = ledger_index(tmp_path / where / "ledger.sqlite", n)
        assert index.count() == n
        script = [
            fence('hits = search("flood mill")\nprint(hits[0]["id"])'),
            fence("FINAL(hits[0]['id'])"),
        ]
        server = serve({"root": script})
        result = rlm_kernel.run(
            "Which record tells of the flood?", retriever=index, **settings(server)
        )
        assert result.answer == "rec7"
        sent = server.requests[0].messages
        assert f"({n:,} documents)" in str(sent[1]["content"])  # the backend's own line names it
        lengths.append(sum(len(str(m["content"])) for m in sent))
    # 200 times the documents: the prompt grows by the count's digits (named twice) only.
    assert lengths[1] - lengths[0] == 2 * (len("20,000") - len("100"))


def test_the_cli_runs_and_replays_with_an_index_as_the_retriever(
    serve: Callable[..., ScriptedServer], tmp_path: Path
) -> None:
    ledger_index(tmp_path / "ledger.sqlite", 50)
    code = 'hits = search("flood")\ntext = get(hits[0]["id"])\nprint(text[:9])'
    server = serve({"root": [fence(code), fence("FINAL(text)")]})
    question = "What reached the mill?"
    done = run_cli(
        "run", question, "--retriever", "ledger.sqlite", "--model", "root", "--base-url",
        server.base_url, "--export", "rec.json", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Record 7: the flood of the spring reached the mill."
    recorded = Trajectory.load(tmp_path / "rec.json")
    assert (
        recorded.session["retriever"]["describe"]
        == "SQLite FTS5 index ledger.sqlite (50 documents)"
    )
    server.stop()
    again = run_cli("replay", "rec.json", "--retriever", "ledger.sqlite", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == done.stdout.strip()
    missing = run_cli("replay", "rec.json", "--retriever", "nothing.sqlite", cwd=tmp_path)
    assert missing.returncode != 0
    assert "nothing.sqlite" in missing.stderr
    neither = run_cli("run", question, "--model", "root", cwd=tmp_path)
    assert neither.returncode != 0
    assert "pass --retriever" in neither.stderr


def test_rlm_retriever_names_an_index_path_in_a_real_kernel(
    kernel: Kernel, serve: Callable[..., ScriptedServer], tmp_path: Path
) -> None:
    path = tmp_path / "ledger.sqlite"
    ledger_index(path, 50)
    script = [
        fence('hits = search("flood")\nprint(len(hits), hits[0]["id"])'),
        fence("FINAL(hits[0]['id'])"),
    ]
    server = serve({"root": script})
    configure(kernel, server)
    run = kernel.run(f'%rlm "Which record tells of the flood?" --retriever {path}')
    assert not run.errors, run.errors
    assert "rec7" in run.stdout
    saved = kernel.run("import rlm_kernel\nprint(rlm_kernel.current_session().path)")
    recording = saved.stdout.strip()
    # A replay runs the recorded code again: on the index named again, with no model.
    server.stop()
    again = kernel.run(f"%rlm replay {recording} --retriever {path}")
    assert not again.errors, again.errors
    assert "rec7" in again.stdout
    without = kernel.run(f"%rlm replay {recording}")
    assert "(or --retriever R for one that searched a collection)" in without.stderr
    kernel.run("ctx = 'some text'")
    with_text = kernel.run(f"%rlm replay {recording} ctx")
    assert (
        "searched a collection (SQLite FTS5 index ledger.sqlite (50 documents))" in with_text.stderr
    )
    bad = kernel.run(f'%rlm "q" --retriever {tmp_path / "absent.sqlite"}')
    assert not bad.errors, bad.errors  # a usage error, not a traceback
    assert "%rlm: " in bad.stderr
    assert "absent.sqlite" in bad.stderr


def test_an_exported_notebook_names_the_collection_where_a_session_had_no_context(
    serve: Callable[..., ScriptedServer], tmp_path: Path
) -> None:
    server = serve({"root": [fence("text = get('a1')\nprint(text[:4])"), fence("FINAL(text[:4])")]})
    result = rlm_kernel.run(
        "q", retriever=DictRetriever(DOCS, describe="the ledger"), **settings(server)
    )
    assert result.answer == DOCS["a1"][:4]
    out = result.trajectory.export(tmp_path / "run.ipynb")
    header = json.loads(out.read_text())["cells"][0]["source"]
    text = "".join(header) if isinstance(header, list) else header
    assert "Context `P`: none: the collection the ledger (not included)" in text
    assert "NoneType" not in text


def test_scoped_children_are_offered_only_where_rlm_query_starts_one(
    serve: Callable[..., ScriptedServer],
) -> None:
    for depth, offered in ((1, False), (2, True)):
        server = serve({"root": [fence("hits = search('x', k=1)\nprint(hits)"), fence("FINAL(1)")]})
        rlm_kernel.run("q", retriever=DictRetriever(DOCS), **settings(server, max_depth=depth))
        assert ("scope=ids" in system_of(server.requests[0])) is offered, depth
