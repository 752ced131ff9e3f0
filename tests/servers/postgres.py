"""PostgreSQL for tests: the machine's server, or a private throw-away cluster.

Each test gets its own schema (search_path in the URL), so tests never see each
other's tables and no database has to be created per test.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from tests.servers.ports import LOOPBACK, free_port

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DATABASE = "test"
SUPERUSER = "postgres"
# initdb refuses to run as root; these own the private cluster when we are root
CLUSTER_OWNERS = ("postgres", "nobody")


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL could be reached or started; the message says why."""


def connect(url: str, *, autocommit: bool = True) -> psycopg.Connection:
    """A psycopg connection for a SQLAlchemy-style URL (postgresql+psycopg://...)."""
    parsed = make_url(url)
    options = parsed.query.get("options")
    return psycopg.connect(
        host=parsed.host, port=parsed.port, user=parsed.username, password=parsed.password,
        dbname=parsed.database, connect_timeout=3, autocommit=autocommit,
        options=options if isinstance(options, str) else None,
    )


def is_reachable(url: str) -> bool:
    try:
        with connect(url) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return False
    return True


def find_bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin with initdb, if PostgreSQL is installed."""
    candidates = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if not candidates:
        return None
    newest = max(candidates, key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0)
    return Path(newest).parent


def create_schema(url: str) -> tuple[str, str]:
    """Create an empty schema t_<random>; returns (schema, a URL whose search_path is that schema)."""
    schema = f"t_{secrets.token_hex(6)}"
    with connect(url) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    return schema, scoped.render_as_string(hide_password=False)


def drop_schema(url: str, schema: str) -> None:
    with connect(url) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


class PrivateCluster:
    """initdb + pg_ctl in a temporary directory, trust auth, on a free loopback port."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.directory = Path(tempfile.mkdtemp(prefix="rapport-pg-"))
        self.data_dir = self.directory / "data"
        self.port = 0
        self._owner = self._pick_owner()

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@{LOOPBACK}:{self.port}/{DATABASE}"

    def start(self) -> None:
        atexit.register(self.stop)  # also stop it if the test process exits without fixture teardown
        self._give_directory_to_owner()
        self._as_owner("initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust",
                       "--encoding=UTF8", "--no-sync")
        self.port = free_port()
        options = f"-c listen_addresses={LOOPBACK} -p {self.port} -k {self.directory} -c fsync=off"
        self._as_owner("pg_ctl", "-D", str(self.data_dir), "-l", str(self.directory / "server.log"),
                       "-o", options, "-w", "-t", "60", "start")
        with connect(self.url.rsplit("/", 1)[0] + "/postgres") as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))

    def stop(self) -> None:
        if self.data_dir.exists():
            self._as_owner("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.directory, ignore_errors=True)

    def _pick_owner(self) -> str | None:
        if os.geteuid() != 0:
            return None
        for name in CLUSTER_OWNERS:
            try:
                pwd.getpwnam(name)
            except KeyError:
                continue
            return name
        raise PostgresUnavailable(f"running as root and none of the users {CLUSTER_OWNERS} exists for initdb")

    def _give_directory_to_owner(self) -> None:
        if self._owner is not None:
            entry = pwd.getpwnam(self._owner)
            os.chown(self.directory, entry.pw_uid, entry.pw_gid)

    def _as_owner(self, program: str, *args: str, check: bool = True) -> None:
        argv = [str(self.bin_dir / program), *args]
        result = subprocess.run(argv, user=self._owner, capture_output=True, text=True, timeout=120,
                                cwd=self.directory)
        if check and result.returncode != 0:
            raise PostgresUnavailable(f"{program} failed: {result.stderr.strip() or result.stdout.strip()}")
