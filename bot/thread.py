""""Show conversation": a conversation's messages in order, in a modal, a page at a time.

Each message shows its direction, sender, time and new text (quoted history
folded), its attachments by name and size. Every text from mail is escaped.
`/crm thread CONTACT|#CONVERSATION` opens the same modal.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from bot.blocks import Block, Reply, actions, button, context, divider, fit, section
from bot.identity import can_see
from bot.modals import modal
from bot.references import conversation_ref, names_other, read_reference
from bot.text import age, clip, escape, local_time, whole_number
from store.models import Contact, Conversation, Direction, Message, OutboxItem, OutboxStatus, Rep
from store.outbox import EmailReply
from store.replies import thread_messages

if TYPE_CHECKING:
    from bot.commands import Ctx

PAGE_SIZE = 8  # messages per page: 4 blocks each stays far below a modal's 100
MESSAGE_TEXT = 2500  # characters of one message's text (a section holds 3,000)
THREAD_CALLBACK = "conversation_thread"
NOTICE_CALLBACK = "rapport_notice"
THREAD_FORM = "thread CONTACT|#CONVERSATION"
THREAD_HINT = "E.g. `thread #42` or `thread stastny`."


def visible_conversation(session: Session, rep: Rep, conversation_id: int) -> Conversation | str:
    """The conversation if the rep may see it, else why not."""
    conversation = session.get(Conversation, conversation_id) if conversation_id else None
    if conversation is None:  # conversations are never deleted (an erasure empties them): a wrong number
        return f"There is no conversation {conversation_ref(conversation_id)}." if conversation_id else "There is no such conversation."
    if not can_see(session, rep, conversation.owner_id):
        return "That conversation is not yours to see."
    return conversation


def thread_view(session: Session, rep: Rep, conversation_id: int, page: int | None = None) -> dict[str, Any]:
    """The modal; page 0 (or None) shows the newest messages, page 1 the ones before them, …"""
    found = visible_conversation(session, rep, conversation_id)
    if isinstance(found, str):
        return notice_view("Conversation", found)
    conversation = found
    assert conversation.id is not None
    messages = thread_messages(session, conversation.id)
    pages = max(1, -(-len(messages) // PAGE_SIZE))
    page = min(max(page or 0, 0), pages - 1)  # 0: the newest messages; higher: older ones
    end = len(messages) - page * PAGE_SIZE
    start = max(0, end - PAGE_SIZE)
    shown = messages[start:end]
    contact = session.get(Contact, conversation.contact_id) if conversation.contact_id else None
    who = f" · {escape(contact.name)}" if contact else ""
    blocks: list[Block] = [
        section(f"*{escape(clip(conversation.subject or '(no subject)', 200))}*\n"
                f"{conversation_ref(conversation.id)}{who} · {escape(conversation.status)}",
                accessory=button("Reply", "conv_reply", str(conversation.id), style="primary")),
    ]
    if not messages:
        blocks.append(section("No messages stored for this conversation."))
    states = delivery_states(session, shown)
    for message in shown:
        blocks += message_blocks(message, tz=rep.timezone, delivery=states.get(message.id or 0))
    blocks.append(context(f"Messages {start + 1}–{end} of {len(messages)}, oldest first"
                          if messages else "No messages"))
    nav = []
    if start > 0:
        nav.append(button("Older messages", "thread_page", f"{conversation.id}:{page + 1}"))
    if page > 0:
        nav.append(button("Newer messages", "thread_page", f"{conversation.id}:{page - 1}"))
    if nav:
        blocks.append(actions(*nav, block_id="thread_pages"))
    return modal(THREAD_CALLBACK, "Conversation", blocks, submit=None,
                 metadata={"conversation_id": conversation.id, "page": page})


def delivery_states(session: Session, messages: list[Message]) -> dict[int, str]:
    """Replies sent from Slack that have not gone out (yet): message id -> what to tell the rep."""
    keys = {EmailReply(m.id, m.mailbox).key: m.id for m in messages if m.id and m.direction == Direction.outbound}
    if not keys:
        return {}
    rows = session.exec(select(OutboxItem).where(col(OutboxItem.key).in_(list(keys)))).all()
    states = {}
    for row in rows:
        if row.status == OutboxStatus.pending:
            states[keys[row.key]] = "sending…" + (f" (retrying: {clip(row.last_error, 120)})" if row.last_error else "")
        elif row.status == OutboxStatus.failed:
            states[keys[row.key]] = f"NOT SENT: {clip(row.last_error or 'gave up', 160)}"
    return states


def message_blocks(message: Message, *, tz: str, delivery: str | None = None) -> list[Block]:
    """One message: who, when, which way; its new text; what was folded or attached."""
    sender = escape(message.from_name or message.from_email or "unknown sender")
    if message.from_name and message.from_email:
        sender += f" &lt;{escape(message.from_email)}&gt;"
    when = local_time(message.sent_at or message.received_at, tz)
    if message.direction == Direction.outbound:
        line = f"*Sent* by {sender} to {escape(', '.join(message.to) or '?')} · {when}"
    else:
        line = f"*Received* from {sender} · {when}"
    if message.is_automatic:
        line += f" · automatic ({escape(message.automatic_reason or 'no reason given')})"
    text = (message.new_text or message.text or "").strip()
    body = fit(escape(text), MESSAGE_TEXT) if text else "_(no text)_"
    blocks: list[Block] = [divider(), section(f"{line}\n{body}")]
    notes = [f"*{escape(delivery)}*"] if delivery else []
    folded = _folded_lines(message)
    if folded:
        notes.append(f"Quoted history folded ({folded} lines)")
    if message.attachments:
        notes.append("Attachments: " + ", ".join(
            f"{escape(clip(str(a.get('name') or 'unnamed'), 80))} ({file_size(int(a.get('size') or 0))})"
            for a in message.attachments[:10]) + (f" and {len(message.attachments) - 10} more"
                                                  if len(message.attachments) > 10 else ""))
    if notes:
        blocks.append(context(*notes))
    return blocks


def _folded_lines(message: Message) -> int:
    whole, new = (message.text or "").strip(), (message.new_text or "").strip()
    if not new or len(whole) <= len(new):
        return 0
    return max(1, _lines(whole) - _lines(new))


def _lines(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.strip())


def file_size(size: int) -> str:
    """`830 bytes`, `12 KB`, `3.4 MB`."""
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size // 1024} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def notice_view(title: str, text: str) -> dict[str, Any]:
    """A modal that only says something (a refusal, a missing conversation)."""
    return modal(NOTICE_CALLBACK, title, [section(escape(text))], submit=None)


def view_reply(title: str, opening: str, view: dict[str, Any]) -> Reply:
    """A command's answer that opens `view`; a notice in its place says why nothing was done."""
    return Reply(title, [section(opening)], modal=view, ok=view.get("callback_id") != NOTICE_CALLBACK)


def page_of(value: str) -> tuple[int, int]:
    """A paging button's value `conversation:page` as numbers (0 for nonsense)."""
    conversation, _, page = value.partition(":")
    return whole_number(conversation) or 0, whole_number(page) or 0


# --------------------------------------------------------------------------- /crm thread


def thread_command(ctx: Ctx, args: list[str]) -> Reply:
    """`/crm thread #42` or `/crm thread CONTACT`: the modal, or a pick list of the contact's conversations."""
    from bot.commands import resolve_contact, usage

    if not args:
        return usage(ctx, THREAD_FORM, THREAD_HINT)
    # a reference only alone: `thread F1 Motors` names a contact
    target = read_reference(args[0], bare="conversation") if len(args) == 1 else None
    if target is not None and target.kind != "conversation":
        return usage(ctx, THREAD_FORM, names_other(target, "conversation") + THREAD_HINT)
    if target is not None:
        return view_reply("Conversation", "Opening the conversation…", thread_view(ctx.session, ctx.rep, target.id))
    hit, _, problem = resolve_contact(ctx, args)
    if problem is not None:
        return problem
    assert hit is not None
    query = (select(Conversation).where(Conversation.contact_id == hit.contact_id)
             .order_by(col(Conversation.last_message_at).desc(), col(Conversation.id).desc()).limit(10))
    conversations = [c for c in ctx.session.exec(query).all() if can_see(ctx.session, ctx.rep, c.owner_id)]
    if not conversations:
        text = f"No conversations with *{escape(hit.name)}* yet."
        return Reply(text, [section(text)])
    if len(conversations) == 1:
        assert conversations[0].id is not None
        return view_reply("Conversation", "Opening the conversation…",
                          thread_view(ctx.session, ctx.rep, conversations[0].id))
    blocks: list[Block] = [section(f"Conversations with *{escape(hit.name)}*, newest first:")]
    blocks += [conversation_row(c, ctx.now) for c in conversations]
    return Reply(f"Conversations with {escape(hit.name)}", blocks)


def conversation_row(conversation: Conversation, now: datetime) -> Block:
    assert conversation.id is not None
    when = conversation.last_message_at or conversation.opened_at
    text = (f"*{escape(clip(conversation.subject or '(no subject)', 120))}*\n"
            f"{conversation_ref(conversation.id)} · {escape(conversation.status)} · last mail {age(when, now)} ago")
    return section(text, accessory=button("Show conversation", "conv_thread", str(conversation.id)))
