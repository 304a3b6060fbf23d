"""A private PostgreSQL cluster in a namespace, holding Kea's schema: for the sandbox and tests.

Kea keeps host reservations (and here its leases) in PostgreSQL. The sandbox,
the Kea integration tests and the Kea benchmark each start their own cluster:
``initdb`` into a fresh temporary folder, ``pg_ctl`` to start it inside the
server namespace on 127.0.0.1, a role and a database for Kea, and Kea's own
schema made by ``kea-admin db-init pgsql``. PostgreSQL refuses to run as root,
so the cluster runs as the ``postgres`` system user (from the Debian package);
the folder is made for it and removed at the end. The binaries are found by
glob, so Debian 12 (PostgreSQL 15) and Debian 13 (PostgreSQL 17) both work.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import tempfile
from pathlib import Path

from reconciler.sandbox.netns import MissingTool, run_in

PG_USER = "postgres"  # the system user the Debian package creates


def pg_bindir() -> Path:
    """The newest installed ``/usr/lib/postgresql/<version>/bin`` that has initdb and pg_ctl."""
    found = sorted(
        (Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not found or not (found[-1] / "pg_ctl").exists():
        raise MissingTool("PostgreSQL is not installed (run scripts/setup.sh as root)")
    return found[-1]


class PostgresCluster:
    """One cluster, one database for Kea with Kea's schema, reachable on 127.0.0.1:``port``."""

    def __init__(
        self, *, namespace: str, port: int = 5432, database: str = "kea", user: str = "kea"
    ) -> None:
        self.namespace = namespace
        self.port = port
        self.database = database
        self.user = user
        self.password = secrets.token_hex(12)
        self.bindir = pg_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="reconciler-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        try:
            account = pwd.getpwnam(PG_USER)
        except KeyError:
            shutil.rmtree(self.root, ignore_errors=True)
            raise MissingTool(f"the {PG_USER!r} user does not exist (install postgresql)") from None
        os.chown(self.root, account.pw_uid, account.pw_gid)
        self.root.chmod(0o700)

    def write_password_file(self, path: Path) -> Path:
        """The role's password in a file (mode 600), as the kea targets read it."""
        path.write_text(self.password + "\n")
        path.chmod(0o600)
        return path

    def _as_postgres(self, argv: list[str], *, timeout: float = 60) -> str:
        result = run_in(
            self.namespace,
            ["runuser", "-u", PG_USER, "--", *argv],
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{Path(argv[0]).name} failed (exit {result.returncode}): "
                f"{(result.stdout + result.stderr).strip()[-2000:]}"
            )
        return result.stdout

    def _pg_ctl(self, action: str, *, timeout: float = 60) -> None:
        options = f"-k {self.root} -p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres(
            [
                str(self.bindir / "pg_ctl"),
                action,
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-w",
                "-t",
                str(int(timeout)),
                "-m",
                "fast",
                "-o",
                options,
            ],
            timeout=timeout + 10,
        )

    def psql(self, sql: str, *, database: str = "postgres") -> str:
        """Run SQL as the superuser over the cluster's Unix socket."""
        return self._as_postgres(
            [
                str(self.bindir / "psql"),
                "-h",
                str(self.root),
                "-p",
                str(self.port),
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-qAt",
                "-c",
                sql,
            ]
        )

    def start(self) -> None:
        """initdb (first time), start, and make the role, database and Kea schema."""
        fresh = not self.data.exists()
        if fresh:
            self._as_postgres(
                [
                    str(self.bindir / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    PG_USER,
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--no-instructions",
                ]
            )
        self._pg_ctl("start")
        if fresh:
            self.psql(f"CREATE ROLE {self.user} LOGIN PASSWORD '{self.password}'")
            self.psql(f"CREATE DATABASE {self.database} OWNER {self.user}")
            self.kea_schema()

    def kea_schema(self) -> None:
        """Kea's own tables, exactly as an administrator makes them."""
        result = run_in(
            self.namespace,
            [
                "kea-admin",
                "db-init",
                "pgsql",
                "-u",
                self.user,
                "-p",
                self.password,
                "-n",
                self.database,
                "-h",
                "127.0.0.1",
                "-P",
                str(self.port),
            ],
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"kea-admin db-init failed: {result.stdout}{result.stderr}")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._pg_ctl("stop")

    def restart(self) -> None:
        """A fast restart: every client connection is cut, as a database failover does."""
        self._pg_ctl("restart")

    def close(self) -> None:
        """Stop the cluster and remove its folder."""
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
