"""Write sessions/corpus_qa.jsonl, the recording corpus_qa.ipynb replays offline.

Like make_sub_tools_recording.py, this one is scripted: rlm_kernel's loopback ScriptedServer plays the
root model, so the recording shows the same three steps every time (search, read, count). The
collection is real: the ``N`` issues make_issues.py writes from its fixed seed, each as its page reads
(``page``, which corpus_qa.ipynb imports from here), indexed with ``rlm_kernel.index``; the model's
code runs for real against that index. Run it from examples/: ``python make_corpus_qa_recording.py``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import make_issues

import rlm_kernel
from rlm_kernel.testing import ScriptedServer, fence

HERE = Path(__file__).resolve().parent
N = 30_000  # issues: about 3 M tokens, far past a model's window, indexed in seconds
INDEX_NAME = "issues.sqlite"  # the record names the index by this (describe()), never a full path
QUESTION = (
    "Which repository has the most open issues about a memory leak in the exporter, and which "
    "version do those issues mention?"
)


def page(record: dict[str, Any]) -> dict[str, str]:
    """An issue as the tracker shows it: what the index stores (id, title, and the text get() returns:
    repository, state and labels above the body, so reading an issue tells its state)."""
    header = (
        f"repo: {record['repo']}\nstate: {record['state']}\n"
        f"labels: {', '.join(record['labels'])}\nopened: {record['created']}"
    )
    return {"id": record["id"], "title": record["title"], "text": f"{header}\n\n{record['body']}"}


def write_corpus(folder: Path, n: int = N) -> Path:
    """The ``n`` seeded issues as JSON Lines in ``folder`` (the same bytes on every run)."""
    path = folder / "issues.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for record in make_issues.issues(n):
            out.write(json.dumps(page(record), ensure_ascii=False) + "\n")
    return path


ROOT = [
    fence(
        "# The words vary from report to report: several searches, their hits pooled by id.\n"
        "queries = [\n"
        '    "memory leak in the exporter",\n'
        '    "exporter leaks memory",\n'
        '    "RSS keeps growing until OOM",\n'
        '    "memory usage grows without bound",\n'
        '    "leaking buffers",\n'
        "]\n"
        "hits = {}\n"
        "for q in queries:\n"
        "    for h in search(q, k=50):\n"
        '        hits.setdefault(h["id"], h)\n'
        'print(len(hits), "distinct issues from", len(queries), "searches")\n'
        "for h in list(hits.values())[:3]:\n"
        '    print(h["id"], "|", h["title"])'
    ),
    fence(
        "# State and labels are in the issue, not in the hit: read every one.\n"
        "import re\n"
        "from collections import Counter\n"
        "\n"
        "rows = []\n"
        "for doc_id in hits:\n"
        "    text = get(doc_id)\n"
        '    field = dict(re.findall(r"^(repo|state|labels): (.*)$", text, re.M))\n'
        '    version = re.search(r"\\bv\\d+\\.\\d+\\.\\d+\\b", text)\n'
        "    rows.append({\n"
        '        "repo": field["repo"],\n'
        '        "open": field["state"] == "open",\n'
        '        "leak": "memory" in field["labels"] and "exporter" in field["labels"],\n'
        '        "version": version.group() if version else None,\n'
        "    })\n"
        'leaks = [r for r in rows if r["leak"]]\n'
        'print(len(leaks), "of", len(rows), "are exporter memory leaks")\n'
        'print("all of them, by repository:", Counter(r["repo"] for r in leaks).most_common(3))\n'
        'open_by_repo = Counter(r["repo"] for r in leaks if r["open"])\n'
        'print("open ones, by repository:", open_by_repo.most_common(3))'
    ),
    fence(
        "repo, n_open = open_by_repo.most_common(1)[0]\n"
        'versions = Counter(r["version"] for r in leaks if r["repo"] == repo and r["open"])\n'
        "version, n_version = versions.most_common(1)[0]\n"
        "most_in_all = Counter(r['repo'] for r in leaks).most_common(1)[0][0]\n"
        "FINAL(\n"
        '    f"{repo}: {n_open} open exporter memory-leak issues among those found, "\n'
        '    f"{n_version} of them naming {version}. ({most_in_all} has more such issues in all, "\n'
        '    f"but nearly all are closed.)"\n'
        ")"
    ),
]


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="corpus_qa-") as tmp:
        folder = Path(tmp)
        source = write_corpus(folder)
        # Built from the folder, as the notebook does: describe() then names INDEX_NAME alone.
        os.chdir(folder)
        retriever = rlm_kernel.index(source.name, INDEX_NAME, progress=False)
        with ScriptedServer({"scripted": ROOT}) as server:
            result = rlm_kernel.run(
                QUESTION,
                retriever=retriever,
                base_url=server.base_url,
                model="scripted",
                max_retries=0,
                autosave=False,
            )
        os.chdir(HERE)
    assert result.ok, result.message
    assert result.answer is not None
    truth = make_issues.truth(make_issues.issues(N))
    assert result.answer.startswith(f"{truth['repo']}:"), (result.answer, truth)
    assert truth["version"] in result.answer, (result.answer, truth)
    path = result.trajectory.save(HERE / "sessions" / "corpus_qa.jsonl")
    print(f"{path}: {result.answer}")


if __name__ == "__main__":
    main()
