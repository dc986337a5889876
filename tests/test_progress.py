"""The terminal progress line: iteration, tokens, sub-calls (in flight), elapsed time."""

from __future__ import annotations

import io
from collections.abc import Callable

from rlm_kernel import RLM, Session
from rlm_kernel._progress import ProgressLine
from rlm_kernel.testing import ScriptedServer, fence, settings


def test_progress_line_follows_the_session(serve: Callable[..., ScriptedServer]) -> None:
    server = serve(
        {
            "root": [fence("print(llm_batch(['a', 'b', 'c']))"), fence("FINAL(1)")],
            "sub": lambda r: "ok",
        }
    )
    session = Session("q", "ctx", config=RLM().with_overrides(settings(server)))
    stream = io.StringIO()
    line = ProgressLine(session, stream, interval=60)
    session.run()
    final = line.render()
    line.close()
    assert final.startswith("rlm done · iteration 2/30 · ")
    assert "3 sub-calls" in final
    assert "in flight" not in final
    drawn = stream.getvalue()
    assert drawn.startswith("\r\x1b[Krlm ")
    assert drawn.endswith("\r\x1b[K")  # cleared at close
    assert "rlm done · iteration 2/30" in drawn  # the state change to done is drawn at once
    total = session.usage.total.total_tokens
    root = session.root_usage.total.total_tokens
    assert f"{total:,} tokens (root {root:,} · sub {total - root:,})" in final
    # A batch in flight is drawn from the snapshot too: tests/test_snapshot.py.
