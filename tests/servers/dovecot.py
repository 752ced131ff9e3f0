"""A private Dovecot IMAP server for tests, driven through scripts/imap-server."""

from __future__ import annotations

import atexit
import os
import re
import shutil
import ssl
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType

from imapclient import IMAPClient

from tests.servers.ports import LOOPBACK, free_port

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "imap-server"
DEFAULT_PASSWORD = "secret"
DEFAULT_USERS = ("support@example.test",)
START_ATTEMPTS = 3  # a port picked free can be taken by someone else before Dovecot binds it
_APPENDUID = re.compile(rb"APPENDUID \d+ (\d+)")


class DovecotError(RuntimeError):
    """scripts/imap-server failed; the message carries its stderr."""


class DovecotServer:
    """One private Dovecot instance in its own directory, on free loopback ports.

    Mail and users survive stop()/start() and restart(); purge() deletes everything.
    """

    def __init__(
        self,
        directory: Path,
        *,
        tls: bool = False,
        users: Iterable[str] = DEFAULT_USERS,
        password: str = DEFAULT_PASSWORD,
    ) -> None:
        self.directory = directory
        self.tls = tls
        self.users = list(users)
        self.password = password
        self.host = LOOPBACK
        self.port = 0
        self.tls_port = 0
        self._cleanup_registered = False

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start on free ports (new ones on each start, as a real server move would need)."""
        if not self._cleanup_registered:
            # also stop it if the test process exits without running fixture teardown
            atexit.register(self.purge)
            self._cleanup_registered = True
        error: DovecotError | None = None
        for _ in range(START_ATTEMPTS):
            self.port, self.tls_port = free_port(), (free_port() if self.tls else 0)
            try:
                self._run("start")
                return
            except DovecotError as exc:
                error = exc
        assert error is not None
        raise error

    def stop(self) -> None:
        if self.port:
            self._run("stop")

    def restart(self) -> None:
        """Stop and start again on the same ports, keeping mail and users."""
        self._run("stop")
        self._run("start")

    def purge(self) -> None:
        """Stop and delete the directory with all mail."""
        if self.port and self.directory.exists():
            self._run("purge")
        shutil.rmtree(self.directory, ignore_errors=True)

    def is_running(self) -> bool:
        return self._run("status", check=False).returncode == 0

    def __enter__(self) -> DovecotServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.purge()

    # ------------------------------------------------------------ users and mail
    def add_user(self, user: str) -> None:
        """Add a mailbox user with the server's password; no restart (Dovecot re-reads the file)."""
        self._run("add-user", user)
        if user not in self.users:
            self.users.append(user)

    @property
    def ca_file(self) -> Path:
        """The self-signed certificate to trust (only with tls=True)."""
        return self.directory / "tls" / "cert.pem"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def client(self, user: str | None = None, *, ssl_mode: str = "plain") -> IMAPClient:
        """A logged-in IMAPClient; ssl_mode is "plain", "starttls" or "imaps" (the last two need tls)."""
        user = user or self.users[0]
        if ssl_mode == "imaps":
            client = IMAPClient(self.host, port=self.tls_port, ssl=True, ssl_context=self.ssl_context(),
                                timeout=15)
        else:
            client = IMAPClient(self.host, port=self.port, ssl=False, timeout=15)
            if ssl_mode == "starttls":
                client.starttls(self.ssl_context())
            elif ssl_mode != "plain":
                raise ValueError(f"ssl_mode must be plain, starttls or imaps, not {ssl_mode!r}")
        client.login(user, self.password)
        return client

    def append(
        self,
        folder: str,
        raw: bytes,
        flags: Sequence[str | bytes] = (),
        *,
        user: str | None = None,
        msg_time: datetime | None = None,
    ) -> int:
        """APPEND a raw message over IMAP (creating the folder if needed); returns its UID."""
        with self.client(user) as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            response = client.append(folder, raw, flags=tuple(flags), msg_time=msg_time)
            client.logout()
        match = _APPENDUID.search(response)
        if match is None:
            raise DovecotError(f"APPEND to {folder!r} gave no APPENDUID: {response!r}")
        return int(match.group(1))

    def doveadm(self, *args: str) -> str:
        """Run doveadm against this instance (e.g. "mailbox", "status", "-u", user, "messages", "INBOX")."""
        return self._run("doveadm", "--", *args).stdout

    # ------------------------------------------------------------ script
    def _run(self, command: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "IMAP_SERVER_USERS": " ".join(self.users),
            "IMAP_SERVER_PASSWORD": self.password,
        }
        argv = [str(SCRIPT), command, "--dir", str(self.directory), "--port", str(self.port)]
        if self.tls:
            argv += ["--tls", "--tls-port", str(self.tls_port)]
        result = subprocess.run([*argv, *args], env=env, capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise DovecotError(f"imap-server {command} failed ({result.returncode}): {result.stderr.strip()}")
        return result


def make_server_directory() -> Path:
    """A fresh directory Dovecot's unprivileged mail user can traverse (pytest's tmp dirs are 0700)."""
    directory = Path(tempfile.mkdtemp(prefix="rapport-dovecot-"))
    directory.chmod(0o755)
    return directory


@dataclass(frozen=True)
class ImapAccount:
    """One test's own mailbox on the shared Dovecot."""

    server: DovecotServer
    user: str
    password: str

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    def client(self, *, ssl_mode: str = "plain") -> IMAPClient:
        return self.server.client(self.user, ssl_mode=ssl_mode)

    def append(
        self, folder: str, raw: bytes, flags: Sequence[str | bytes] = (), *, msg_time: datetime | None = None
    ) -> int:
        return self.server.append(folder, raw, flags, user=self.user, msg_time=msg_time)
