"""`rapport nlp correct`: a person's fix lands on the message, its conversation and the training data."""

from __future__ import annotations

from sqlmodel import Session, select
from typer.testing import CliRunner

from rapport.cli.main import app
from store.corrections import training_corrections
from store.db import make_engine, session_scope
from store.models import Conversation, Correction, Message


def test_correct_updates_the_message_and_keeps_training_data(database: str) -> None:
    engine = make_engine(database)
    with session_scope(engine) as session:
        conversation = Conversation(subject="Where is my parcel?", category="billing")
        session.add(conversation)
        session.flush()
        session.add(Message(conversation_id=conversation.id, message_id="<m1@x>", subject="Where is my parcel?",
                            new_text="It has not arrived.", category="billing"))
    result = CliRunner().invoke(app, ["nlp", "correct", "m1@x", "delivery"])
    assert result.exit_code == 0, result.output
    assert "billing -> delivery" in result.output
    with Session(engine) as session:
        message = session.exec(select(Message)).one()
        assert message.category == "delivery"
        assert session.exec(select(Conversation)).one().category == "delivery"
        assert session.exec(select(Correction)).one().old_category == "billing"
        assert training_corrections(session) == [("Where is my parcel?\n\nIt has not arrived.", "delivery")]


def test_correct_refuses_unknown_messages_and_categories(database: str) -> None:
    result = CliRunner().invoke(app, ["nlp", "correct", "<nope@x>", "delivery"])
    assert result.exit_code != 0 and "no message" in str(result.exception or result.output)
    result = CliRunner().invoke(app, ["nlp", "correct", "1", "juggling"])
    assert result.exit_code != 0 and "unknown category" in str(result.exception or result.output)


def test_retrain_without_corrections_says_what_to_do(database: str) -> None:
    result = CliRunner().invoke(app, ["nlp", "retrain"])
    assert result.exit_code != 0 and "no corrections yet" in str(result.exception or result.output)
