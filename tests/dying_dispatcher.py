"""The real outbox dispatcher, killed after a handler acted and before its row is marked.

    python -m tests.dying_dispatcher DATABASE_URL MARKER NOW_ISO slack SLACK_API_URL [SMTP_HOST SMTP_PORT]
    python -m tests.dying_dispatcher DATABASE_URL MARKER NOW_ISO imap HOST PORT USER PASSWORD
    python -m tests.dying_dispatcher DATABASE_URL MARKER NOW_ISO mail SMTP_HOST SMTP_PORT HOST PORT USER PASSWORD

`mail` is the mail to customers (replies and surveys, the mailbox's Sent folder on HOST).
Marking is replaced by writing MARKER and sleeping: the test kills the process with
SIGKILL once MARKER exists, so the side effect happened and the row is still leased.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from imapclient import IMAPClient
from slack_sdk import WebClient

import store.outbox
from bot.email import SmtpOptions
from bot.notify import SlackSender, outbox_handlers
from bot.reply import reply_handler
from bot.surveys import SurveyOptions, survey_mail_handler
from inbox.options import MailboxSpec
from inbox.sent import sent_folders
from inbox.tags import imap_handler
from store.db import make_engine
from store.validation import CATEGORIES

ROOT = Path(__file__).resolve().parents[1]


def run_until_acted(marker: Path, database_url: str, now: datetime, *args: object) -> None:
    """Start the dispatcher in a child process and SIGKILL it as soon as it acted."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.dying_dispatcher", database_url, str(marker), now.isoformat(),
         *map(str, args)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert child.poll() is None, "the dispatcher exited before acting"
            assert time.monotonic() < deadline, "the dispatcher never acted"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()


def main() -> None:
    database_url, marker, now_text, kind, *rest = sys.argv[1:]
    engine = make_engine(database_url)
    now = datetime.fromisoformat(now_text)

    def hang(*args: Any) -> int:
        Path(marker).write_text("acted")
        time.sleep(600)  # killed here: after the side effect, before the row is marked
        return 0

    store.outbox._mark = hang
    if kind == "slack":
        sender = SlackSender(WebClient(token="xoxb-test-token", base_url=rest[0]))
        smtp = SmtpOptions(host=rest[1], port=int(rest[2]), security="none") if len(rest) > 1 else None
        handlers = outbox_handlers(engine, sender, now=now, smtp=smtp, categories=CATEGORIES)
    elif kind == "mail":
        smtp_host, smtp_port, host, port, user, password = rest
        spec = MailboxSpec(name=user, host=host, port=int(port), user=user, password=password, security="none",
                           sent_folder="Sent")
        smtp, open_sent = SmtpOptions(host=smtp_host, port=int(smtp_port), security="none"), sent_folders([spec])
        handlers = [reply_handler(engine, smtp=smtp, open_sent=open_sent),
                    survey_mail_handler(engine, SurveyOptions(smtp=smtp, open_sent=open_sent))]
    else:
        host, port, user, password = rest
        client = IMAPClient(host, port=int(port), ssl=False)
        client.login(user, password)
        handlers = [imap_handler(engine, lambda name: client)]
    store.outbox.dispatch(engine, handlers, now=now)


if __name__ == "__main__":
    main()
