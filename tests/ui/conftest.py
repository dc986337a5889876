"""Browser tests: a real JupyterLab on loopback driven by Python Playwright in Debian's Chromium.

Everything here is marked ``ui`` and skips with a reason when Chromium or the ``playwright`` package
is missing (``apt-get install chromium``; ``pip install playwright``; never ``playwright install``,
which downloads browsers). The server runs with fresh config, data, runtime, workspace and settings
directories under a temporary folder, no token, and the news toast silenced. Screenshots go to
``ci-artifacts/screenshots/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "ci-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
SERVER_START_TIMEOUT = 60.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.ui)


def _chromium() -> str | None:
    path = os.environ.get("RLM_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    return path if os.path.exists(path) else None


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = _chromium()
    if path is None:
        pytest.skip("UI test: chromium is not installed (apt-get install -y chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("UI test: the playwright package is missing (pip install playwright)")
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LabServer:
    """A running ``jupyter lab`` on loopback; ``root`` is its notebook folder."""

    url: str
    root: Path
    log: Path
    process: subprocess.Popen[bytes]

    def write_notebook(self, name: str, sources: list[str], kernel: str = "python3") -> Path:
        """Write an unexecuted notebook of code cells into the server's root."""
        import nbformat

        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
        nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
        path = self.root / name
        nbformat.write(nb, path)
        return path

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"


def _wait_for_server(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/api/status", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    raise RuntimeError(
        f"jupyter lab did not answer within {SERVER_START_TIMEOUT}s:\n{log.read_text()}"
    )


@pytest.fixture(scope="session")
def lab_server(chromium_path: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """One JupyterLab for the whole session (each test opens its own notebook with ``?reset``)."""
    base = tmp_path_factory.mktemp("lab")
    root = base / "notebooks"
    app_settings = base / "app-settings"
    for folder in (root, app_settings, base / "config", base / "data", base / "runtime"):
        folder.mkdir()
    # The news / update-check consent toast would cover screenshots; news_url=None is not enough.
    (app_settings / "overrides.json").write_text(
        json.dumps(
            {
                "@jupyterlab/apputils-extension:notification": {
                    "fetchNews": "false",
                    "checkForUpdates": False,
                }
            }
        )
    )
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = base / "server.log"
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(base / "config"),
        "JUPYTER_DATA_DIR": str(base / "data"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--allow-root",
        f"--port={port}",
        "--port-retries=0",
        "--ip=127.0.0.1",
        f"--ServerApp.root_dir={root}",
        "--IdentityProvider.token=",
        "--ServerApp.password=",
        "--ServerApp.disable_check_xsrf=True",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.news_url=None",
        "--LanguageServerManager.autodetect=False",
        f"--LabApp.workspaces_dir={base / 'workspaces'}",
        f"--LabApp.user_settings_dir={base / 'user-settings'}",
        f"--LabApp.app_settings_dir={app_settings}",
    ]
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            command, cwd=root, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
    try:
        _wait_for_server(url, process, log)
        yield LabServer(url=url, root=root, log=log, process=process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class LabPage:
    """A browser page on the test server, with the console messages it printed."""

    page: Page
    server: LabServer
    console: list[str] = field(default_factory=list)

    def open_notebook(self, name: str, timeout: float = 60_000) -> None:
        """Open ``name`` (already in the server root) in a fresh workspace; wait for an idle kernel."""
        self.page.goto(f"{self.server.url}/lab/tree/{name}?reset")
        self.page.wait_for_function(
            """(name) => {
                const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
                return !!w && !!w.context && w.context.path === name && !!w.sessionContext
                    && w.sessionContext.kernelDisplayStatus === 'idle';
            }""",
            arg=name,
            timeout=timeout,
        )

    def evaluate(self, script: str, arg: Any = None) -> Any:
        return self.page.evaluate(script, arg)

    def run_all(self) -> None:
        """Run all cells without awaiting them (awaiting would block on every chained cell)."""
        self.page.evaluate(
            "() => { void window.jupyterapp.commands.execute('notebook:run-all-cells'); }"
        )

    def wait_for_output(self, index: int, text: str, timeout: float = 60_000) -> None:
        """Wait until cell ``index`` of the current notebook has an output containing ``text``."""
        self.page.wait_for_function(
            """([index, text]) => {
                const w = window.jupyterapp.shell.currentWidget;
                const cells = w && w.content && w.content.model && w.content.model.cells;
                if (!cells || cells.length <= index) { return false; }
                const cell = cells.get(index);
                if (!cell.outputs) { return false; }
                for (let i = 0; i < cell.outputs.length; i++) {
                    const out = cell.outputs.get(i).toJSON();
                    const body = JSON.stringify(out.data || out.text || '');
                    if (body.includes(text)) { return true; }
                }
                return false;
            }""",
            arg=[index, text],
            timeout=timeout,
        )

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path


@pytest.fixture
def lab(
    browser: Browser, lab_server: LabServer, request: pytest.FixtureRequest
) -> Iterator[LabPage]:
    """A fresh browser context on the lab server; a failing test leaves a screenshot and log tail."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    lab_page = LabPage(page=page, server=lab_server)

    def on_console(message: ConsoleMessage) -> None:
        lab_page.console.append(f"{message.type}: {message.text}")

    page.on("console", on_console)
    try:
        yield lab_page
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            # The page may be gone; the failure itself is what matters.
            with contextlib.suppress(Exception):
                lab_page.screenshot(f"FAILED-{request.node.name}")
            print("---- browser console ----\n" + "\n".join(lab_page.console))
            print("---- jupyter lab log (tail) ----\n" + lab_server.log_tail())
        context.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report
