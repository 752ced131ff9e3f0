"""A sync in a child process, for the kill -9 test.

python -m tests.inbox.sync_process DB_URL HOST PORT USER PASSWORD MODEL_CACHE_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

from inbox.imap import sync_mailbox
from inbox.options import IngestOptions, MailboxSpec
from nlp import load_classifier
from store.db import make_engine
from tests.inbox.helpers import NOW


def main(argv: list[str]) -> None:
    url, host, port, user, password, model_cache = argv
    spec = MailboxSpec(name=user, host=host, port=int(port), user=user, password=password, security="none",
                       sent_folder="Sent")
    options = IngestOptions(now=NOW, batch_size=10, own_addresses=(user,))
    classifier = load_classifier(None, cache_dir=Path(model_cache))
    classifier.classify(["warm-up: the language models load on first use"])
    print("syncing", flush=True)  # the parent kills at a random moment after this line
    sync_mailbox(make_engine(url), spec, options=options, classifier=classifier)


if __name__ == "__main__":
    main(sys.argv[1:])
