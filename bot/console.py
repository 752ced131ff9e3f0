"""The console adapter: the `/crm` handlers against the local store, blocks rendered as text."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from rich.console import Console
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.blocks import Reply
from bot.commands import BotOptions, Ctx, run_command
from bot.identity import is_manager
from bot.terminal import terminal_blocks
from store.db import session_scope
from store.models import Rep
from store.reps import rep_by_email
from store.types import utcnow


class ConsoleError(Exception):
    """The console cannot act as anyone (no such rep, no reps at all)."""


def pick_rep(session: Session, email: str | None) -> Rep:
    """The rep to act as: `email`, else the first active manager, else the first active rep."""
    if email:
        rep = rep_by_email(session, email)
        if rep is None:
            raise ConsoleError(f"no rep with email {email}; the reps come from rapport.toml")
        return rep
    reps = list(session.exec(select(Rep).where(Rep.active == True).order_by(col(Rep.id))).all())  # noqa: E712
    if not reps:
        raise ConsoleError("there are no reps yet: add them to rapport.toml ([[reps]]) or import them")
    return next((r for r in reps if is_manager(r)), reps[0])


def run_text(
    engine: Engine,
    text: str,
    *,
    as_email: str | None = None,
    options: BotOptions,
    clock: Callable[[], datetime] = utcnow,
) -> tuple[Rep, Reply]:
    """Run one command as a rep (committing what it changes) and return the reply."""
    with session_scope(engine) as session:
        rep = pick_rep(session, as_email)
        reply = run_command(Ctx(session, rep, clock(), options, origin="rapport chat", via="cli"), text)
    return rep, reply


def print_reply(console: Console, reply: Reply, names: Mapping[str, str] | None = None) -> None:
    """A reply as the rep would read it in Slack: bold, names for `<@U…>` (`names`), links."""
    read_only = reply.modal is not None and "submit" not in reply.modal  # e.g. a conversation: print it
    blocks = reply.modal["blocks"] if read_only and reply.modal else reply.blocks
    console.print(terminal_blocks(blocks, reply.text, names, console.width), highlight=False)
    if reply.modal is not None and not read_only:
        hint = FORM_HINTS.get(reply.modal.get("callback_id", ""), FORM_HINT)
        console.print(f"(In Slack this opens a form; {hint})", style="dim", highlight=False)


FORM_HINT = "in the terminal give the details on the command line, e.g. `log call jan Talked about pricing`."
# Forms the terminal cannot stand in for: what to do instead.
FORM_HINTS = {
    "add_note": "in the terminal give the text on the command line, e.g. `note jan Sent the offer`.",
    "email_reply": "the terminal sends nothing to customers: confirm the reply in Slack.",
    "privacy_confirm": "in the terminal use `rapport privacy export EMAIL` or `rapport privacy erase EMAIL`.",
}
