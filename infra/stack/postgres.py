"""PostgreSQL 15 from Debian's packages, in its own data directory and port.

``initdb``, ``pg_ctl`` and ``postgres`` refuse to run as root, so they run as the package's
``postgres`` user. That user must reach the data directory under ``settings.data_dir`` (by default
below /root, mode 700): we add the search bit (o+x, traverse only, no listing) to each ancestor
that lacks it, and hand the data, socket and log paths to ``postgres``.
"""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

from infra.settings import Settings
from infra.stack.base import Service
from infra.stack.process import (
    StackError,
    error_with_log,
    pid_alive,
    run_logged,
    tcp_open,
    wait_until,
)

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_OS_USER = "postgres"
PG_SUPERUSER = "postgres"


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Postgres(Service):
    """PostgreSQL 15 on ``settings.pg_host:pg_port`` with the app role and database."""

    name = "postgres"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.data = settings.data_dir / "postgres"
        self.socket_dir = settings.run_dir / "postgres"

    def endpoint(self) -> str:
        s = self.settings
        return f"postgresql://{s.pg_user}@{s.pg_host}:{s.pg_port}/{s.pg_database}"

    def apt_packages(self) -> dict[str, str]:
        return {str(PG_BIN / "initdb"): "postgresql-15"}

    def install(self) -> None:
        """Nothing to build: the Debian package (apt_packages) carries the binaries."""
        if not (PG_BIN / "pg_ctl").exists():
            raise StackError(f"postgres: {PG_BIN}/pg_ctl missing after installing postgresql-15")

    # -- filesystem ------------------------------------------------------------------------

    def _owner(self) -> tuple[int, int]:
        try:
            entry = pwd.getpwnam(PG_OS_USER)
        except KeyError as exc:
            raise StackError(
                f"postgres: no `{PG_OS_USER}` OS user (the postgresql-15 package creates it)"
            ) from exc
        return entry.pw_uid, entry.pw_gid

    def _prepare_paths(self) -> None:
        """Make data, socket dir and log reachable and owned by the postgres OS user."""
        uid, gid = self._owner()
        for path in (self.data, self.socket_dir):
            path.mkdir(parents=True, exist_ok=True)
            os.chown(path, uid, gid)
            path.chmod(0o700)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.log.touch(exist_ok=True)
        os.chown(self.log, uid, gid)
        for path in (self.data, self.socket_dir, self.log):
            for parent in path.parents:
                mode = parent.stat().st_mode
                if not mode & stat.S_IXOTH:
                    parent.chmod(mode | stat.S_IXOTH)

    def _as_postgres(self, argv: list[str], what: str, timeout: float = 120.0) -> None:
        run_logged(
            ["runuser", "-u", PG_OS_USER, "--", *argv],
            log=self.settings.run_dir / "logs" / "postgres-ctl.log",
            what=what,
            timeout=timeout,
        )

    # -- run -------------------------------------------------------------------------------

    def _pid(self) -> int | None:
        try:
            pid = int((self.data / "postmaster.pid").read_text().splitlines()[0])
        except (FileNotFoundError, ValueError, IndexError, PermissionError):
            return None
        return pid if pid_alive(pid) else None

    def is_running(self) -> bool:
        return self._pid() is not None

    def start(self) -> None:
        if self.is_running():
            return
        if tcp_open(self.settings.pg_host, self.settings.pg_port):
            raise StackError(
                f"postgres: port {self.settings.pg_port} is taken by a server that is not ours"
            )
        self._prepare_paths()
        if not (self.data / "PG_VERSION").exists():
            self._as_postgres(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    PG_SUPERUSER,
                    "-E",
                    "UTF8",
                    "--locale=C",
                    # Local socket (in a 0700 dir of the run dir) is trusted for provisioning;
                    # TCP needs the app role's password.
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                ],
                what="initdb",
            )
        options = (
            f"-c listen_addresses={self.settings.pg_host} -p {self.settings.pg_port} "
            f"-k {self.socket_dir}"
        )
        try:
            self._as_postgres(
                [
                    str(PG_BIN / "pg_ctl"),
                    "start",
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.log),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                ],
                what="pg_ctl start",
            )
        except StackError as exc:
            raise error_with_log(f"postgres failed to start: {exc}", self.log) from exc

    def _server_ready(self) -> tuple[bool, str]:
        try:
            import psycopg

            with psycopg.connect(
                host=str(self.socket_dir),
                port=self.settings.pg_port,
                user=PG_SUPERUSER,
                dbname="postgres",
                connect_timeout=3,
            ) as conn:
                version = conn.execute("SHOW server_version").fetchone()
        except Exception as exc:  # psycopg.Error or OSError: the server is not ready yet
            return False, f"server not accepting connections: {exc}".strip()
        return True, f"PostgreSQL {version[0] if version else '?'}"

    def health(self) -> tuple[bool, str]:
        """Healthy when the app role logs in over TCP to its database (what clients do)."""
        try:
            import psycopg

            with psycopg.connect(self.settings.pg_dsn, connect_timeout=3) as conn:
                version = conn.execute("SHOW server_version").fetchone()
        except Exception as exc:  # psycopg.Error or OSError
            return False, f"cannot log in as {self.settings.pg_user}: {exc}".strip()
        return True, f"PostgreSQL {version[0] if version else '?'}, db {self.settings.pg_database}"

    def _may_end_backends(self) -> bool:
        """Whether the app role is in pg_signal_backend (granted by provisioning since it was
        found missing: a stack provisioned before then gets it on its next ``stack up``)."""
        import psycopg

        try:
            with psycopg.connect(self.settings.pg_dsn, connect_timeout=3) as conn:
                row = conn.execute(
                    "SELECT pg_has_role(current_user, 'pg_signal_backend', 'MEMBER')"
                ).fetchone()
        except psycopg.Error:
            return False
        return bool(row and row[0])

    def wait_healthy(self, timeout: float) -> None:
        wait_until(
            self.name, self._server_ready, timeout=timeout, log=self.log, alive=self.is_running
        )

    def provision(self) -> str:
        """Create (or re-password) the app role and its database; idempotent."""
        import psycopg

        s = self.settings
        if self.health()[0] and self._may_end_backends():
            return "role and database present"
        done = []
        try:
            with psycopg.connect(
                host=str(self.socket_dir),
                port=s.pg_port,
                user=PG_SUPERUSER,
                dbname="postgres",
                autocommit=True,
                connect_timeout=5,
            ) as conn:
                role = _quote_ident(s.pg_user)
                exists = conn.execute(
                    "SELECT 1 FROM pg_roles WHERE rolname = %s", (s.pg_user,)
                ).fetchone()
                verb = "ALTER" if exists else "CREATE"
                # Utility statements take no bind parameters: quote the password as a literal.
                password = s.pg_password.replace("'", "''")
                conn.execute(f"{verb} ROLE {role} LOGIN PASSWORD '{password}'")
                if not exists:
                    done.append(f"created role {s.pg_user}")
                # DROP DATABASE ... WITH (FORCE) (a namespace dropped after a test session) must
                # end every backend on that database, an autovacuum worker's too: only members of
                # pg_signal_backend may, and without it the drop fails at random.
                conn.execute(f"GRANT pg_signal_backend TO {role}")
                has_db = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (s.pg_database,)
                ).fetchone()
                if not has_db:
                    conn.execute(f"CREATE DATABASE {_quote_ident(s.pg_database)} OWNER {role}")
                    done.append(f"created database {s.pg_database}")
        except psycopg.Error as exc:
            raise StackError(f"postgres: creating role/database failed: {exc}") from exc
        return ", ".join(done) or "role and database present"

    def stop(self) -> bool:
        if not self.is_running():
            return False
        self._as_postgres(
            [str(PG_BIN / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", "60"],
            what="pg_ctl stop",
        )
        return True

    def data_paths(self) -> list[Path]:
        return [self.data]
