"""A throwaway PostgreSQL server, for the tests and the benchmark that share a sweep's studies through
one: the system's server binaries (Debian's ``postgresql``), a cluster initialised in a temporary folder
with password authentication, on a free loopback port, stopped and deleted at the end.

initdb refuses to run as root, so as root the cluster belongs to the ``postgres`` user (``runuser``);
any other user runs it as themselves."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

USER = "tunelab"
DATABASE = "sweeps"


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    password: str
    folder: Path  # the cluster's data, log and socket
    bin_dir: Path  # the server's programs

    def url(self, with_password: bool = False, database: str = DATABASE) -> str:
        """``postgresql://tunelab@127.0.0.1:PORT/sweeps``; with ``with_password`` the password written in."""
        secret = f":{self.password}" if with_password else ""
        return f"postgresql://{USER}{secret}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new, empty database on this server; its URL (without the password)."""
        _run([str(self.bin_dir / "createdb"), "-h", self.host, "-p", str(self.port), "-U", USER, name],
             env={**os.environ, "PGPASSWORD": self.password})
        return self.url(database=name)

    def dump(self, database: str = DATABASE) -> str:
        """Every row of a database as SQL (``pg_dump --data-only``): what the server keeps."""
        return subprocess.run([str(self.bin_dir / "pg_dump"), "--data-only", "-h", self.host, "-p", str(self.port),
                               "-U", USER, database], env={**os.environ, "PGPASSWORD": self.password},
                              capture_output=True, text=True, check=True).stdout


def binaries() -> Path | None:
    """The folder of ``initdb``, ``pg_ctl`` and ``postgres``: on PATH, else Debian's newest
    ``/usr/lib/postgresql/<version>/bin``; None without a server installed."""
    found = shutil.which("pg_ctl")
    if found and (Path(found).resolve().parent / "initdb").exists():
        return Path(found).resolve().parent
    folders = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name)
                     if p.parent.name.isdigit() else 0)
    return next((f for f in reversed(folders) if (f / "initdb").exists() and (f / "pg_ctl").exists()), None)


def missing_reason() -> str | None:
    """Why no throwaway server can start here, or None when one can."""
    if binaries() is None:
        return "no PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql"
    if os.geteuid() == 0 and (_owner() is None or shutil.which("runuser") is None):
        return "running as root without a 'postgres' user and runuser to own the cluster (initdb refuses root)"
    return None


@contextmanager
def throwaway_server() -> Iterator[Server]:
    """A fresh server with one database (``sweeps``) and one user (``tunelab``, a random password)."""
    bin_dir = binaries()
    assert bin_dir is not None, missing_reason()
    folder = Path(tempfile.mkdtemp(prefix="tunelab-pg-"))
    password = secrets.token_urlsafe(16)
    server = Server("127.0.0.1", _free_port(), password, folder, bin_dir)
    as_owner = _as_owner(folder)
    (folder / "password").write_text(password + "\n")
    _give(folder / "password")
    try:
        _run([*as_owner, str(bin_dir / "initdb"), "-D", str(folder / "data"), "-U", USER, "--auth=scram-sha-256",
              f"--pwfile={folder / 'password'}", "-E", "UTF8", "--no-sync"])
        options = f"-p {server.port} -k {folder} -c listen_addresses={server.host} -c fsync=off"
        _run([*as_owner, str(bin_dir / "pg_ctl"), "-D", str(folder / "data"), "-l", str(folder / "server.log"),
              "-w", "-o", options, "start"])
        try:
            server.create_database(DATABASE)
            yield server
        finally:
            _run([*as_owner, str(bin_dir / "pg_ctl"), "-D", str(folder / "data"), "-m", "immediate", "-w", "stop"])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _owner() -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        return None


def _as_owner(folder: Path) -> list[str]:
    """The command prefix that runs the server's tools as the cluster's owner: nothing unless root."""
    if os.geteuid() != 0:
        return []
    _give(folder)
    return ["runuser", "-u", "postgres", "--"]


def _give(path: Path) -> None:
    path.chmod(0o700 if path.is_dir() else 0o600)
    owner = _owner()
    if os.geteuid() == 0 and owner is not None:
        os.chown(path, owner.pw_uid, owner.pw_gid)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(command: list[str], env: dict[str, str] | None = None) -> None:
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd="/")
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])}… failed: {done.stderr.strip() or done.stdout.strip()}")
