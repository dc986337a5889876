"""``rlm-kernel install``: kernelspecs as ``python -m ipykernel install`` writes them, found and started
by jupyter_client."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

import rlm_kernel
from rlm_kernel.testing import kernel_env

LOGOS = {"logo-32x32": 32, "logo-64x64": 64}


def install(prefix: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rlm_kernel.cli", "install", "--prefix", str(prefix), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def specs_in(prefix: Path) -> KernelSpecManager:
    """What Jupyter finds in ``prefix`` and nowhere else."""
    kernels = str(prefix / "share" / "jupyter" / "kernels")
    # ensure_native_kernel off: ipykernel's own python3 spec would be listed wherever one looks.
    return KernelSpecManager(kernel_dirs=[kernels], ensure_native_kernel=False)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk comes first
    return width, height


@pytest.fixture(scope="module")
def prefix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two kernels installed side by side, each with its own name, display name and environment."""
    where = tmp_path_factory.mktemp("env")
    first = install(
        where, "--name", "rlm-alpha", "--display-name", "RLM α (project)",
        "--env", "RLM_MARKER", "alpha", "--env", "RLM_MODEL", "model-a",
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == (
        f"Installed kernelspec rlm-alpha in {where / 'share/jupyter/kernels/rlm-alpha'}"
    )
    second = install(where, "--name", "rlm-beta", "--env", "RLM_MARKER", "beta")
    assert second.returncode == 0, second.stderr
    return where


def test_two_installs_are_two_kernelspecs(prefix: Path) -> None:
    specs = specs_in(prefix).get_all_specs()
    assert sorted(specs) == ["rlm-alpha", "rlm-beta"]
    alpha, beta = specs["rlm-alpha"]["spec"], specs["rlm-beta"]["spec"]
    assert alpha["display_name"] == "RLM α (project)"
    assert (
        beta["display_name"] == "rlm-beta"
    )  # as with ipykernel: a name alone names it in the launcher
    assert alpha["env"] == {"RLM_MARKER": "alpha", "RLM_MODEL": "model-a"}
    assert beta["env"] == {"RLM_MARKER": "beta"}
    for spec in (alpha, beta):
        # This Python by full path: Jupyter would replace a bare "python" with its own.
        assert spec["argv"] == [sys.executable, "-m", "rlm_kernel", "-f", "{connection_file}"]
        assert spec["language"] == "python"


def test_the_logos_are_the_kernelspecs_resources(prefix: Path) -> None:
    for name in ("rlm-alpha", "rlm-beta"):
        spec = specs_in(prefix).get_kernel_spec(name)
        resources = {
            f.stem: Path(spec.resource_dir) / f.name for f in Path(spec.resource_dir).iterdir()
        }
        assert {"logo-32x32", "logo-64x64", "logo-svg"} <= set(resources)
        for stem, size in LOGOS.items():
            assert png_size(resources[stem]) == (size, size)
        assert resources["logo-svg"].read_text(encoding="utf-8").lstrip().startswith("<svg")


def test_the_wheels_own_kernelspec_has_the_logos_too() -> None:
    # pyproject maps this folder to share/jupyter/kernels/rlm in the wheel.
    shipped = Path(rlm_kernel.__file__).parent / "kernelspec"
    assert {p.name for p in shipped.iterdir()} >= {
        "kernel.json",
        "logo-32x32.png",
        "logo-64x64.png",
        "logo-svg.svg",
    }


def test_installing_a_name_again_replaces_it(tmp_path: Path) -> None:
    assert install(tmp_path, "--env", "RLM_MARKER", "old").returncode == 0
    again = install(tmp_path, "--display-name", "RLM again")
    assert again.returncode == 0, again.stderr
    spec = specs_in(tmp_path).get_kernel_spec("rlm")
    assert spec.display_name == "RLM again"
    assert spec.env == {}


def test_default_name_and_display_name(tmp_path: Path) -> None:
    assert install(tmp_path).returncode == 0
    spec = specs_in(tmp_path).get_kernel_spec("rlm")
    assert spec.display_name == "RLM (Python 3)"
    assert "env" not in spec.to_dict() or not spec.env


@pytest.mark.parametrize("name", ["two words", "ünïcode", "semi;colon"])
def test_a_name_jupyter_would_refuse_is_a_usage_error(tmp_path: Path, name: str) -> None:
    done = install(tmp_path, "--name", name)
    assert done.returncode == 2
    assert "is not a kernelspec name" in done.stderr
    assert not (tmp_path / "share").exists()


def test_an_installed_kernel_starts_with_its_environment(prefix: Path, tmp_path: Path) -> None:
    manager = KernelManager(kernel_name="rlm-alpha", kernel_spec_manager=specs_in(prefix))
    manager.start_kernel(env=kernel_env(tmp_path), cwd=str(tmp_path))
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        out: list[str] = []

        def collect(msg: dict[str, object]) -> None:
            content = msg["content"]
            if msg["msg_type"] == "stream" and isinstance(content, dict):
                out.append(str(content["text"]))

        code = (
            "import os, sys\n"
            "print(sys.executable, os.environ['RLM_MARKER'], 'openai' in sys.modules)\n"
            "print(get_ipython().find_magic('rlm') is not None)"
        )
        reply = client.execute_interactive(code, timeout=60, output_hook=collect)
        assert reply["content"]["status"] == "ok", reply["content"]
        # This Python, the spec's environment, the magics loaded, and no SDK until a model is asked.
        assert "".join(out).split() == [sys.executable, "alpha", "False", "True"]
        info = client.kernel_info(reply=True)["content"]
        assert info["implementation"] == "rlm_kernel"
        assert info["rlm"]["version"] == rlm_kernel.__version__
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
