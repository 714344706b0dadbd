"""A private PostgreSQL server on loopback for the tests: Debian's `postgresql` package (scripts/install.sh --test
installs it), a fresh cluster in a temporary folder, trust authentication on 127.0.0.1 only."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
from pathlib import Path


def binaries() -> Path | None:
    found = shutil.which("initdb") or next(
        iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)), None
    )
    return Path(found).parent if found else None


class PostgresServer:
    def __init__(self, root: Path):
        """`root`: a new folder the postgres user can reach (pytest's own temporary folders are private to root)."""
        bindir = binaries()
        if bindir is None:
            raise RuntimeError("PostgreSQL is not installed: `bash scripts/install.sh --test` installs it")
        self.bin, self.root = bindir, root
        self.data, self.sockets = root / "pgdata", root / "pgsock"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        root.mkdir(parents=True, exist_ok=True)
        self.sockets.mkdir()
        # PostgreSQL refuses to run as root: as root, the cluster belongs to the package's postgres user.
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(root, "postgres")
            shutil.chown(self.sockets, "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        self.start()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run(
            [*self.as_user, str(self.bin / tool), *args], capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed: {done.stderr.strip()[-1000:]}")

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.sockets} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "pg.log"), "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()
