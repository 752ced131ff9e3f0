"""A team's own model in Slack: a conversation's Recategorise offers and takes that model's categories."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from rapport.config import AppConfig, NlpConfig
from rapport.serve import Service
from store.models import Conversation, Correction
from tests.bot.conftest import DAVE, REPS, START, add_assigned_email
from tests.bot.test_recategorise import DAVE_DM, press_recategorise
from tests.servers.fake_slack import FakeSlack

OUR_CATEGORIES = ["returns_de", "warranty"]


@pytest.fixture
def config(our_model: Path) -> AppConfig:
    return AppConfig(reps=REPS, nlp=NlpConfig(model=str(our_model)))


def dm_to_dave(service: Service, engine: Engine) -> int:
    """A mail the team's model filed as returns_de, assigned to Dave, and its DM from the scheduler."""
    conversation_id, _ = add_assigned_email(
        engine, owner_email="dave@nordlys.example", contact_id=None, subject="Wasserkocher defekt",
        text="Der Wasserkocher ist nach drei Wochen kaputt.", category="returns_de", language="de")
    assert service.scheduler is not None and service.scheduler.tick(START).delivered == 1
    return conversation_id


def test_recategorise_offers_and_takes_the_team_model_s_categories(
    service: Service, engine: Engine, fake_slack: FakeSlack, interact: Any
) -> None:
    conversation_id = dm_to_dave(service, engine)
    [select_menu] = [element for block in fake_slack.messages(DAVE_DM)[-1]["blocks"] if block["type"] == "actions"
                     for element in block["elements"] if element["action_id"] == "conv_recategorise"]
    assert [option["text"]["text"] for option in select_menu["options"]] == OUR_CATEGORIES

    press_recategorise(interact, fake_slack, DAVE_DM, DAVE, f"{conversation_id}:warranty")
    fake_slack.wait_for("chat.update")
    status = json.dumps(fake_slack.messages(DAVE_DM)[-1]["blocks"], ensure_ascii=False)
    assert "Category changed from `returns_de` to `warranty` by Dave Support." in status
    with Session(engine) as session:
        conversation = session.get(Conversation, conversation_id)
        assert conversation is not None and conversation.category == "warranty"
        [correction] = session.exec(select(Correction)).all()
        assert (correction.old_category, correction.new_category) == ("returns_de", "warranty")


def test_a_category_the_team_model_does_not_give_is_refused_with_the_ones_it_does(
    service: Service, engine: Engine, fake_slack: FakeSlack, interact: Any
) -> None:
    conversation_id = dm_to_dave(service, engine)

    press_recategorise(interact, fake_slack, DAVE_DM, DAVE, f"{conversation_id}:billing")  # Rapport's own, not theirs
    fake_slack.wait_for("chat.postMessage", 2)
    refusal = fake_slack.messages(DAVE_DM)[-1]["text"]
    assert refusal == "Unknown category 'billing'; known categories: returns_de, warranty."
    with Session(engine) as session:
        conversation = session.get(Conversation, conversation_id)
        assert conversation is not None and conversation.category == "returns_de"
        assert session.exec(select(Correction)).all() == []
