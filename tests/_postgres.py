"""A throwaway PostgreSQL cluster for the tests: ``initdb`` into a temporary directory, ``pg_ctl
start`` on a free loopback port (and a unix socket in the same directory), one database, a password
for TCP connections (scram-sha-256, so a DSN's password is really used), stopped and deleted at the
end. No system service is touched.

PostgreSQL refuses to run as root, so under root the server programs run as the ``postgres`` user
(``runuser``), and the cluster's directory is handed to that user. Where the programs are missing
the tests skip, saying so, except under ``CI``, where they must run (``.ci/run`` installs Debian's
``postgresql``).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

PASSWORD = "pg-Secret-7f3a9c"  # a value a test looks for in describe() and the records
USER = "rlm"
DATABASE = "rlm_test"
_PROGRAMS = ("initdb", "pg_ctl", "createdb")


def bindir() -> Path | None:
    """A directory with ``initdb``, ``pg_ctl`` and ``createdb``: Debian's newest
    /usr/lib/postgresql/<n>/bin, else the one on PATH."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[4]))
    found = shutil.which("pg_ctl")
    for where in [*reversed(candidates), *([str(Path(found).parent)] if found else [])]:
        if all((Path(where) / name).exists() for name in _PROGRAMS):
            return Path(where)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A running cluster: ``dsn`` (TCP, with the password) and ``socket_dir`` for local use."""

    root: Path
    port: int
    bindir: Path
    run_as: str | None
    durable: bool = False  # True: fsync and full-page writes as a real server has them (benchmarks)

    @property
    def dsn(self) -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
        return done

    def start(self) -> None:
        data = self.root / "data"
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        self._run(
            "initdb",
            "-D",
            str(data),
            "-U",
            USER,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C",
            *([] if self.durable else ["--no-sync"]),
        )
        self._chown()
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=40"
        )
        if not self.durable:  # a test's data may be lost in a crash: it is deleted anyway
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(
            "pg_ctl", "-D", str(data), "-l", str(self.root / "log"), "-o", options, "-w", "start"
        )
        self._run("createdb", "-h", str(self.root), "-p", str(self.port), "-U", USER, DATABASE)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def _chown(self) -> None:
        if not self.run_as:
            return
        user = pwd.getpwnam(self.run_as)
        for path in [self.root, *self.root.rglob("*")]:
            os.chown(path, user.pw_uid, user.pw_gid)


def start_server(*, durable: bool = False) -> Server | str:
    """A started cluster, or why none can be started here."""
    import importlib.util

    if importlib.util.find_spec("psycopg") is None:
        return "psycopg is not installed: pip install -e '.[postgres]'"
    where = bindir()
    if where is None:
        return "PostgreSQL's server programs (initdb, pg_ctl) are not installed: apt-get install postgresql"
    run_as = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run the server as"
        run_as = "postgres"
    root = Path(tempfile.mkdtemp(prefix="rlm-pg-"))
    server = Server(root, free_port(), where, run_as, durable)
    if run_as:
        server._chown()
    try:
        server.start()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as error:
        log = root / "log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        server.stop()
        raise RuntimeError(
            f"the test PostgreSQL did not start: {error}\nits log ends:\n{tail}"
        ) from None
    return server
