"""The relationship moves and notes, driven through the real Bolt app with signed Slack requests:
the card's kind and stage menus, `/crm stage`, `/crm kind`, `/crm note`, the note modal and the
"Log to CRM" shortcut filing a message as a note on a company."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from sqlmodel import Session, col, select

from store.audit import audit_entries
from store.db import session_scope
from store.models import Activity, Contact, Order
from tests.bot.conftest import ALICE, SECRET, START, Seeded, all_text, rep_id
from tests.servers import slack_requests
from tests.servers.fake_slack import FakeSlack


def _view(call: Any) -> dict[str, Any]:
    view = call.params["view"]
    return json.loads(view) if isinstance(view, str) else view


def _moves(engine: Any, contact_id: int) -> list[Activity]:
    with Session(engine) as session:
        query = select(Activity).where(Activity.contact_id == contact_id, Activity.kind == "move")
        return list(session.exec(query.order_by(col(Activity.id))).all())


def _menu_choice(action_id: str, block_id: str, value: str, *, container: dict[str, Any] | None = None,
                 view: dict[str, Any] | None = None) -> dict[str, Any]:
    payload = slack_requests.block_action_payload(action_id, user_id=ALICE, block_id=block_id)
    payload["actions"] = [{"type": "static_select", "action_id": action_id, "block_id": block_id,
                           "selected_option": {"text": {"type": "plain_text", "text": value}, "value": value},
                           "action_ts": "1700000000.1"}]
    if container is not None:
        payload["container"] = container
        payload.pop("message", None)
    if view is not None:
        payload["view"] = view
    return payload


def test_stage_change_from_the_card_moves_the_contact_with_an_activity(
    slash: Any, interact: Any, seeded: Seeded, engine: Any, fake_slack: FakeSlack
) -> None:
    _, answer = slash("find stastny")
    menus = next(b for b in answer["blocks"] if b.get("block_id") == f"move:{seeded.jan}")
    stage_menu = next(e for e in menus["elements"] if e["action_id"] == "contact_stage")
    assert stage_menu["initial_option"]["value"] == f"{seeded.jan}:stage:evaluation"  # the card shows where Jan is
    purchase = next(o for o in stage_menu["options"] if o["value"].endswith(":purchase"))

    status, _ = interact(_menu_choice("contact_stage", f"move:{seeded.jan}", purchase["value"]))
    assert status == 200

    update = fake_slack.wait_for("chat.update")[0]
    text = all_text(update.params["blocks"])
    assert "Stage history" in text and "evaluation → purchase" in text and "by Alice Berg" in text
    with Session(engine) as session:
        jan = session.get(Contact, seeded.jan)
        assert jan is not None and (jan.kind, jan.stage) == ("customer", "purchase")
    [move] = _moves(engine, seeded.jan)
    assert (move.stage_from, move.stage_to, move.contact_kind_to) == ("evaluation", "purchase", None)
    assert move.rep_id == rep_id(engine, "alice@nordlys.example")
    assert move.summary == "changed on the contact card"
    assert move.occurred_at == START
    with Session(engine) as session:  # the audit log: who, from where, what changed (the card view too)
        entries = [e for e in audit_entries(session, contact_ids=[seeded.jan]) if e.action.startswith("contact.")]
    assert [(e.action, e.actor, e.via, e.origin, e.detail) for e in entries] == [
        ("contact.stage", "alice@nordlys.example", "slack", f"slack:{ALICE} in C0GENERAL",
         {"from": "evaluation", "to": "purchase"}),
    ]


def test_kind_change_in_the_card_modal_updates_the_modal(interact: Any, seeded: Seeded, engine: Any,
                                                          fake_slack: FakeSlack) -> None:
    payload = _menu_choice("contact_kind", f"move:{seeded.jan}", f"{seeded.jan}:kind:partner",
                           container={"type": "view", "view_id": "V0CARD"},
                           view={"id": "V0CARD", "type": "modal", "callback_id": "contact_card"})
    assert interact(payload)[0] == 200
    updated = fake_slack.wait_for("views.update")[0]
    assert updated.params["view_id"] == "V0CARD"
    assert "customer → partner" in all_text(_view(updated)["blocks"])
    [move] = _moves(engine, seeded.jan)
    assert (move.contact_kind_from, move.contact_kind_to, move.stage_to) == ("customer", "partner", None)


def test_a_forged_menu_value_for_a_hidden_contact_changes_nothing(interact: Any, seeded: Seeded, engine: Any,
                                                                   fake_slack: FakeSlack) -> None:
    # John belongs to Dave (support): Alice (sales) cannot see him, so cannot move him
    assert interact(_menu_choice("contact_stage", f"move:{seeded.john}", f"{seeded.john}:stage:purchase"))[0] == 200
    told = fake_slack.wait_for("chat.postEphemeral")[0]
    assert "not yours to see" in told.params["text"]
    assert _moves(engine, seeded.john) == []


def test_stage_and_kind_commands_record_who_when_and_why(slash: Any, seeded: Seeded, engine: Any) -> None:
    _, answer = slash("stage jan information search asked for the price list")
    assert "evaluation → information search" in all_text(answer["blocks"])
    _, answer = slash("kind jan partner")
    assert "customer → partner" in all_text(answer["blocks"])
    _, answer = slash("stage jan somewhere")
    assert "Usage" in answer["text"] and "post purchase" in all_text(answer["blocks"])
    _, answer = slash("stage jan information_search")
    assert "already at information search" in all_text(answer["blocks"])

    stage_move, kind_move = _moves(engine, seeded.jan)
    assert (stage_move.stage_from, stage_move.stage_to, stage_move.summary) == (
        "evaluation", "information_search", "asked for the price list")
    assert (kind_move.contact_kind_from, kind_move.contact_kind_to, kind_move.summary) == (
        "customer", "partner", "changed with /crm kind")

    _, answer = slash("find stastny")  # the card's history, newest first
    history = next(b["text"]["text"] for b in answer["blocks"]
                   if b.get("text", {}).get("text", "").startswith("*Stage history*"))
    assert history.index("customer → partner") < history.index("evaluation → information search")


def test_notes_on_a_company_and_a_contact_show_on_the_card_and_in_app_home(
    slash: Any, seeded: Seeded, engine: Any, events_url: str, fake_slack: FakeSlack
) -> None:
    _, answer = slash("note acme renewal talks <b>started</b>")
    assert "Note added to Acme Corporation" in answer["text"]
    _, answer = slash("note jan sent the offer")
    assert "Note added to Jan Šťastný" in answer["text"]
    with Session(engine) as session:
        on_company, on_jan = session.exec(select(Activity).order_by(col(Activity.id))).all()
    assert (on_company.kind, on_company.contact_id, on_company.company_id) == ("note", None, seeded.acme)
    assert (on_jan.kind, on_jan.contact_id, on_jan.company_id) == ("note", seeded.jan, seeded.acme)

    _, card = slash("find stastny")
    text = all_text(card["blocks"])
    assert "note on Acme Corporation" in text and "renewal talks &lt;b&gt;started&lt;/b&gt;" in text
    assert "sent the offer" in text

    home_opened = {"type": "app_home_opened", "user": ALICE, "channel": "D0ALICE", "tab": "home"}
    slack_requests.event(SECRET, slack_requests.event_payload(home_opened, event_id="EvNOTE")).post(events_url)
    home = _view(fake_slack.wait_for("views.publish")[-1])
    home_text = all_text(home["blocks"])
    assert "note on Acme Corporation" in home_text and "note on Jan Šťastný" in home_text


def test_note_modal_from_the_card_can_note_on_the_company(interact: Any, seeded: Seeded, engine: Any,
                                                          fake_slack: FakeSlack) -> None:
    assert interact(slack_requests.block_action_payload("note_open", str(seeded.jan), user_id=ALICE))[0] == 200
    view = _view(fake_slack.wait_for("views.open")[0])
    assert view["callback_id"] == "add_note"
    about = view["blocks"][0]["element"]
    assert [o["value"] for o in about["options"]] == [f"contact:{seeded.jan}", f"company:{seeded.acme}"]

    submission = {"type": "view_submission", "team": {"id": "T0TEST"}, "user": {"id": ALICE}, "trigger_id": "1.2.3",
                  "view": {**view, "id": "V3", "state": {"values": {
                      "about": {"about": {"type": "radio_buttons",
                                          "selected_option": {"value": f"company:{seeded.acme}", "text": {}}}},
                      "note": {"note": {"type": "plain_text_input", "value": "Budget approved for Q1"}},
                  }}}}
    status, body = interact(submission)
    assert status == 200 and body in (b"", b"{}")
    with Session(engine) as session:
        note = session.exec(select(Activity)).one()
    assert (note.kind, note.contact_id, note.company_id, note.summary) == (
        "note", None, seeded.acme, "Budget approved for Q1")


def test_log_to_crm_files_a_message_as_a_note_on_a_company(interact: Any, seeded: Seeded, engine: Any,
                                                            fake_slack: FakeSlack) -> None:
    shortcut = {
        "type": "message_action", "callback_id": "log_to_crm", "trigger_id": "1337.42.abc",
        "team": {"id": "T0TEST"}, "user": {"id": ALICE}, "channel": {"id": "C0SALES", "name": "sales"},
        "message_ts": "1700000000.000300",
        "message": {"type": "message", "ts": "1700000000.000300", "text": "Acme wants a second warehouse"},
        "response_url": "https://hooks.slack.com/x",
    }
    assert interact(shortcut)[0] == 200
    view = _view(fake_slack.wait_for("views.open")[0])
    values: dict[str, Any] = {
        "contact": {"contact_picker": {"type": "external_select", "selected_option": None}},
        "company": {"company_picker": {"type": "external_select",
                                       "selected_option": {"value": str(seeded.acme), "text": {}}}},
        "log_as": {"log_as": {"type": "static_select", "selected_option": {"value": "note", "text": {}}}},
        "summary": {"summary": {"type": "plain_text_input", "value": "Acme wants a second warehouse"}},
    }
    submission = {"type": "view_submission", "team": {"id": "T0TEST"}, "user": {"id": ALICE},
                  "trigger_id": "1.2.3", "view": {**view, "id": "V4", "state": {"values": values}}}
    status, body = interact(submission)
    assert status == 200 and body in (b"", b"{}")
    with Session(engine) as session:
        note = session.exec(select(Activity)).one()
    assert (note.kind, note.contact_id, note.company_id) == ("note", None, seeded.acme)
    assert note.link and note.link.endswith("/archives/C0SALES/p1700000000000300")

    suggestion = {"type": "block_suggestion", "action_id": "company_picker", "block_id": "company", "value": "acme",
                  "team": {"id": "T0TEST"}, "user": {"id": ALICE}, "view": {"id": "V4", "callback_id": "log_message"}}
    status, body = interact(suggestion)
    assert status == 200
    assert json.loads(body)["options"][0]["value"] == str(seeded.acme)


def test_a_reps_move_to_purchase_survives_the_scheduler_until_a_new_order_is_14_days_old(
    service: Any, seeded: Seeded, engine: Any, slash: Any, clock: Any
) -> None:
    # regression: Jan's latest order (O-2) is 10 days old; the rep's move must not be undone on that evidence
    slash("stage jan purchase renewal signed today")
    assert service.scheduler.tick(clock.now).post_purchase_moves == 0
    assert service.scheduler.tick(clock.advance(days=30)).post_purchase_moves == 0
    _, card = slash("find stastny")
    assert "*Stage*\\npurchase" in all_text(card["blocks"])  # the card as the rep left it

    renewal_day = clock.now.date()  # the renewal's order, placed after the move: post_purchase_days is 14
    with session_scope(engine) as session:
        session.add(Order(external_id="O-3", contact_id=seeded.jan, company_id=seeded.acme, amount=Decimal(500),
                          ordered_on=renewal_day))
    assert service.scheduler.tick(clock.advance(days=13)).post_purchase_moves == 0
    assert service.scheduler.tick(clock.advance(days=1)).post_purchase_moves == 1
    assert service.scheduler.tick(clock.advance(minutes=1)).post_purchase_moves == 0
    latest = _moves(engine, seeded.jan)[-1]
    assert (latest.stage_from, latest.stage_to, latest.rep_id) == ("purchase", "post_purchase", None)
    assert latest.summary == f"14 days after the order of {renewal_day.isoformat()}"
    _, card = slash("find stastny")
    assert "purchase → post purchase" in all_text(card["blocks"]) and "by Rapport" in all_text(card["blocks"])
