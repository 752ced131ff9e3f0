"""An SMTP server on loopback (aiosmtpd) that keeps every message it receives."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.servers.ports import LOOPBACK, free_port
from tests.servers.tls import SelfSignedCert


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes  # the raw message as sent (after DATA)
    used_tls: bool


class _Recorder:
    """aiosmtpd handler: store and accept."""

    def __init__(self, server: SmtpServer) -> None:
        self._server = server

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        mail = ReceivedMail(str(envelope.mail_from), [str(rcpt) for rcpt in envelope.rcpt_tos],
                            bytes(content), session.ssl is not None)
        self._server._add(mail)
        return "250 Message accepted for delivery"


class SmtpServer:
    """aiosmtpd Controller on a free 127.0.0.1 port; STARTTLS offered when given a certificate."""

    def __init__(self, cert: SelfSignedCert | None = None, *, require_starttls: bool = False) -> None:
        self.host = LOOPBACK
        self.port = free_port()
        self.cert = cert
        self._cond = threading.Condition()
        self._messages: list[ReceivedMail] = []
        tls_args: dict[str, Any] = {}
        if cert is not None:
            tls_args = {"tls_context": cert.server_context(), "require_starttls": require_starttls}
        self._controller = Controller(_Recorder(self), hostname=LOOPBACK, port=self.port, **tls_args)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def messages(self) -> list[ReceivedMail]:
        with self._cond:
            return list(self._messages)

    def wait_for(self, count: int = 1, timeout: float = 5.0) -> list[ReceivedMail]:
        """Block until at least `count` messages arrived; returns them all."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._messages) >= count, timeout=timeout):
                raise TimeoutError(f"{len(self._messages)} messages received, wanted {count} within {timeout}s")
            return list(self._messages)

    def reset(self) -> None:
        with self._cond:
            self._messages.clear()

    def _add(self, mail: ReceivedMail) -> None:
        with self._cond:
            self._messages.append(mail)
            self._cond.notify_all()
