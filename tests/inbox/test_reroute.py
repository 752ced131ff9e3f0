"""A corrected category re-routes a conversation whose owner came from category or language routing."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from inbox.assign import explain
from inbox.corrections import apply_correction
from inbox.options import IngestOptions
from inbox.pipeline import FetchedMessage, process_batch
from store.assignments import assignment_history, reassign
from store.corrections import CorrectionApplied
from store.db import session_scope
from store.models import Assignment, Contact, ContactEmail, Correction, Message, OutboxItem
from tests.inbox.helpers import NOW, Result, add_rep, mail

# A German demo request: a sales mail that the classifier files as feedback.
DEMO_SUBJECT = "Vorführung für unser Team"
DEMO_BODY = "Guten Tag, wir möchten bitte eine Vorführung Ihrer Software für zwölf Personen."


class FiledAsFeedback:
    """The classifier's mistake, made on purpose: every mail is German feedback."""

    def classify(self, texts: list[str]) -> list[Result]:
        return [Result("feedback", 0.7, "de") for _ in texts]


def add_team(engine: Engine) -> dict[str, int]:
    """A Swedish-speaking support agent for feedback; sales reps for Swedish and for German."""
    return {
        "dora": add_rep(engine, "dora@shop.example", role="support", skills=["feedback"], languages=["sv"]),
        "erik": add_rep(engine, "erik@shop.example", skills=["sales"], languages=["sv"]),
        "greta": add_rep(engine, "greta@shop.example", skills=["sales"], languages=["de"]),
    }


def ingest(engine: Engine, sender: str = "lena@kunde.example") -> Message:
    raw = mail(subject=DEMO_SUBJECT, body=DEMO_BODY, sender=sender, message_id=f"<demo@{sender.split('@')[1]}>")
    with session_scope(engine) as session:
        process_batch(session, [FetchedMessage(raw, "support@shop.example", "INBOX")], checkpoint=None,
                      options=IngestOptions(now=NOW, own_addresses=("support@shop.example",)),
                      classifier=FiledAsFeedback())
    with Session(engine) as session:
        message = session.exec(select(Message).order_by(col(Message.id).desc())).first()
        assert message is not None and message.conversation_id is not None
        return message


def correct(engine: Engine, message_id: int | None, category: str) -> CorrectionApplied:
    with session_scope(engine) as session:
        message = session.get(Message, message_id)
        return apply_correction(session, category, message=message, conversation=None, rep=None,
                                by="manager@shop.example", now=NOW)


def history(engine: Engine, conversation_id: int) -> list[tuple[str, int | None]]:
    with Session(engine) as session:
        return [(a.rule, a.owner_id) for a in assignment_history(session, conversation_id)]


def dm_owners(engine: Engine) -> list[int | None]:
    """For each enqueued assignment DM, in order, the rep it goes to."""
    with Session(engine) as session:
        rows = session.exec(select(OutboxItem).where(OutboxItem.kind == "assign-dm").order_by(col(OutboxItem.id)))
        return [session.get(Assignment, row.payload["assignment_id"]).owner_id for row in rows]  # type: ignore[union-attr]


def test_a_corrected_category_moves_a_skill_routed_conversation_to_the_right_rep(sqlite_engine: Engine) -> None:
    reps = add_team(sqlite_engine)
    message = ingest(sqlite_engine)
    conversation_id = message.conversation_id
    assert conversation_id is not None
    assert history(sqlite_engine, conversation_id) == [("skill", reps["dora"])]

    applied = correct(sqlite_engine, message.id, "sales")

    assert applied.reassigned is not None and applied.reassigned.owner_id == reps["greta"]
    assert applied.routing.startswith("re-routed to Greta: Greta handles sales and speaks de")
    assert history(sqlite_engine, conversation_id) == [("skill", reps["dora"]), ("reroute", reps["greta"])]
    assert dm_owners(sqlite_engine) == [reps["dora"], reps["greta"]]
    with Session(sqlite_engine) as session:
        [correction] = session.exec(select(Correction)).all()
        assert (correction.old_category, correction.new_category, correction.language) == ("feedback", "sales", "de")
        assert correction.text == f"{DEMO_SUBJECT}\n\n{DEMO_BODY}"  # what the classifier read: for retraining
        [last] = assignment_history(session, conversation_id)[-1:]
        assert last.assigned_by == "manager@shop.example"
        assert last.reason.startswith("category corrected from feedback to sales by manager@shop.example; Greta")
        [winner] = explain(session, conversation_id).rules  # the re-route, as stored
        assert (winner.rule, winner.reason) == ("reroute", last.reason)
        assert winner.owner is not None and winner.owner.email == "greta@shop.example"


def test_applying_the_same_correction_twice_sends_one_dm(sqlite_engine: Engine) -> None:
    reps = add_team(sqlite_engine)
    message = ingest(sqlite_engine)
    correct(sqlite_engine, message.id, "sales")

    again = correct(sqlite_engine, message.id, "sales")

    assert again.reassigned is None
    assert again.routing == "the owner stays: Greta handles sales and speaks de: Greta has 0 open of 30"
    assert dm_owners(sqlite_engine) == [reps["dora"], reps["greta"]]


def test_an_account_owned_conversation_stays_with_its_owner(sqlite_engine: Engine) -> None:
    reps = add_team(sqlite_engine)
    with session_scope(sqlite_engine) as session:
        lena = Contact(name="Lena Vogt", kind="customer", owner_id=reps["erik"])
        session.add(lena)
        session.flush()
        session.add(ContactEmail(contact_id=lena.id, email="lena@kunde.example", is_primary=True))
    message = ingest(sqlite_engine)
    assert message.conversation_id is not None
    assert history(sqlite_engine, message.conversation_id) == [("account_owner", reps["erik"])]

    applied = correct(sqlite_engine, message.id, "sales")

    assert applied.reassigned is None
    assert applied.routing == "the owner stays: assigned by rule account_owner (Erik owns the contact Lena Vogt)"
    assert history(sqlite_engine, message.conversation_id) == [("account_owner", reps["erik"])]
    assert dm_owners(sqlite_engine) == [reps["erik"]]


def test_a_manual_assignment_is_not_undone_by_a_correction(sqlite_engine: Engine) -> None:
    reps = add_team(sqlite_engine)
    message = ingest(sqlite_engine)
    assert message.conversation_id is not None
    with session_scope(sqlite_engine) as session:
        reassign(session, message.conversation_id, "erik@shop.example", by="manager@shop.example", now=NOW)

    applied = correct(sqlite_engine, message.id, "sales")

    assert applied.reassigned is None and "rule manual" in applied.routing
    assert history(sqlite_engine, message.conversation_id)[-1] == ("manual", reps["erik"])
