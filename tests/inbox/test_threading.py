"""Threading by the References header alone (no In-Reply-To, a different subject)."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from inbox.options import IngestOptions
from store.models import Conversation, Message
from tests.inbox.helpers import CountingClassifier, add_rep, fixture_eml, mail
from tests.inbox.test_pipeline import ingest, rows


def test_a_reply_linked_only_by_references_joins_its_conversation(
    engine: Engine, options: IngestOptions, classifier: CountingClassifier
) -> None:
    add_rep(engine, "alice@shop.example")
    ingest(engine, [fixture_eml("question.eml")], options, classifier)
    reply = mail(subject="Another matter entirely", message_id="<q9@customer.example>",
                 references="<older@customer.example> <q1@customer.example>")
    ingest(engine, [reply], options, classifier)

    [conversation] = rows(engine, Conversation)
    assert {m.conversation_id for m in rows(engine, Message)} == {conversation.id}
