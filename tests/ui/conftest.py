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
    app: str = "lab"  # or "notebook" (Notebook 7)

    def write_notebook(self, name: str, sources: list[str], kernel: str = "python3") -> Path:
        """Write an unexecuted notebook of code cells into the server's root."""
        import nbformat

        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
        nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
        path = self.root / name
        nbformat.write(nb, path)
        return path

    def shutdown_kernels(self) -> None:
        """End every notebook session and its kernel (tests leave none running for the next)."""
        with contextlib.suppress(OSError, ValueError):
            with urllib.request.urlopen(f"{self.url}/api/sessions", timeout=5) as response:
                sessions = json.loads(response.read())
            for session in sessions:
                request = urllib.request.Request(
                    f"{self.url}/api/sessions/{session['id']}", method="DELETE"
                )
                with contextlib.suppress(OSError):
                    urllib.request.urlopen(request, timeout=15).close()

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


def _start_server(app: str, base: Path) -> Iterator[LabServer]:
    """Run ``jupyter lab`` (app "lab") or Notebook 7 (app "notebook") on loopback under ``base``."""
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
        # Kernels inherit this: autosaved trajectories and caches stay out of the real home.
        "XDG_DATA_HOME": str(base / "xdg-data"),
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "RLM_MODEL", "RLM_SUB_MODEL"):
        env.pop(name, None)
    app_class = "LabApp" if app == "lab" else "JupyterNotebookApp"
    news = ["--LabApp.news_url=None"] if app == "lab" else []
    command = [
        sys.executable,
        "-m",
        "jupyterlab" if app == "lab" else "notebook",
        "--no-browser",
        "--allow-root",
        f"--port={port}",
        "--port-retries=0",
        "--ip=127.0.0.1",
        f"--ServerApp.root_dir={root}",
        "--IdentityProvider.token=",
        "--ServerApp.password=",
        "--ServerApp.disable_check_xsrf=True",
        f"--{app_class}.expose_app_in_browser=True",
        "--LanguageServerManager.autodetect=False",
        *news,
        f"--{app_class}.workspaces_dir={base / 'workspaces'}",
        f"--{app_class}.user_settings_dir={base / 'user-settings'}",
        f"--{app_class}.app_settings_dir={app_settings}",
    ]
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            command, cwd=root, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
    try:
        _wait_for_server(url, process, log)
        yield LabServer(url=url, root=root, log=log, process=process, app=app)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture(scope="session")
def lab_server(chromium_path: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """One JupyterLab for the whole session (each test opens its own notebook with ``?reset``)."""
    yield from _start_server("lab", tmp_path_factory.mktemp("lab"))


@pytest.fixture(scope="session")
def notebook7_server(
    chromium_path: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LabServer]:
    """One Notebook 7 server, started only for the tests that ask for it."""
    try:
        import notebook  # noqa: F401
    except ImportError:
        pytest.skip("UI test: Notebook 7 is not installed (pip install 'notebook>=7')")
    yield from _start_server("notebook", tmp_path_factory.mktemp("nb7"))


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
    tabs: list[LabPage] = field(default_factory=list)  # more tabs opened by new_tab()

    def new_tab(self) -> LabPage:
        """Another tab in the same browser context (closed with it)."""
        page = self.page.context.new_page()
        page.set_default_timeout(30_000)
        tab = _watch_console(LabPage(page=page, server=self.server))
        self.tabs.append(tab)
        return tab

    def open_notebook(self, name: str, timeout: float = 60_000) -> None:
        """Open ``name`` (already in the server root) in a fresh workspace; wait for an idle kernel."""
        if self.server.app == "lab":
            self.page.goto(f"{self.server.url}/lab/tree/{name}?reset")
        else:
            self.page.goto(f"{self.server.url}/notebooks/{name}")
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

    def edit_and_run(self, index: int, source: str) -> None:
        """Replace cell ``index``'s source and run it with Shift+Enter, as a person does."""
        self.page.evaluate(
            """([index, source]) => {
                const nb = window.jupyterapp.shell.currentWidget.content;
                nb.model.cells.get(index).sharedModel.setSource(source);
                nb.activeCellIndex = index;
                nb.mode = 'command';
                nb.node.focus();
            }""",
            [index, source],
        )
        self.page.keyboard.press("Shift+Enter")

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


def _watch_console(lab_page: LabPage) -> LabPage:
    def on_console(message: ConsoleMessage) -> None:
        lab_page.console.append(f"{message.type}: {message.text}")

    lab_page.page.on("console", on_console)
    return lab_page


@contextlib.contextmanager
def _browser_page(
    browser: Browser, server: LabServer, request: pytest.FixtureRequest
) -> Iterator[LabPage]:
    """A fresh browser context on ``server``; a failing test leaves a screenshot and log tail."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    lab_page = _watch_console(LabPage(page=page, server=server))
    try:
        yield lab_page
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            # The page may be gone; the failure itself is what matters.
            for index, tab in enumerate([lab_page, *lab_page.tabs]):
                with contextlib.suppress(Exception):
                    tab.screenshot(
                        f"FAILED-{request.node.name}" + (f"-tab{index}" if index else "")
                    )
                print(f"---- browser console (tab {index}) ----\n" + "\n".join(tab.console))
            print("---- server log (tail) ----\n" + server.log_tail())
        context.close()
        server.shutdown_kernels()


@pytest.fixture
def lab(
    browser: Browser, lab_server: LabServer, request: pytest.FixtureRequest
) -> Iterator[LabPage]:
    """A page in a fresh browser context on the JupyterLab server."""
    with _browser_page(browser, lab_server, request) as lab_page:
        yield lab_page


@pytest.fixture
def nb7(
    browser: Browser, notebook7_server: LabServer, request: pytest.FixtureRequest
) -> Iterator[LabPage]:
    """A page in a fresh browser context on the Notebook 7 server."""
    with _browser_page(browser, notebook7_server, request) as lab_page:
        yield lab_page


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report
