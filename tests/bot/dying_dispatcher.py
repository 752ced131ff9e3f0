"""A dispatcher that posts a Slack DM and then hangs before marking its outbox row sent.

Run as `python -m tests.bot.dying_dispatcher DATABASE_URL SLACK_API_URL MARKER NOW_ISO`; the test
kills it with SIGKILL once MARKER exists (the DM was posted, the row not yet marked sent).
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path

from slack_sdk import WebClient

from bot.notify import SlackSender, dispatch_outbox
from store.db import make_engine


class HangingSender(SlackSender):
    def __init__(self, client: WebClient, marker: Path) -> None:
        super().__init__(client)
        self.marker = marker

    def _post_one(self, *args: object, **kwargs: object) -> str:
        ts = super()._post_one(*args, **kwargs)  # type: ignore[arg-type]
        self.marker.write_text(ts)
        time.sleep(600)  # killed here: after the side effect, before mark_sent
        return ts


def main() -> None:
    database_url, api_url, marker, now = sys.argv[1:5]
    client = WebClient(token="xoxb-test-token", base_url=api_url)
    dispatch_outbox(make_engine(database_url), HangingSender(client, Path(marker)), now=datetime.fromisoformat(now))


if __name__ == "__main__":
    main()
