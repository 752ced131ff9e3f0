"""`rapport nlp correct`: a person's fix lands on the message, its conversation, the training data
and the audit log, and re-routes the conversation when routing gave it to the wrong rep; mail the
inbox never classifies (staff replies, automatic mail) is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from rapport.cli.common import runtime
from rapport.cli.main import app
from store.corrections import training_corrections
from store.db import make_engine, session_scope
from store.models import Assignment, Conversation, Correction, Direction, Message, Rep


def add_message(database: str, message_id: str, subject: str, text: str, category: str) -> Engine:
    """A classified mail in its conversation; returns the database's engine."""
    engine = make_engine(database)
    with session_scope(engine) as session:
        conversation = Conversation(subject=subject, category=category)
        session.add(conversation)
        session.flush()
        session.add(Message(conversation_id=conversation.id, message_id=message_id, subject=subject,
                            new_text=text, category=category))
    return engine


def test_correct_updates_the_message_and_keeps_training_data(database: str) -> None:
    engine = add_message(database, "<m1@x>", "Where is my parcel?", "It has not arrived.", "billing")
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


def test_correct_takes_the_categories_of_the_team_s_own_model_and_names_them_when_refusing(
    database: str, our_model: Path, tmp_path: Path
) -> None:
    (tmp_path / "rapport.toml").write_text(f'[nlp]\nmodel = "{our_model}"\n', encoding="utf-8")
    runtime.cache_clear()
    engine = add_message(database, "<k1@x>", "Wasserkocher kaputt", "Nach drei Wochen kaputt.", "returns_de")

    result = CliRunner().invoke(app, ["nlp", "correct", "k1@x", "warranty"])
    assert result.exit_code == 0, result.output
    assert "returns_de -> warranty" in result.output
    result = CliRunner().invoke(app, ["nlp", "correct", "k1@x", "delivery"])  # Rapport's own, not theirs
    assert result.exit_code != 0
    assert "unknown category 'delivery'; known categories: returns_de, warranty" in str(result.exception)
    with Session(engine) as session:
        assert session.exec(select(Message)).one().category == "warranty"


def test_retrain_without_corrections_says_what_to_do(database: str) -> None:
    result = CliRunner().invoke(app, ["nlp", "retrain"])
    assert result.exit_code != 0 and "no corrections yet" in str(result.exception or result.output)


def test_correct_reroutes_and_assign_explain_shows_why(database: str) -> None:
    engine = make_engine(database)
    always = "Mon-Sun 00:00-24:00"
    with session_scope(engine) as session:
        dora = Rep(name="Dora", email="dora@shop.example", role="support", skills=["feedback"], languages=["sv"],
                   working_hours=always)
        greta = Rep(name="Greta", email="greta@shop.example", skills=["sales"], languages=["de"],
                    working_hours=always)
        session.add_all([dora, greta])
        session.flush()
        conversation = Conversation(subject="Vorführung", category="feedback", language="de", owner_id=dora.id)
        session.add(conversation)
        session.flush()
        assert conversation.id is not None
        conversation_id = conversation.id
        session.add(Message(conversation_id=conversation.id, message_id="<demo@kunde.example>",
                            subject="Vorführung", new_text="Wir möchten eine Vorführung.", category="feedback",
                            language="de"))
        session.add(Assignment(conversation_id=conversation.id, owner_id=dora.id, rule="skill",
                               reason="Dora handles feedback"))

    result = CliRunner().invoke(app, ["nlp", "correct", "demo@kunde.example", "sales"])

    assert result.exit_code == 0, result.output
    assert "feedback -> sales" in result.output
    assert "re-routed to Greta: Greta handles sales and speaks de" in result.output
    result = CliRunner().invoke(app, ["assign", "explain", str(conversation_id), "--json"])
    assert result.exit_code == 0, result.output
    explained = json.loads(result.stdout)
    assert [(h["rule"], h["owner"]) for h in explained["history"]] == [
        ("skill", "dora@shop.example"), ("reroute", "greta@shop.example")]
    assert explained["history"][-1]["reason"].startswith("category corrected from feedback to sales by ")
    [winner] = explained["rules"]  # the re-route, with the reason it was stored with
    assert (winner["rule"], winner["owner"]) == ("reroute", "greta@shop.example")
    assert winner["reason"] == explained["history"][-1]["reason"]


def test_regression_correct_refuses_a_staff_reply_and_automatic_mail(database: str) -> None:
    """The inbox never classifies them, so there is no category to correct (the demo's
    `nlp correct 50 sales` re-filed a conversation by a rep's own reply)."""
    engine = add_message(database, "<ask@x>", "Where is my parcel?", "It has not arrived.", "delivery")
    with session_scope(engine) as session:
        session.add_all([
            Message(conversation_id=1, message_id="<reply@x>", subject="Re: Where is my parcel?",
                    new_text="It left today.", direction=Direction.outbound),
            Message(conversation_id=1, message_id="<list@x>", subject="Weekly news", new_text="Our news.",
                    is_automatic=True, automatic_reason="mailing list (List-Id: news.shop.example)"),
        ])

    reply = CliRunner().invoke(app, ["nlp", "correct", "reply@x", "sales"])
    listed = CliRunner().invoke(app, ["nlp", "correct", "list@x", "general"])

    assert reply.exit_code != 0 and listed.exit_code != 0
    assert "is a staff member's outbound reply" in str(reply.exception)
    assert "is automatic mail (mailing list (List-Id: news.shop.example))" in str(listed.exception)
    assert "Only inbound mail from people can be corrected" in str(listed.exception)
    with Session(engine) as session:
        assert session.exec(select(Conversation)).one().category == "delivery"
        assert session.exec(select(Correction)).all() == []


def test_regression_correct_is_in_the_audit_log(database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A correction changes a conversation and the training data: `rapport audit` shows who did it."""
    monkeypatch.setenv("USER", "olga")
    add_message(database, "<m1@x>", "Where is my parcel?", "It has not arrived.", "billing")

    assert CliRunner().invoke(app, ["nlp", "correct", "m1@x", "delivery"]).exit_code == 0
    result = CliRunner().invoke(app, ["audit", "--json"])

    assert result.exit_code == 0, result.output
    [entry] = json.loads(result.stdout)
    assert entry["actor"].startswith("cli:olga@")  # the OS user at this host, as every CLI entry
    assert (entry["via"], entry["action"], entry["target"]) == ("cli", "conversation.recategorise", "conversation 1")
    assert entry["detail"] == {"message_id": 1, "correction_id": 1, "old_category": "billing",
                               "new_category": "delivery", "new_owner_id": None}
