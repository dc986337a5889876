"""Start-up: ``import rlm_kernel``, ``rlm-kernel --help``, and the RLM kernel against a plain ipykernel.

Every figure comes from fresh processes. ``import rlm_kernel`` is timed inside a new interpreter
(``time.perf_counter`` around the import), which also reports whether the openai SDK came in; the SDK's
own import is timed the same way, for what it would add. ``rlm-kernel --help`` is timed from outside,
interpreter start-up included, through the installed console script (or, without one, the line it
runs); one more run under ``PYTHONPROFILEIMPORTTIME`` lists what it imported.

"Kernel start" is the time from jupyter_client's ``KernelManager.start_kernel()`` to
``wait_for_ready()`` answering (the kernel replied to kernel_info), as a front end sees it. Both
kernelspecs are written into a temporary prefix for this Python, as their wheels ship them (``python
-m ipykernel_launcher`` and ``python -m rlm_kernel``, no extra interpreter flags), and started in turns,
alternating which goes first, with one untimed warm-up each; the ratio is of the medians. On Linux
the kernel process's own CPU time up to that moment is shown too: other load inflates it less.

Usage: python benchmarks/startup.py [--runs 15] [--kernel-runs 15]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from _common import OtherLoad, Verdicts, banner, median, print_table

KERNEL_TARGET = 1.2  # RLM kernel start ≤ 1.2 × a plain ipykernel's
TIMED_IMPORT = (
    "import sys, time, json\n"
    "t = time.perf_counter()\n"
    "import {module}\n"
    "took = time.perf_counter() - t\n"
    "print(json.dumps([took, 'openai' in sys.modules]))"
)
CONSOLE_LINE = "import sys; from rlm_kernel.cli import main; sys.exit(main())"


def timed_import(module: str) -> tuple[float, bool]:
    """Seconds ``import module`` takes in a fresh interpreter, and whether openai was imported."""
    done = subprocess.run(
        [sys.executable, "-c", TIMED_IMPORT.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
    )
    took, sdk = json.loads(done.stdout)
    return float(took), bool(sdk)


def help_command() -> tuple[list[str], str]:
    """How to run ``rlm-kernel --help``: the console script next to this Python when there is one."""
    script = Path(sysconfig.get_path("scripts")) / "rlm-kernel"
    if script.is_file():
        return [str(script), "--help"], str(script)
    return [sys.executable, "-c", CONSOLE_LINE, "--help"], "python -c (no console script found)"


def timed_help(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, capture_output=True, check=True)
    return time.perf_counter() - started


def help_imports(command: list[str]) -> set[str]:
    """Every module ``rlm-kernel --help`` imported, from the interpreter's own import log."""
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }


def write_kernelspecs(prefix: Path) -> Path:
    """The plain ipykernel spec and the RLM one, for this Python, under ``prefix``."""
    from ipykernel.kernelspec import make_ipkernel_cmd

    from rlm_kernel.install import install

    kernels = prefix / "share" / "jupyter" / "kernels"
    plain = kernels / "plain"
    plain.mkdir(parents=True)
    spec = {"argv": make_ipkernel_cmd(), "display_name": "Python 3", "language": "python"}
    (plain / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    install(prefix=str(prefix), name="rlm")
    return kernels


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a process has used so far (Linux /proc); None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def kernel_start(
    name: str, kernels: Path, env: dict[str, str], cwd: Path
) -> tuple[float, float | None]:
    """Seconds from ``start_kernel()`` to ``wait_for_ready()`` answering, for one fresh kernel, and
    the CPU time the kernel process had used by then (less sensitive to other load than the wall)."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    specs = KernelSpecManager(kernel_dirs=[str(kernels)], ensure_native_kernel=False)
    manager = KernelManager(kernel_name=name, kernel_spec_manager=specs)
    started = time.perf_counter()
    # The kernels' own log lines (ipykernel warns about TCP without encryption) would bury the table.
    manager.start_kernel(
        env=env, cwd=str(cwd), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=120)
        wall = time.perf_counter() - started
        pid = getattr(manager.provisioner, "pid", None)
        return wall, (cpu_seconds(pid) if pid else None)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def kernel_env(root: Path) -> dict[str, str]:
    """The same isolated environment for both kernels: no IPython profile or startup files of the
    person running this, no API keys."""
    env = dict(os.environ)
    env["IPYTHONDIR"] = str(root / "ipython")
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    return env


def spread(values: list[float]) -> str:
    return f"{min(values) * 1000:,.0f}–{max(values) * 1000:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="fresh interpreters per import figure")
    parser.add_argument("--kernel-runs", type=int, default=15, help="kernel starts per kernel")
    args = parser.parse_args()
    banner(
        "startup: import, rlm-kernel --help, kernel start",
        f"Medians of {args.runs} fresh interpreters (imports, --help) and {args.kernel_runs} kernel "
        "starts each, RLM and plain ipykernel alternating.",
    )
    other = OtherLoad()
    imports = [timed_import("rlm_kernel") for _ in range(args.runs)]
    sdk_import = [timed_import("openai")[0] for _ in range(args.runs)]
    command, how = help_command()
    help_runs = [timed_help(command) for _ in range(args.runs)]
    help_sdk = sorted(m for m in help_imports(command) if m.split(".")[0] == "openai")

    with tempfile.TemporaryDirectory(prefix="rlm-startup-") as tmp:
        root = Path(tmp)
        kernels = write_kernelspecs(root / "env")
        env = kernel_env(root)
        starts: dict[str, list[float]] = {"rlm": [], "plain": []}
        cpu: dict[str, list[float]] = {"rlm": [], "plain": []}
        for name in starts:  # warm-up: disk caches, .pyc files
            kernel_start(name, kernels, env, root)
        for i in range(args.kernel_runs):
            order = ("rlm", "plain") if i % 2 == 0 else ("plain", "rlm")
            for name in order:
                wall, used = kernel_start(name, kernels, env, root)
                starts[name].append(wall)
                if used is not None:
                    cpu[name].append(used)

    import_times = [t for t, _ in imports]
    rows = [
        ["import rlm_kernel", f"{median(import_times) * 1000:,.0f}", spread(import_times)],
        ["import openai (the SDK, alone)", f"{median(sdk_import) * 1000:,.0f}", spread(sdk_import)],
        ["rlm-kernel --help (wall)", f"{median(help_runs) * 1000:,.0f}", spread(help_runs)],
        ["kernel start: plain ipykernel", f"{median(starts['plain']) * 1000:,.0f}", spread(starts["plain"])],
        ["kernel start: RLM (Python 3)", f"{median(starts['rlm']) * 1000:,.0f}", spread(starts["rlm"])],
    ]  # fmt: skip
    if cpu["rlm"] and cpu["plain"]:
        for name, label in (("plain", "plain ipykernel"), ("rlm", "RLM (Python 3)")):
            rows.append(
                [
                    f"kernel CPU to ready: {label}",
                    f"{median(cpu[name]) * 1000:,.0f}",
                    spread(cpu[name]),
                ]
            )
    print_table(["what", "median ms", "min–max ms"], rows)
    if cpu["rlm"] and cpu["plain"]:
        print(
            f"CPU time to ready, RLM against plain: {median(cpu['rlm']) / median(cpu['plain']):.2f}× "
            "(the kernel process's own user + system time: less sensitive to other load)"
        )
    print(
        f"import rlm_kernel against the SDK's import alone: "
        f"{median(import_times) / median(sdk_import):.2f}× (what it would at least cost with the SDK "
        f"imported eagerly: {(median(import_times) + median(sdk_import)) / median(import_times):.1f}× "
        "today's)"
    )
    print(f"rlm-kernel --help ran as: {how}")
    other.report()
    print()

    verdicts = Verdicts()
    sdk_runs = sum(sdk for _, sdk in imports)
    verdicts.check(
        "import rlm_kernel leaves the SDK out",
        sdk_runs == 0,
        f"openai imported in {sdk_runs} of {len(imports)} runs (target: none)",
    )
    verdicts.check(
        "rlm-kernel --help leaves the SDK out",
        not help_sdk,
        f"{len(help_sdk)} openai modules imported (target: none)"
        + (f": {', '.join(help_sdk[:3])}…" if help_sdk else ""),
    )
    ratio = median(starts["rlm"]) / median(starts["plain"])
    verdicts.check(
        "RLM kernel start against a plain ipykernel",
        ratio <= KERNEL_TARGET,
        f"{ratio:.2f}× ({median(starts['rlm']) * 1000:,.0f} ms vs "
        f"{median(starts['plain']) * 1000:,.0f} ms; target ≤ {KERNEL_TARGET}×)",
    )
    verdicts.summary()


if __name__ == "__main__":
    main()
