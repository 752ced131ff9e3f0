"""`[nlp] model` names a pipeline this machine cannot read (installed on the server only): Slack
works, but Recategorise, which needs the model's categories, is not offered and is refused."""

from __future__ import annotations

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


@pytest.fixture
def config() -> AppConfig:
    return AppConfig(reps=REPS, nlp=NlpConfig(model="no_such_pipeline"))


def test_regression_serve_starts_and_refuses_recategorise_when_the_model_cannot_be_read_here(
    service: Service, engine: Engine, fake_slack: FakeSlack, interact: Any
) -> None:
    conversation_id, _ = add_assigned_email(
        engine, owner_email="dave@nordlys.example", contact_id=None, subject="Kettle broken",
        text="The kettle broke after three weeks.", category="refund", language="en")
    assert service.scheduler is not None and service.scheduler.tick(START).delivered == 1
    actions = [element["action_id"] for block in fake_slack.messages(DAVE_DM)[-1]["blocks"]
               if block["type"] == "actions" for element in block["elements"]]
    assert "conv_claim" in actions and "conv_recategorise" not in actions

    press_recategorise(interact, fake_slack, DAVE_DM, DAVE, f"{conversation_id}:billing")  # e.g. an older DM
    fake_slack.wait_for("chat.postMessage", 2)
    assert fake_slack.messages(DAVE_DM)[-1]["text"] == (
        "Recategorising is off here: this machine cannot read the model `[nlp] model` names, "
        "so its categories are unknown.")
    with Session(engine) as session:
        conversation = session.get(Conversation, conversation_id)
        assert conversation is not None and conversation.category == "refund"
        assert session.exec(select(Correction)).all() == []
