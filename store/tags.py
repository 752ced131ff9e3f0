"""The IMAP keywords Rapport puts on mail, so staff see owner and category in their mail client.

Dovecot (and most servers) accept `/ . - @` in keyword atoms; we keep to
lower-case `[a-z0-9._/-]` so every server takes them.
"""

from __future__ import annotations

import re

from store.models import Conversation, Rep

_KEYWORD_UNSAFE = re.compile(r"[^a-z0-9._/-]+")


def keyword(prefix: str, *parts: str) -> str:
    """An IMAP keyword atom such as rapport/owner/alice (lower case; no spaces, brackets or wildcards)."""
    text = "/".join([prefix, *parts]).lower()
    return _KEYWORD_UNSAFE.sub("-", text).strip("-/")[:100]


def message_keywords(prefix: str, conversation: Conversation, owner: Rep | None, automatic: bool) -> list[str]:
    if automatic:
        return [keyword(prefix, "automatic")]
    words = []
    if owner is not None:
        words.append(keyword(prefix, "owner", owner.email.partition("@")[0]))
    elif conversation.queue:
        words.append(keyword(prefix, "queue", conversation.queue))
    if conversation.category:
        words.append(keyword(prefix, "category", conversation.category))
    return words


def owner_keyword(prefix: str, rep: Rep) -> str:
    return keyword(prefix, "owner", rep.email.partition("@")[0])
