"""A prospect's sales enquiry moves it from `need` to `information_search`, in the batch's transaction."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from inbox.options import IngestOptions
from store.audit import audit_entries
from store.db import session_scope
from store.models import Activity, Contact, ContactEmail, Conversation
from tests.inbox.helpers import NOW, KeywordClassifier, mail
from tests.inbox.test_pipeline import ingest


def _contact(session: Session, email: str) -> Contact:
    address = session.exec(select(ContactEmail).where(ContactEmail.email == email)).one()
    contact = session.get(Contact, address.contact_id)
    assert contact is not None
    return contact


def test_sales_enquiries_move_prospects_at_need_with_the_reason(
    engine: Engine, options: IngestOptions, keyword_classifier: KeywordClassifier
) -> None:
    with session_scope(engine) as session:  # a known prospect already further on, and a customer
        for email, kind, stage in [("eva@known.example", "prospect", "evaluation"),
                                   ("cus@known.example", "customer", "need")]:
            contact = Contact(name=email, kind=kind, stage=stage)
            session.add(contact)
            session.flush()
            assert contact.id is not None
            session.add(ContactEmail(contact_id=contact.id, email=email, is_primary=True))
    raws = [
        mail(subject="Pricing for 50 seats", body="Could you send pricing?", sender="new@lead.example",
             message_id="<s1@lead.example>"),
        mail(subject="And a quote", body="A quote too, please.", sender="new@lead.example",
             message_id="<s2@lead.example>"),  # the same prospect again in the batch: one move
        mail(subject="Where is my parcel", body="The delivery is late.", sender="other@lead.example",
             message_id="<d1@lead.example>"),  # not a sales enquiry
        mail(subject="Pricing", body="pricing please", sender="eva@known.example", message_id="<s3@k.example>"),
        mail(subject="Pricing", body="pricing please", sender="cus@known.example", message_id="<s4@k.example>"),
    ]
    ingest(engine, raws, options, keyword_classifier, first_uid=1)  # type: ignore[arg-type]

    with Session(engine) as session:
        lead = _contact(session, "new@lead.example")
        assert (lead.kind, lead.stage) == ("prospect", "information_search")
        assert _contact(session, "other@lead.example").stage == "need"
        assert _contact(session, "eva@known.example").stage == "evaluation"
        assert _contact(session, "cus@known.example").stage == "need"
        moves = session.exec(select(Activity).where(Activity.kind == "move").order_by(col(Activity.id))).all()
        [move] = moves
        conversation = session.get(Conversation, move.conversation_id)
        assert conversation is not None and conversation.contact_id == lead.id
    assert (move.contact_id, move.stage_from, move.stage_to, move.rep_id) == (
        lead.id, "need", "information_search", None)
    assert move.summary == "wrote a sales enquiry: Pricing for 50 seats"
    assert move.occurred_at == NOW
    with Session(engine) as session:  # the audit log names Rapport's inbox as who moved the lead
        [entry] = audit_entries(session, contact_ids=[lead.id] if lead.id else [])
    assert (entry.action, entry.actor, entry.via, entry.detail) == (
        "contact.stage", "rapport", "inbox", {"from": "need", "to": "information_search"})
