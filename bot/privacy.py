"""`/crm privacy export|erase CONTACT` for managers: a confirmation modal, then the act.

The export is an outbox row (`PrivacyExport`): its handler builds the export when it
sends it and uploads the JSON and the same records as readable text to the manager's
DM. The erasure runs in the submission's transaction (store.privacy.erase_person).
Both are audited.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.blocks import Reply, section
from bot.commands import Ctx, resolve_contact
from bot.identity import is_manager, may_act_on
from bot.interactions import Submission
from bot.modals import _modal, metadata
from bot.notify import FileUpload, SlackSender
from bot.text import escape
from store.audit import Actor, record_audit
from store.db import read_session
from store.models import Contact, Rep
from store.outbox import Done, Handler, Job, Outcome, PrivacyExport, enqueue
from store.owners import owner_id_of
from store.privacy import erase_person, export_contact, export_files, primary_address

CALLBACK = "privacy_confirm"
ACTIONS = ("export", "erase")
TITLES = {"json": "Export (JSON)", "txt": "Export (readable)"}


def privacy_command(ctx: Ctx, args: list[str]) -> Reply:
    """`privacy export|erase CONTACT`: managers only; answers with the confirmation modal."""
    command = ctx.options.command
    if not is_manager(ctx.rep):
        text = "Only a manager can export or erase a person's data."
        return Reply(text, [section(text)], ok=False)
    action = args[0].lower() if args else ""
    if action not in ACTIONS or len(args) < 2:
        text = (f"Usage: `{command} privacy export CONTACT` (what we hold on them, as a file in your DM) or "
                f"`{command} privacy erase CONTACT` (remove them everywhere, for good)")
        return Reply(text, [section(text)], ok=False)
    hit, _, problem = resolve_contact(ctx, args[1:])
    if problem is not None:
        return problem
    assert hit is not None
    contact = ctx.session.get(Contact, hit.contact_id)
    assert contact is not None and contact.id is not None
    return Reply(f"{action.title()} {escape(contact.name)}?", [section("Opening the confirmation…")],
                 modal=privacy_modal(action, contact))


def privacy_modal(action: str, contact: Contact) -> dict[str, Any]:
    name = escape(contact.name)
    if action == "export":
        text = (f"Export everything Rapport holds on *{name}*? A JSON file and a readable copy "
                "will arrive in your DM.")
    else:
        text = (f"Erase *{name}* for good? Their contact, mail text, calls, notes, follow-ups and consents "
                "are removed everywhere; counts stay for the digests. This cannot be undone.")
    return _modal(CALLBACK, "Export data" if action == "export" else "Erase a person", [section(text)],
                  submit="Export" if action == "export" else "Erase for good",
                  metadata={"action": action, "contact_id": contact.id})


def submit_privacy(session: Session, rep: Rep, view: dict[str, Any], now: datetime, *, actor: Actor,
                   privacy_key: str | None) -> Submission:
    """The confirmed export (an outbox row) or erasure; the middleware checked the contact is visible."""
    meta = metadata(view)
    action, contact_id = meta.get("action"), meta.get("contact_id")
    contact = session.get(Contact, contact_id) if isinstance(contact_id, int) else None
    if contact is None or contact.id is None or action not in ACTIONS:
        return Submission(text="That contact is no longer there.")
    if not is_manager(rep) or not may_act_on(session, rep, owner_id_of(session, contact.id)) or rep.id is None:
        return Submission(text="Only a manager of the contact's team can do that.")
    name = escape(contact.name)
    if action == "export":
        enqueue(session, PrivacyExport(uuid.uuid4().hex, contact.id, rep.id), now=now)
        record_audit(session, actor, "privacy.export", target_kind="contact", target_id=contact.id,
                     contact_id=contact.id, at=now)
        return Submission(text=f"Preparing the export for {name}: the files will arrive here shortly.")
    address = primary_address(session, contact.id)
    if address is None:
        return Submission(text=f"{name} has no email address; erase them with `rapport privacy erase`.")
    report = erase_person(session, address, actor=actor, configured_key=privacy_key, now=now)
    return Submission(text=f"Erased: {report.messages} mails and {report.activities} activities no longer "
                           "hold anything about that person.")


def privacy_export_handler(engine: Engine, slack: SlackSender) -> Handler:
    """Builds the export when it is sent (nothing personal waits in the outbox) and shares it: the
    JSON and the readable copy in one message, which a retry finds by the row's key and never repeats."""

    def act(jobs: list[Job]) -> dict[int, Outcome]:
        [job] = jobs
        payload = job.payload
        assert isinstance(payload, PrivacyExport)
        since = job.created_at if job.attempts > 1 else None  # a second attempt: the first may have sent it
        with read_session(engine) as session:
            contact, rep = session.get(Contact, payload.contact_id), session.get(Rep, payload.rep_id)
            if rep is None:
                return {job.id: Done({"skipped": "no such rep"})}
            channel = slack.dm_channel(session, rep)
            if contact is None:  # erased in between: nothing to send
                slack.post(channel, "That contact was erased before the export was ready.",
                           [section("That contact was erased before the export was ready.")], key=job.key,
                           since=since)
                return {job.id: Done({"skipped": "erased"})}
            data = export_contact(session, contact)
        name = f"privacy-export-{payload.contact_id}"
        files = [FileUpload(text.encode(), f"{name}.{suffix}", TITLES[suffix])
                 for suffix, text in export_files(data).items()]
        uploaded = slack.upload(channel, files, f"What Rapport holds on *{escape(contact.name)}*: the data as "
                                "JSON and the same records as text a person reads.", key=job.key, since=since)
        return {job.id: Done({"uploaded": len(files) if uploaded else 0})}

    return Handler((PrivacyExport.kind,), act)
