"""Email delivery over SMTP with the standard library (smtplib, email).

A digest mail is multipart/alternative: a plain-text part, then a
multipart/related holding the HTML part and the chart it shows inline
(`<img src="cid:...">`), so every mail client shows something readable.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Literal, Protocol

Security = Literal["starttls", "ssl", "none"]
# CRLF line ends; a header (a subject of at most 70 characters) is never folded in the middle
POLICY = SMTP.clone(max_line_length=998)


class EmailError(RuntimeError):
    """Sending failed; the message names the server and what went wrong."""


@dataclass(frozen=True)
class SmtpOptions:
    """Where and how to send mail (from RAPPORT_SMTP_*; see rapport/settings.py)."""

    host: str
    port: int = 587
    security: Security = "starttls"
    user: str | None = None
    password: str | None = None
    from_addr: str = "rapport@localhost"
    ca_file: Path | None = None  # trust this CA (PEM) instead of the system's
    timeout: float = 30.0


def build_message(
    *,
    from_addr: str,
    to: str,
    subject: str,
    text: str,
    html: str,
    image: bytes | None = None,
    image_cid: str | None = None,
    automatic: bool = False,
    unsubscribe: str | None = None,
    message_id: str | None = None,
) -> EmailMessage:
    """A text + HTML mail; `image` (PNG) is attached inline under `image_cid`, which the
    HTML references as `cid:<image_cid>` (without angle brackets). `automatic` mail says so
    (`Auto-Submitted: auto-generated`, RFC 3834), so out-of-office replies leave it alone;
    `unsubscribe` (a mailto: or https: URI) becomes `List-Unsubscribe`; without `message_id`, a new one."""
    message = EmailMessage(policy=POLICY)
    message["From"] = from_addr
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))  # +0000: the time is known to be UTC
    message["Message-ID"] = message_id or make_msgid(domain=_domain(from_addr))
    if automatic:
        message["Auto-Submitted"] = "auto-generated"
        message["X-Auto-Response-Suppress"] = "All"  # Exchange and Outlook: no out-of-office replies
    if unsubscribe:
        message["List-Unsubscribe"] = f"<{unsubscribe}>"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    if image is not None:
        if not image_cid:
            raise ValueError("an inline image needs image_cid, the id the HTML refers to")
        html_part = message.get_body(preferencelist=("html",))
        if html_part is None:
            raise AssertionError("add_alternative always adds the HTML part")
        html_part.add_related(image, maintype="image", subtype="png", cid=f"<{image_cid}>",
                              filename="chart.png", disposition="inline")
    return message


def outbox_message_id(key: str, from_addr: str) -> str:
    """The Message-ID of an outbox row's mail: the same on every attempt, so a repeat is the same mail."""
    return f"<outbox.{hashlib.sha256(key.encode()).hexdigest()[:32]}@{_domain(from_addr)}>"


def _domain(address: str) -> str:
    return address.rpartition("@")[2].strip("> ") or "localhost"


def new_cid(domain: str = "rapport") -> str:
    """A fresh Content-ID (without angle brackets) for an inline part."""
    return make_msgid(idstring="chart", domain=domain)[1:-1]


def _tls_context(options: SmtpOptions) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(options.ca_file) if options.ca_file else None)


class SentFolder(Protocol):
    """The shared mailbox's Sent folder, as senders need it (inbox/sent.py over IMAP)."""

    def contains(self, message_id: str) -> bool: ...

    def append(self, raw: bytes, at: datetime) -> None: ...


# mailbox name (None: the default one) -> its Sent folder, or None when no mailbox is configured
OpenSent = Callable[[str | None], AbstractContextManager[SentFolder | None]]


def send_once(options: SmtpOptions, message: EmailMessage, sent: SentFolder | None, at: datetime) -> bool:
    """Send a mail to a customer exactly once: SMTP gives no receipt, so a copy in the shared
    mailbox's Sent folder is the record. A retry after a crash finds its Message-ID there and
    sends nothing (returns False). Without a Sent folder: at least once."""
    if sent is not None and sent.contains(str(message["Message-ID"])):
        return False
    send_message(options, message)
    if sent is not None:
        sent.append(message.as_bytes(), at)
    return True


def send_message(options: SmtpOptions, message: EmailMessage) -> None:
    """Send `message` to its To recipients; raises EmailError with a readable reason."""
    try:
        if options.security == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(options.host, options.port, timeout=options.timeout,
                                                    context=_tls_context(options))
        else:
            client = smtplib.SMTP(options.host, options.port, timeout=options.timeout)
        with client:
            if options.security == "starttls":
                client.starttls(context=_tls_context(options))
            if options.user:
                client.login(options.user, options.password or "")
            client.send_message(message)
    except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
        raise EmailError(f"cannot send mail via {options.host}:{options.port} "
                         f"({options.security}): {exc}") from exc


__all__ = ["EmailError", "SmtpOptions", "build_message", "new_cid", "outbox_message_id", "send_message"]
