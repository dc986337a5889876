"""Write sessions/typed_answers.jsonl, the recording typed_answers.ipynb replays offline.

Unlike the other recordings, which a real local model made, this one is scripted: rlm_kernel's own
loopback ScriptedServer plays the model (model name "scripted"), so that the notebook can show a
validation failure and its repair every time. The code runs for real on ops-log.txt, as it does
again when the notebook replays it. Run it from examples/: ``python make_typed_recording.py``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

import rlm_kernel
from rlm_kernel.testing import ScriptedServer, fence

HERE = Path(__file__).resolve().parent
QUESTION = "What broke in incident #4417, why, how was it fixed, and how long was the outage?"


class Incident(BaseModel):
    """The answer's shape, as typed_answers.ipynb defines it."""

    service: str
    root_cause: str
    fix: str
    outage_minutes: int


STEPS = [
    fence(
        'hits = [line for line in P.splitlines() if "#4417" in line]\nprint(len(hits))\n'
        'print("\\n".join(hits))'
    ),
    # The first answer gives the duration as text: the validator says what is wrong with it.
    fence(
        "SUBMIT(\n"
        '    service="checkout-web",\n'
        '    root_cause="CHG-2291 set max_pool_size=50 instead of 500",\n'
        '    fix="CHG-2291 rolled back, max_pool_size restored to 500",\n'
        '    outage_minutes="56 minutes",\n'
        ")"
    ),
    fence(
        'minutes = int(hits[-1].split("after ")[1].split()[0])\n'
        "SUBMIT(\n"
        '    service="checkout-web",\n'
        '    root_cause="CHG-2291 set max_pool_size=50 instead of 500",\n'
        '    fix="CHG-2291 rolled back, max_pool_size restored to 500",\n'
        "    outage_minutes=minutes,\n"
        ")"
    ),
]


def main() -> None:
    with ScriptedServer({"scripted": STEPS}) as server:
        result = rlm_kernel.run(
            QUESTION,
            HERE / "ops-log.txt",
            output=Incident,
            base_url=server.base_url,
            model="scripted",
            sub_model="scripted",
            max_retries=0,
            autosave=False,
        )
    assert result.ok, result.message
    path = result.trajectory.save(HERE / "sessions" / "typed_answers.jsonl")
    print(f"{path}: {result.value!r}")


if __name__ == "__main__":
    main()
