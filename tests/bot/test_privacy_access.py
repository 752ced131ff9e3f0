"""Roles on every action, the audit log, and `/crm privacy export|erase`, through signed requests
to the real Bolt app (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlmodel import Session, col, select

from rapport.serve import Service
from store.db import session_scope
from store.models import Activity, AuditEntry, Contact, Conversation, Message, OutboxItem
from tests.bot.conftest import ALICE, CAROL, DAVE, Seeded, add_assigned_email, rep_id
from tests.servers import slack_requests
from tests.servers.fake_slack import FakeSlack


@pytest.fixture
def database_url(db_url: str) -> str:
    return db_url


def audit(engine: Any) -> list[tuple[str, str, str, str | None, int | None]]:
    with Session(engine) as session:
        rows = session.exec(select(AuditEntry).order_by(col(AuditEntry.id))).all()
        return [(e.actor, e.action, e.outcome, e.target_kind, e.target_id) for e in rows]


def press(interact: Any, action_id: str, value: str, user: str, *, select_menu: bool = False) -> None:
    payload = slack_requests.block_action_payload(action_id, value, user_id=user, channel_id=f"D{user}")
    if select_menu:
        payload["actions"] = [{"type": "static_select", "action_id": action_id, "block_id": "conv",
                               "selected_option": {"value": value, "text": {}}, "action_ts": "1"}]
    status, _ = interact(payload)
    assert status == 200


def owner_of(engine: Any, conversation_id: int) -> int | None:
    with Session(engine) as session:
        conversation = session.get(Conversation, conversation_id)
        assert conversation is not None
        return conversation.owner_id


def test_crafted_claim_and_reassign_on_another_teams_conversation_are_refused_and_audited(
    service: Service, engine: Any, seeded: Seeded, fake_slack: FakeSlack, interact: Any
) -> None:
    alice, dave = rep_id(engine, "alice@nordlys.example"), rep_id(engine, "dave@nordlys.example")
    sales, _ = add_assigned_email(engine, owner_email="alice@nordlys.example", contact_id=seeded.jan,
                                  subject="Where is my order?", text="Still waiting.")
    support, _ = add_assigned_email(engine, owner_email="dave@nordlys.example", contact_id=seeded.john,
                                    subject="Login broken", text="Cannot log in.", from_email="john@smith.example",
                                    from_name="John Smith")
    # Dave (support) was never sent a button for Alice's conversation: he crafts one
    press(interact, "conv_claim", str(sales), DAVE)
    # Carol manages sales: not the support team's conversation, nor a hand-over to the support team
    press(interact, "conv_reassign", f"{support}:{alice}", CAROL, select_menu=True)
    press(interact, "conv_reassign", f"{sales}:{dave}", CAROL, select_menu=True)
    fake_slack.wait_for("chat.postMessage", 3)
    assert owner_of(engine, sales) == alice and owner_of(engine, support) == dave
    refusals = [c.params["text"] for c in fake_slack.calls("chat.postMessage")]
    assert refusals == ["That is not yours to see or change."] * 3
    assert audit(engine) == [
        ("dave@nordlys.example", "conversation.claim", "refused", "conversation", sales),
        ("carol@nordlys.example", "conversation.reassign", "refused", "conversation", support),
        ("carol@nordlys.example", "conversation.reassign", "refused", "rep", dave),
    ]
    # her own team's conversation to her own team's rep: allowed, and audited too
    bob = rep_id(engine, "bob@nordlys.example")
    press(interact, "conv_reassign", f"{sales}:{bob}", CAROL, select_menu=True)
    fake_slack.wait_for("chat.postMessage", 4)
    assert owner_of(engine, sales) == bob
    assert audit(engine)[-1] == ("carol@nordlys.example", "conversation.reassign", "ok", "conversation", sales)


def test_a_crafted_contact_in_a_form_is_refused_and_audited(
    service: Service, engine: Any, seeded: Seeded, interact: Any
) -> None:
    submission = {
        "type": "view_submission", "team": {"id": "T0TEST"}, "user": {"id": ALICE}, "trigger_id": "1.2.3",
        "view": {"id": "V9", "type": "modal", "callback_id": "log_call", "state": {"values": {
            "contact": {"contact_picker": {"type": "external_select",
                                           "selected_option": {"value": str(seeded.john), "text": {}}}},
            "notes": {"notes": {"type": "plain_text_input", "value": "Talked"}},
        }}},
    }
    status, body = interact(submission)
    assert status == 200 and json.loads(body)["response_action"] == "errors"
    assert audit(engine) == [("alice@nordlys.example", "activity.log_call", "refused", "contact", seeded.john)]


def test_privacy_export_and_erase_from_slack(
    service: Service, engine: Any, seeded: Seeded, fake_slack: FakeSlack, slash: Any, interact: Any
) -> None:
    add_assigned_email(engine, owner_email="alice@nordlys.example", contact_id=seeded.jan,
                       subject="Where is my order?", text="Still waiting for NS-480744.")
    _, answer = slash("privacy export jan.stastny@acme.example", user=ALICE)
    assert "Only a manager" in json.dumps(answer)
    _, card = slash("find jan.stastny@acme.example", user=ALICE)
    assert "Jan Šťastný" in json.dumps(card, ensure_ascii=False)
    assert audit(engine) == [("alice@nordlys.example", "card.view", "ok", "contact", seeded.jan)]

    def confirm(action: str) -> None:
        slash(f"privacy {action} jan.stastny@acme.example", user=CAROL)
        view = fake_slack.calls("views.open")[-1].params["view"]
        view = json.loads(view) if isinstance(view, str) else view
        assert view["callback_id"] == "privacy_confirm"
        status, _ = interact({"type": "view_submission", "team": {"id": "T0TEST"}, "user": {"id": CAROL},
                              "trigger_id": "1.2.3", "view": {**view, "id": "V1", "state": {"values": {}}}})
        assert status == 200

    confirm("export")
    with Session(engine) as session:
        row = session.exec(select(OutboxItem).where(OutboxItem.kind == "privacy-export")).one()
        assert "Šťastný" not in json.dumps(row.payload)  # built when sent: nothing personal waits in the outbox
    assert service.scheduler is not None
    service.scheduler.tick()
    [upload] = fake_slack.wait_for("files.completeUploadExternal")  # the JSON and the summary, in one share
    files = upload.params["files"]
    json_file, summary = (json.loads(files) if isinstance(files, str) else files)
    export = json.loads(fake_slack.uploaded(json_file["id"]))
    assert fake_slack.uploaded(summary["id"]).decode().startswith("What Rapport holds on Jan Šťastný")
    assert export["contact"]["name"] == "Jan Šťastný" and "NS-480744" in export["messages"][0]["text"]
    assert len(export["orders"]) == 2 and export["consents"][0]["purpose"] == "marketing"

    confirm("erase")
    fake_slack.wait_for("chat.postMessage", 2)
    with Session(engine) as session:
        assert session.get(Contact, seeded.jan) is None
        entries = session.exec(select(AuditEntry).order_by(col(AuditEntry.id))).all()
        assert [(e.actor, e.action, e.via, e.contact_id, e.target_id) for e in entries] == [
            ("alice@nordlys.example", "card.view", "slack", None, None),  # kept, with the person's hash only
            ("carol@nordlys.example", "privacy.export", "slack", None, None),
            ("carol@nordlys.example", "privacy.erase", "slack", None, None),
        ]
        assert len({e.person_hash for e in entries}) == 1 and entries[0].person_hash
        assert entries[1].origin and CAROL in entries[1].origin


def test_a_manager_cannot_erase_another_teams_contact(
    service: Service, engine: Any, seeded: Seeded, fake_slack: FakeSlack, slash: Any, interact: Any
) -> None:
    slash("privacy erase john@smith.example", user=CAROL)  # managers read every card: the modal opens
    view = fake_slack.calls("views.open")[-1].params["view"]
    view = json.loads(view) if isinstance(view, str) else view
    status, _ = interact({"type": "view_submission", "team": {"id": "T0TEST"}, "user": {"id": CAROL},
                          "trigger_id": "1.2.3", "view": {**view, "id": "V1", "state": {"values": {}}}})
    assert status == 200
    fake_slack.wait_for("chat.postMessage")
    with Session(engine) as session:
        assert session.get(Contact, seeded.john) is not None  # John belongs to Dave's support team
    assert audit(engine) == [("carol@nordlys.example", "privacy.confirm", "refused", "contact", seeded.john)]


def test_crafted_stage_change_and_reply_on_another_teams_records_are_refused_and_audited(
    service: Service, engine: Any, seeded: Seeded, fake_slack: FakeSlack, interact: Any
) -> None:
    """Carol manages sales: she reads the support team's records but may not change them. A stage
    menu and a "Send to customer" form crafted with their ids are refused before any listener."""
    support, _ = add_assigned_email(engine, owner_email="dave@nordlys.example", contact_id=seeded.john,
                                    subject="Login broken", text="Cannot log in.", from_email="john@smith.example",
                                    from_name="John Smith")
    press(interact, "contact_stage", f"{seeded.john}:stage:purchase", CAROL, select_menu=True)
    fake_slack.wait_for("chat.postMessage")
    reply = {"type": "view_submission", "team": {"id": "T0TEST"}, "user": {"id": CAROL}, "trigger_id": "1.2.3",
             "view": {"id": "V7", "type": "modal", "callback_id": "email_reply",
                      "private_metadata": json.dumps({"conversation_id": support, "answering": 1}),
                      "state": {"values": {"text": {"text": {"type": "plain_text_input", "value": "Fixed!"}}}}}}
    status, body = interact(reply)
    assert status == 200  # the form stays open, saying why
    assert json.loads(body) == {"response_action": "errors", "errors": {"text": "That is not yours to see or change."}}
    with Session(engine) as session:
        john = session.get(Contact, seeded.john)
        assert john is not None and john.stage == "need"
        assert session.exec(select(OutboxItem).where(OutboxItem.kind == "email-reply")).all() == []
        assert session.exec(select(Message).where(Message.direction == "outbound")).all() == []
    assert audit(engine) == [
        ("carol@nordlys.example", "contact.stage", "refused", "contact", seeded.john),
        ("carol@nordlys.example", "conversation.reply", "refused", "conversation", support),
    ]


def test_a_note_about_another_teams_company_is_refused_and_audited(
    service: Service, engine: Any, seeded: Seeded, interact: Any
) -> None:
    """The note form's "About" choice and company picker name a company: Acme is Alice's (sales)."""
    for values in ({"about": {"about": {"type": "radio_buttons", "selected_option": {"value": f"company:{seeded.acme}"}}}},
                   {"company": {"company_picker": {"type": "external_select",
                                                   "selected_option": {"value": str(seeded.acme), "text": {}}}}}):
        note = {"type": "view_submission", "team": {"id": "T0TEST"}, "user": {"id": DAVE}, "trigger_id": "1.2.3",
                "view": {"id": "V8", "type": "modal", "callback_id": "add_note", "state": {"values": {
                    **values, "note": {"note": {"type": "plain_text_input", "value": "Renewal talks"}}}}}}
        status, body = interact(note)
        field = next(iter(values))
        assert status == 200 and json.loads(body)["errors"] == {field: "That is not yours to see or change."}
    with Session(engine) as session:
        assert session.exec(select(Activity).where(Activity.company_id == seeded.acme,
                                                   Activity.kind == "note")).all() == []
    assert audit(engine) == [("dave@nordlys.example", "activity.note", "refused", "company", seeded.acme)] * 2


def test_a_manager_opens_another_teams_card_from_find_but_cannot_change_it(
    service: Service, engine: Any, seeded: Seeded, fake_slack: FakeSlack, interact: Any
) -> None:
    """"Open" only shows: managers read every team's cards (the reading rule), as `find` lists them."""
    press(interact, "contact_open", str(seeded.john), CAROL)
    opened = fake_slack.wait_for("views.open")[0]
    assert "John Smith" in json.dumps(opened.params["view"], ensure_ascii=False)
    assert audit(engine) == [("carol@nordlys.example", "card.view", "ok", "contact", seeded.john)]
    # the contact's owner is the company's when it has none of its own (the one owner rule)
    with session_scope(engine) as session:
        jan = session.get(Contact, seeded.jan)
        assert jan is not None
        jan.owner_id = None  # Acme stays Alice's: Jan is still hers, so Dave (support) may not move him
        session.add(jan)
    press(interact, "contact_stage", f"{seeded.jan}:stage:purchase", DAVE, select_menu=True)
    fake_slack.wait_for("chat.postMessage")
    assert audit(engine)[-1] == ("dave@nordlys.example", "contact.stage", "refused", "contact", seeded.jan)
