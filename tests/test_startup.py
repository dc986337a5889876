"""Start-up stays light: ``import rlm_kernel`` and ``rlm-kernel --help`` leave the openai SDK (most of
a second to import) and the notebook stack out; building a live client brings the SDK in.

Each check runs in a fresh interpreter, so what the test process already imported does not count.
Nothing here is timed: benchmarks/startup.py measures the times.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

import pytest

from rlm_kernel.testing import ScriptedServer, fence

# What `import rlm_kernel` must not import: the SDK and its HTTP and model layers, and the notebook
# and kernel stack (the %rlm magics and the kernel import those when they load).
HEAVY = ("openai", "httpx", "httpx2", "pydantic", "IPython", "ipywidgets", "ipykernel", "zmq")
# The console script `rlm-kernel` runs exactly this.
CONSOLE_SCRIPT = "import sys; from rlm_kernel.cli import main; sys.exit(main())"


def fresh_python(code: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
        check=False,
    )


def loaded_after(code: str) -> set[str]:
    """The top-level packages a fresh interpreter holds after running ``code``."""
    report = "import json, sys; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    done = fresh_python(f"{code}\n{report}")
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def imported_by_command(*args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run the ``rlm-kernel`` entry point; return its result and every module it imported, read from
    the interpreter's own import log (PYTHONPROFILEIMPORTTIME), so that argparse's exit is no hurdle."""
    done = fresh_python(CONSOLE_SCRIPT, *args, PYTHONPROFILEIMPORTTIME="1")
    modules = {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }
    return done, modules


def test_import_leaves_the_sdk_and_the_notebook_stack_out() -> None:
    loaded = loaded_after("import rlm_kernel")
    assert "rlm_kernel" in loaded
    assert sorted(loaded & set(HEAVY)) == []


@pytest.mark.parametrize(
    ("args", "shows"),
    [
        (["--help"], "usage: rlm-kernel"),
        (["run", "--help"], "usage: rlm-kernel run"),
        (["install", "--help"], "--display-name"),
        (["--version"], "rlm_kernel "),
    ],
    ids=["help", "run-help", "install-help", "version"],
)
def test_the_command_answers_help_without_the_sdk(args: list[str], shows: str) -> None:
    done, modules = imported_by_command(*args)
    assert done.returncode == 0, done.stderr[-2000:]
    assert shows in done.stdout
    assert "rlm_kernel.cli" in modules  # the import log was read
    assert sorted(m for m in modules if m.split(".")[0] == "openai") == []


def test_an_offline_session_never_imports_the_sdk() -> None:
    script = [fence("n = len(P)\nprint(n)"), fence("FINAL(n)")]
    code = (
        "import sys, rlm_kernel\n"
        "from rlm_kernel.models import ScriptedClient\n"
        f"client = ScriptedClient({script!r})\n"
        "result = rlm_kernel.Session('How long?', 'abcde', client=client).run()\n"
        "assert result.answer == '5', result\n"
    )
    assert "openai" not in loaded_after(code)


def test_a_live_session_imports_the_sdk_and_answers(
    serve: Callable[..., ScriptedServer],
) -> None:
    """Laziness does not break real use: the SDK comes in when the client is built, and works."""
    server = serve({"root": [fence("loud = P.upper()\nprint(loud)"), fence("FINAL(loud)")]})
    code = (
        "import sys, rlm_kernel\n"
        "assert 'openai' not in sys.modules\n"
        f"result = rlm_kernel.run('Shout it', 'quiet', model='root', base_url={server.base_url!r}, "
        "max_retries=0)\n"
        "assert result.answer == 'QUIET', result\n"
        "from rlm_kernel.models import OpenAIClient\n"
        "from rlm_kernel.models.openai import OpenAIClient as Direct\n"
        "assert OpenAIClient is Direct\n"
    )
    loaded = loaded_after(code)
    assert "openai" in loaded
    assert [r.model for r in server.requests] == ["root", "root"]


def test_the_lazy_names_are_there_and_only_they() -> None:
    code = (
        "from rlm_kernel import export, import_trajectory\n"
        "from rlm_kernel.models import OpenAIClient\n"
        "import rlm_kernel.exporters, rlm_kernel.models.openai\n"
        "assert export is rlm_kernel.exporters.export\n"
        "assert import_trajectory is rlm_kernel.exporters.import_trajectory\n"
        "assert OpenAIClient is rlm_kernel.models.openai.OpenAIClient\n"
    )
    done = fresh_python(code)
    assert done.returncode == 0, done.stderr
    for module, name in (("rlm_kernel", "exporter"), ("rlm_kernel.models", "NoSuchClient")):
        done = fresh_python(f"import {module} as m; m.{name}")
        assert done.returncode == 1
        assert f"module {module!r} has no attribute {name!r}" in done.stderr
