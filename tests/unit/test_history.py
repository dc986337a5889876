"""``History.apply`` is the one reducer of the root conversation: the session's history and the one
rebuilt from its records are the same, whatever the run did (in-process, scripted client)."""

from __future__ import annotations

import pytest

from rlm_kernel import SessionStateError
from rlm_kernel._history import History
from rlm_kernel._schema import compaction_record, follow_up_record, model_call, rewind_record
from rlm_kernel.testing import fence, scripted_session


def test_the_history_rebuilt_from_the_records_is_the_sessions_own() -> None:
    s = scripted_session(
        [
            fence("print('x' * 3000)"),
            "SUMMARY: printed x",  # over the compaction threshold after one step
            fence("n = len(P)\nprint(n)"),
            fence("print(n + 1)"),
            fence("FINAL(n)"),
            fence("FINAL(n * 2)"),
        ],
        compaction=True,
        context_window=2000,
        compaction_threshold=0.5,
    )
    s.step()
    s.step()
    s.rewind(2)
    s.execute("n = len(P)\nprint('edited', n)")
    assert s.run().answer == "400"
    s.follow_up("And twice that?")
    assert s.run().answer == "800"
    kinds = [r["type"] for r in s.trajectory.records]
    assert {"compaction", "rewind", "follow_up", "final"} <= set(kinds)
    assert History.of(s.trajectory.records).messages == s.messages


def test_a_follow_up_goes_into_the_last_observation_or_after_the_preamble() -> None:
    history = History([{"role": "system", "content": "s"}, {"role": "user", "content": "m"}])
    history.apply(follow_up_record("q1", 0, "ask q1"))
    assert history.messages[-1] == {"role": "user", "content": "ask q1"}
    history.turns.append(({"role": "assistant", "content": "a"}, {"role": "user", "content": "o"}))
    history.apply(follow_up_record("q2", 1, "ask q2"))
    assert history.messages[-1] == {"role": "user", "content": "o\n\nask q2"}
    assert len(history.messages) == 5


def test_a_rewind_into_compacted_history_is_refused() -> None:
    history = History([{"role": "system", "content": "s"}, {"role": "user", "content": "m"}])
    for n in (1, 2):
        history.turns.append(
            ({"role": "assistant", "content": f"a{n}"}, {"role": "user", "content": f"o{n}"})
        )
    history.apply(compaction_record(2, "summary", "note", model_call(None, None)))
    assert [m["content"] for m in history.messages] == ["s", "m", "summary", "note"]
    assert history.iterations == 2
    with pytest.raises(SessionStateError, match="compacted"):
        history.apply(rewind_record(2))
