"""`/crm` commands through `rapport serve`'s HTTP endpoint, signed as Slack signs them."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

from sqlmodel import Session, select

from rapport.serve import Service
from store.models import Activity, AuditEntry, Contact, Conversation, FollowUp, FollowUpStatus, Rep
from store.search import refresh_index
from tests.bot.conftest import (
    ALICE,
    BOB,
    CAROL,
    COMMAND,
    DAVE,
    SECRET,
    STRANGER,
    Clock,
    Seeded,
    all_text,
    get,
    rep_id,
)
from tests.servers import slack_requests
from tests.servers.fake_slack import FakeSlack


def test_healthz_answers(service: Service) -> None:
    assert service.http is not None
    status, body = get(f"http://127.0.0.1:{service.http.port}/healthz")
    assert status == 200
    assert json.loads(body) == {"ok": True}


def test_forged_signature_is_refused(events_url: str, seeded: Seeded, fake_slack: FakeSlack) -> None:
    request = slack_requests.slash_command("not-the-secret", COMMAND, "find stastny", user_id=ALICE)
    status, _ = request.post(events_url)
    assert status == 401
    assert fake_slack.calls() == []


def test_replayed_old_request_is_refused(events_url: str, seeded: Seeded, fake_slack: FakeSlack) -> None:
    six_minutes_ago = int(time.time()) - 6 * 60
    request = slack_requests.slash_command(SECRET, COMMAND, "find stastny", user_id=ALICE, timestamp=six_minutes_ago)
    status, _ = request.post(events_url)
    assert status == 401
    fresh = slack_requests.slash_command(SECRET, COMMAND, "find stastny", user_id=ALICE)
    assert fresh.post(events_url)[0] == 200


def test_find_tolerates_accents_and_shows_the_card(slash: Any, seeded: Seeded) -> None:
    status, answer = slash("find stastny")
    assert status == 200
    text = all_text(answer["blocks"])
    assert answer["response_type"] == "ephemeral"
    for expected in ("Jan Šťastný", "Acme Corporation", "evaluation", "Alice Berg", "marketing: given",
                     "1,300.00 EUR", "log_call_open", "followup_open"):
        assert expected in text, expected


def test_find_with_a_typo_and_several_matches_gives_a_pick_list(slash: Any, seeded: Seeded) -> None:
    _, answer = slash("find smiht", user=CAROL)
    text = all_text(answer["blocks"])
    assert "John Smith" in text and "Johanna Smithson" in text
    assert text.count('"contact_open"') >= 2


def test_reps_see_their_team_managers_see_all(slash: Any, seeded: Seeded) -> None:
    _, as_alice = slash("find john smith", user=ALICE)  # John belongs to Dave in the support team
    assert "John Smith" not in all_text(as_alice["blocks"])
    _, as_carol = slash("find john smith", user=CAROL)
    assert "John Smith" in all_text(as_carol["blocks"])


def test_unknown_slack_user_gets_a_clear_message(slash: Any, seeded: Seeded, fake_slack: FakeSlack) -> None:
    status, answer = slash("find acme", user=STRANGER)
    assert status == 200
    assert "I don't know you yet" in answer["text"]
    assert "rapport.toml" in answer["text"]


def test_rep_found_by_email_gets_linked(slash: Any, seeded: Seeded, engine: Any) -> None:
    _, answer = slash("find john", user=DAVE)  # Dave has no Slack id in rapport.toml
    assert "John Smith" in all_text(answer["blocks"])
    with Session(engine) as session:
        dave = session.exec(select(Rep).where(Rep.email == "dave@nordlys.example")).one()
        assert dave.slack_user_id == DAVE


def test_log_call_quick_stores_an_activity(slash: Any, seeded: Seeded, engine: Any, fake_slack: FakeSlack) -> None:
    _, answer = slash('log call "Jan Šťastný" Talked about the <!channel> renewal & pricing')
    assert "Logged a call with" in answer["text"]
    text = all_text(answer["blocks"])
    assert "&lt;!channel&gt;" in text and "<!channel>" not in text
    with Session(engine) as session:
        activity = session.exec(select(Activity)).one()
        assert activity.kind == "call" and activity.contact_id == seeded.jan
        assert activity.summary == "Talked about the <!channel> renewal & pricing"
    home = fake_slack.wait_for("views.publish")
    assert home[-1].params["user_id"] == ALICE


def test_log_call_without_arguments_opens_the_modal(slash: Any, seeded: Seeded, fake_slack: FakeSlack) -> None:
    status, _ = slash("log call")
    assert status == 200
    opened = fake_slack.wait_for("views.open")
    view = opened[0].params["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert view["callback_id"] == "log_call"
    assert any(b.get("element", {}).get("type") == "external_select" for b in view["blocks"])


def test_remind_confirms_the_exact_time_in_the_reps_zone(slash: Any, seeded: Seeded, engine: Any) -> None:
    _, answer = slash('remind "Jan Šťastný" next friday 10am send the offer')
    # Monday 23 Nov 2026 09:00 UTC; Alice is in Europe/Stockholm (CET)
    assert "Fri 27 Nov 2026 10:00 CET" in answer["text"]
    with Session(engine) as session:
        followup = session.exec(select(FollowUp)).one()
        assert followup.note == "send the offer"
        assert followup.contact_id == seeded.jan
        assert followup.due_at.isoformat() == "2026-11-27T09:00:00+00:00"


def test_regression_a_reminder_is_created_at_the_bot_clock_not_the_wall_clock(
    slash: Any, seeded: Seeded, engine: Any, clock: Clock
) -> None:
    slash("remind me tomorrow 10:00 call Jan back", user=ALICE)
    with Session(engine) as session:
        assert session.exec(select(FollowUp.created_at)).one() == clock.now


def test_remind_understands_swedish_and_czech(slash: Any, seeded: Seeded, engine: Any, clock: Clock) -> None:
    _, sv = slash("remind me imorgon ring Jan", user=ALICE)
    assert "Tue 24 Nov 2026" in sv["text"]
    _, cs = slash("remind me zítra v 10:00 zavolat", user=BOB)
    assert "Tue 24 Nov 2026 10:00 CET" in cs["text"]
    with Session(engine) as session:
        notes = sorted(f.note for f in session.exec(select(FollowUp)).all())
    assert notes == ["ring Jan", "zavolat"]


def test_regression_a_command_with_the_word_payload_is_read_as_a_command(slash: Any, seeded: Seeded,
                                                                            engine: Any) -> None:
    """Bolt's own form reader took any body with "payload" in it for an interaction and
    dispatched nothing: the reminder below was answered 404 and never set."""
    status, answer = slash('remind "Jan Šťastný" tomorrow 10:00 check the payload of the order')
    assert status == 200 and "Tue 24 Nov 2026 10:00 CET" in answer["text"]
    with Session(engine) as session:
        assert session.exec(select(FollowUp.note)).one() == "check the payload of the order"


def test_remind_with_an_unreadable_time_explains(slash: Any, seeded: Seeded) -> None:
    _, answer = slash('remind "Jan Šťastný" whenever you like')
    assert "could not read a time" in all_text(answer["blocks"])


REFUSED_DATES = {  # regression: "31.02." was Tue 04 Feb 2031 and "13/25" Thu 13 Dec 2125
    'remind "Jan Šťastný" 31.02. call': "31 February is not a date.",
    "remind me 13/25 call": "13/25 is not a date: there is no month 25.",
    "away 32.12.": "32 December is not a date.",
}


def test_remind_and_away_refuse_31_february(slash: Any, seeded: Seeded, engine: Any) -> None:
    for command, refusal in REFUSED_DATES.items():
        _, answer = slash(command)
        assert refusal in all_text(answer["blocks"]), command
    with Session(engine) as session:
        assert session.exec(select(FollowUp)).all() == []
    assert _alice(engine).away_until is None


def test_remind_on_a_date_in_digits_is_at_nine(slash: Any, seeded: Seeded) -> None:
    _, answer = slash("remind me 31.12. call Jan")  # regression: midnight
    assert "Thu 31 Dec 2026 09:00 CET" in answer["text"]


def test_away_and_back(slash: Any, seeded: Seeded, engine: Any) -> None:
    _, answer = slash("away in 2 days")
    assert "You're away until Wed 25 Nov 2026 09:00 CET" in answer["text"]  # days, so 09:00
    assert _alice(engine).away_until is not None
    slash("back")
    assert _alice(engine).away_until is None


def _alice(engine: Any) -> Rep:
    with Session(engine) as session:
        return session.exec(select(Rep).where(Rep.slack_user_id == ALICE)).one()


def test_more_than_fifty_blocks_are_split(slash: Any, seeded: Seeded, engine: Any, clock: Clock,
                                          fake_slack: FakeSlack) -> None:
    alice = rep_id(engine, "alice@nordlys.example")
    with Session(engine) as session:
        for i in range(60):
            session.add(FollowUp(rep_id=alice, contact_id=seeded.jan, due_at=clock.now, note=f"task {i}"))
        session.commit()
    _, answer = slash("followups", channel_id="C0SALES")
    assert len(answer["blocks"]) == 50
    rest = fake_slack.wait_for("chat.postEphemeral")
    blocks = rest[0].params["blocks"]
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    assert len(blocks) == 1 + 60 - 50  # a header, then one block per follow-up
    assert "task 59" in all_text(blocks)


def test_unknown_subcommand_points_to_help(slash: Any, seeded: Seeded) -> None:
    _, answer = slash("frobnicate <!here>")
    text = all_text(answer["blocks"])
    assert "/crm help" in text
    _, help_answer = slash("help")
    assert "remind CONTACT WHEN NOTE" in all_text(help_answer["blocks"])


def test_regression_a_one_letter_find_asks_for_more_instead_of_opening_a_card(slash: Any, seeded: Seeded) -> None:
    """`find a` opened the card of a contact whose company is an "a.s.", as if "a" named it."""
    for query in ("a", " ", "-"):
        _, answer = slash(f"find {query}")
        assert "at least two letters or digits" in all_text(answer["blocks"]), query
    _, two = slash("find jan")  # a short name still searches
    assert "Jan Šťastný" in all_text(two["blocks"])


def test_help_on_one_command_shows_only_that_command(slash: Any, seeded: Seeded) -> None:
    """`help find` printed the whole list (a new user's report)."""
    _, find = slash("help find")
    assert find["text"].startswith("`/crm find QUERY`") and "remind" not in all_text(find["blocks"])
    _, log = slash("help log")
    assert "/crm log call CONTACT NOTES" in log["text"]
    _, unknown = slash("help fnd")
    assert "There is no `fnd` command" in all_text(unknown["blocks"])


def test_contact_names_are_escaped_on_the_card(slash: Any, engine: Any, seeded: Seeded) -> None:
    with Session(engine) as session:
        session.add(Contact(name="Eve <!channel> Hacker"))
        session.flush()
        refresh_index(session)  # as the writers do
        session.commit()
    _, answer = slash("find eve hacker", user=CAROL)
    text = all_text(answer["blocks"])
    assert "Eve &lt;!channel&gt; Hacker" in text
    assert "<!channel>" not in text


def test_segment_top_lists_customers_by_value(slash: Any, seeded: Seeded) -> None:
    _, answer = slash("segment top", user=CAROL)
    assert "Jan Šťastný" in all_text(answer["blocks"]) or "Acme Corporation" in all_text(answer["blocks"])
    _, wrong = slash("segment biggest", user=CAROL)
    assert "top|lapsed|stalled|partners" in all_text(wrong["blocks"])


def test_my_lists_open_conversations_by_sla_and_due_followups(slash: Any, seeded: Seeded, engine: Any,
                                                              clock: Clock) -> None:
    from tests.bot.conftest import add_assigned_email

    add_assigned_email(engine, owner_email="alice@nordlys.example", contact_id=seeded.jan, subject="Later one",
                       text="x", sla_hours=8)
    add_assigned_email(engine, owner_email="alice@nordlys.example", contact_id=seeded.jan, subject="Urgent one",
                       text="y", sla_hours=1)
    alice = rep_id(engine, "alice@nordlys.example")
    with Session(engine) as session:
        session.add(FollowUp(rep_id=alice, contact_id=seeded.jan, due_at=clock.now, note="call about the <renewal>"))
        session.commit()
    _, answer = slash("my")
    text = all_text(answer["blocks"])
    assert text.index("Urgent one") < text.index("Later one")
    assert "call about the &lt;renewal&gt;" in text


def test_unknown_user_clicking_a_button_gets_a_clear_message(interact: Any, seeded: Seeded,
                                                             fake_slack: FakeSlack) -> None:
    payload = slack_requests.block_action_payload("followup_done", "1", user_id=STRANGER, channel_id="C0SALES")
    assert interact(payload)[0] == 200
    answer = fake_slack.wait_for("chat.postEphemeral")[0]
    assert answer.params["user"] == STRANGER and "I don't know you yet" in answer.params["text"]


def test_regression_a_rep_works_the_queue_by_typing_claim_answered_done_and_snooze(
        slash: Any, seeded: Seeded, engine: Any, clock: Clock) -> None:
    """`rapport chat` has nothing to click: a new user found no way there to take a conversation,
    mark it answered or finish a follow-up. The typed commands do what the buttons do, with the
    same permission checks, and are audited under the same names."""
    from tests.bot.conftest import add_assigned_email

    ours, _ = add_assigned_email(engine, owner_email="alice@nordlys.example", contact_id=seeded.jan,
                                 subject="Broken glass", text="x")
    support, _ = add_assigned_email(engine, owner_email="dave@nordlys.example", contact_id=seeded.john,
                                    subject="Login", text="y")
    _, listed = slash("my", user=BOB)
    assert f"#{ours}" not in all_text(listed["blocks"])  # Alice's, not Bob's yet
    _, claimed = slash(f"claim #{ours}", user=BOB)
    assert claimed["text"] == "Claimed by Bob Dvořák."
    _, refused = slash(f"claim #{support}", user=BOB)  # another team's: as the button, refused
    assert refused["text"] == "That is not yours to see or change."
    # a manager acts on their own team's work only, as the buttons' check says (bot.access)
    assert slash(f"answered #{support}", user=CAROL)[1]["text"] == "That is not yours to see or change."
    _, listed = slash("my", user=BOB)
    assert f"#{ours} " in all_text(listed["blocks"])  # the number to type is shown
    assert slash(f"answered #{ours}", user=BOB)[1]["text"] == "Marked answered by Bob Dvořák."
    assert "already answered" in slash(f"answered #{ours}", user=BOB)[1]["text"]
    bob = rep_id(engine, "bob@nordlys.example")
    with Session(engine) as session:
        conversation = session.get(Conversation, ours)
        assert conversation is not None and conversation.owner_id == bob
        assert conversation.status == "answered"

    alice = rep_id(engine, "alice@nordlys.example")
    with Session(engine) as session:
        session.add(FollowUp(rep_id=alice, contact_id=seeded.jan, due_at=clock.now, note="first"))
        session.add(FollowUp(rep_id=alice, contact_id=seeded.jan, due_at=clock.now + timedelta(days=1), note="second"))
        session.commit()
    _, snoozed = slash("snooze stastny tomorrow")
    assert snoozed["text"].startswith("Snoozed until Tue 24 Nov 2026 09:00 CET")
    assert "(1 more open with Jan Šťastný)" in snoozed["text"]
    assert "Usage" in slash("snooze stastny later")[1]["text"]
    assert slash("done stastny")[1]["text"].startswith("Done.")  # "first", still the sooner
    assert slash("done stastny")[1]["text"].startswith("Done.")
    assert "no open follow-up" in slash("done stastny")[1]["text"]
    with Session(engine) as session:
        assert {f.note: f.status for f in session.exec(select(FollowUp))} == {
            "first": FollowUpStatus.done, "second": FollowUpStatus.done}
        actions = sorted((e.action, e.outcome) for e in session.exec(select(AuditEntry))
                         if e.action.startswith(("conversation.", "followup.")))
    assert actions == sorted([("conversation.claim", "ok"), ("conversation.claim", "refused"),
                              ("conversation.answered", "ok"), ("conversation.answered", "refused"),
                              ("conversation.answered", "refused"),
                              ("followup.snooze", "ok"), ("followup.done", "ok"), ("followup.done", "ok")])


def test_a_followup_without_a_contact_is_done_and_snoozed_by_the_reference_my_shows(
        slash: Any, seeded: Seeded, engine: Any, clock: Clock) -> None:
    """A reminder a rep set for themselves has no contact to type: `done CONTACT` could not reach
    it, only the buttons could, and `rapport chat` has none. `my` names each follow-up `F17`,
    never in the conversations' `#42`, and `done`/`snooze` take it with the buttons' permission
    check and audit names."""
    from tests.bot.conftest import add_assigned_email

    conversation, _ = add_assigned_email(engine, owner_email="alice@nordlys.example", contact_id=seeded.jan,
                                         subject="Broken glass", text="x")
    alice = rep_id(engine, "alice@nordlys.example")
    with Session(engine) as session:
        mine = FollowUp(rep_id=alice, due_at=clock.now, note="check the invoice run")
        session.add(mine)
        session.commit()
        ref = f"F{mine.id}"
    for listing in ("my", "followups"):
        assert f"{ref} " in all_text(slash(listing)[1]["blocks"])

    _, snoozed = slash(f"snooze {ref.lower()} 1h")
    assert snoozed["text"].startswith("Snoozed until")
    # another team's rep is refused as their button would be; a teammate by the follow-up's own rule
    assert slash(f"done {ref}", user=DAVE)[1]["text"] == "That is not yours to see or change."
    assert slash(f"done {ref}", user=BOB)[1]["text"] == "That follow-up is not yours (or no longer exists)."
    # a conversation's number is not a follow-up's, nor the other way round
    wrong_kind = all_text(slash(f"done #{conversation}")[1]["blocks"])
    assert f"`#{conversation}` names a conversation" in wrong_kind and "F17" in wrong_kind
    assert f"`{ref}` names a follow-up" in all_text(slash(f"claim {ref}")[1]["blocks"])
    assert "A follow-up is written `" + ref + "`, on its own" in slash(f"done {ref} now")[1]["text"]
    assert slash(f"done {ref}")[1]["text"].startswith("Done.")
    assert "already done" in slash(f"done {ref}")[1]["text"]

    with Session(engine) as session:
        followup = session.get(FollowUp, mine.id)
        assert followup is not None and followup.status == FollowUpStatus.done
        conv = session.get(Conversation, conversation)
        assert conv is not None and conv.status == "open"  # `done #N` touched no conversation
        actions = sorted((e.action, e.target_id, e.outcome) for e in session.exec(select(AuditEntry))
                         if e.action.startswith(("conversation.", "followup.")))
    assert actions == sorted([("followup.snooze", mine.id, "ok"), ("followup.done", mine.id, "refused"),
                              ("followup.done", mine.id, "refused"), ("followup.done", mine.id, "ok"),
                              ("followup.done", mine.id, "refused")])


def test_regression_thread_and_reply_read_a_followup_reference_as_claim_and_done_do(
        slash: Any, seeded: Seeded, engine: Any, clock: Clock, fake_slack: FakeSlack) -> None:
    """`thread F17` searched the contacts for "F17", and `reply F17` answered a bare usage: both
    read conversation numbers their own way, apart from `claim` and `done`. They read references
    as those do (bot.references): a follow-up's is named as one, and numbers and contacts open the
    conversation as before."""
    from tests.bot.conftest import add_assigned_email

    conversation, _ = add_assigned_email(engine, owner_email="alice@nordlys.example", contact_id=seeded.jan,
                                         subject="Broken glass", text="The vase arrived broken.")
    with Session(engine) as session:
        followup = FollowUp(rep_id=rep_id(engine, "alice@nordlys.example"), contact_id=seeded.jan,
                            due_at=clock.now, note="call back")
        session.add(followup)
        session.commit()
        ref = f"F{followup.id}"
    for typed in (f"thread {ref}", f"thread {ref.lower()}", f"reply {ref} On its way."):
        _, answer = slash(typed)
        assert answer["text"].startswith(f"Usage: {COMMAND} {typed.split()[0]} "), typed
        assert f"`{ref}` names a follow-up. E.g. `{typed.split()[0]} #42" in all_text(answer["blocks"]), typed
    assert fake_slack.calls("views.open") == []

    for count, typed in enumerate((f"thread {conversation}", f"thread #{conversation}", "thread stastny"), start=1):
        slash(typed)
        view = fake_slack.wait_for("views.open", count)[-1].params["view"]
        view = json.loads(view) if isinstance(view, str) else view
        assert view["callback_id"] == "conversation_thread", typed
        assert "The vase arrived broken." in json.dumps(view, ensure_ascii=False), typed


def test_help_shows_done_and_snooze_by_a_followups_reference(slash: Any, seeded: Seeded) -> None:
    for name, example in (("done", "`done F17`"), ("snooze", "`snooze F17 tomorrow`")):
        _, answer = slash(f"help {name}")
        assert answer["text"].startswith(f"`/crm {name} FOLLOWUP|CONTACT")
        assert example in answer["text"]


def test_regression_snooze_never_moves_a_followup_earlier(slash: Any, seeded: Seeded, engine: Any,
                                                          clock: Clock) -> None:
    """`snooze F4 tomorrow` on a follow-up due Friday answered "Snoozed until" the next morning: it
    came back days sooner. A snooze counts from the later of now and the due time, typed or clicked."""
    with Session(engine) as session:
        friday = FollowUp(rep_id=rep_id(engine, "alice@nordlys.example"), contact_id=seeded.jan,
                          due_at=clock.now + timedelta(days=4, hours=5), note="send the offer")  # Fri 15:00 CET
        session.add(friday)
        session.commit()
        ref = f"F{friday.id}"
    assert slash(f"snooze {ref} tomorrow")[1]["text"] == "Snoozed until Sat 28 Nov 2026 09:00 CET."
    assert slash(f"snooze {ref} 1h")[1]["text"] == "Snoozed until Sat 28 Nov 2026 10:00 CET."
    clock.advance(days=6)  # Sun 29 Nov, past due: from now again
    assert slash(f"snooze {ref} 1h")[1]["text"] == "Snoozed until Sun 29 Nov 2026 11:00 CET."


def test_followup_hints_point_to_followups_and_a_bare_number_to_its_f_reference(
        slash: Any, seeded: Seeded) -> None:
    """The hints said `my` shows follow-up references, but `my` lists only the due ones; and
    `done 4` answered only "No contact matches 4." The hints name `followups`, which lists them all,
    and a number that names no contact is answered with how a follow-up is written."""
    for typed in ("done", "snooze tomorrow", "help done"):
        assert "`followups` lists" in all_text(slash(typed)[1]["blocks"]), typed
    for typed, ref in (("done 4", "F4"), ("snooze 12 1h", "F12")):
        _, answer = slash(typed)
        assert answer["text"].startswith(f"No contact matches {typed.split()[1]}."), typed
        assert f"A follow-up is written `{ref}`, on its own" in all_text(answer["blocks"]), typed
    assert "A follow-up is written" not in all_text(slash("done nobody")[1]["blocks"])


def test_regression_a_contact_whose_name_starts_like_a_followup_reference_is_found(
        slash: Any, seeded: Seeded, engine: Any, clock: Clock) -> None:
    """`done F1 Motors` read `F1` as a follow-up's reference and refused the rest. A reference is
    read only when it is the whole argument (for snooze, all before the choice); else the words
    name a contact, as before."""
    alice = rep_id(engine, "alice@nordlys.example")
    with Session(engine) as session:
        motors = Contact(name="F1 Motors", owner_id=alice)
        session.add(motors)
        session.flush()
        assert motors.id is not None
        session.add(FollowUp(rep_id=alice, contact_id=motors.id, due_at=clock.now, note="renewal"))
        refresh_index(session)
        session.commit()
    assert slash("snooze F1 Motors 1h")[1]["text"].startswith("Snoozed until Mon 23 Nov 2026 11:00 CET")
    assert slash("done F1 Motors")[1]["text"].startswith("Done.")
    assert slash("thread F1 Motors")[1]["text"] == "No conversations with *F1 Motors* yet."


def test_a_commands_usage_and_its_help_spell_its_form_alike(slash: Any, seeded: Seeded) -> None:
    """`thread` answered a mistake with `thread CONTACT|CONVERSATION` and `reply` with `reply
    CONVERSATION TEXT`, while `help` wrote `#CONVERSATION`: a command's form is one constant that
    its usage message and `help` both show."""
    for name, wrong in (("claim", "claim"), ("answered", "answered stastny"), ("thread", "thread"),
                        ("reply", "reply"), ("done", "done"), ("snooze", "snooze stastny")):
        usage = slash(wrong)[1]["text"].removeprefix("Usage: ")
        help_form = slash(f"help {name}")[1]["text"].split("`")[1]
        assert usage == help_form, name
        assert "CONVERSATION" not in usage or "#CONVERSATION" in usage, name
