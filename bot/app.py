"""The Slack app (slack_bolt): listeners that ack at once and call the shared handlers.

Every listener acks within Bolt's 3 s (commands answer in the ack when the
handler is quick, else say "working on it" and post the answer after);
`process_before_response=False` runs listeners after the HTTP answer. Request
signatures and the five-minute replay window are checked by bot.http.SlackGuard,
the only way HTTP requests reach Bolt (Bolt's own check is off); event retries
are de-duplicated here by event id (store.models.SlackEvent).
"""

from __future__ import annotations

import html
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import partial
from typing import Any, Protocol

from slack_bolt import Ack, App, BoltContext, BoltResponse
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from bot.access import audit_name, refused_targets, targets_of
from bot.blocks import Block, Reply, context, section, split_blocks
from bot.cards import home_view
from bot.commands import BotOptions, Ctx, card_reply, command_writes, contact_modal, run_command
from bot.consent import CONSENT_ACTION, change_consent
from bot.deadline import Deadlines, Pending
from bot.identity import (
    RepIds,
    can_see,
    rep_with_team,
    reuse_teams,
    teams_read,
    unknown_user_text,
    visible_owner_ids,
)
from bot.interactions import (
    SNOOZES,
    FollowUpAct,
    Outcome,
    Submission,
    claim_conversation,
    complete,
    mark_answered,
    reassign_conversation,
    recategorise,
    snooze,
    submit_followup,
    submit_log_call,
    submit_log_message,
    submit_note,
)
from bot.modals import card_modal, log_message_modal
from bot.notes import card_note_modal
from bot.notify import RateLimited, SlackSender
from bot.privacy import CALLBACK as PRIVACY_CALLBACK
from bot.privacy import submit_privacy
from bot.relationship import MOVE_FIELDS, move_from_card
from bot.reply import reply_view, submit_reply
from bot.text import clip, escape, whole_number
from bot.thread import page_of, thread_view
from bot.winback import ASSIGN_ACTION, CREATE_ACTION, assign_owners, create_followups
from store.audit import OK, REFUSED, Actor, record_audit
from store.db import read_and_append, read_session, session_scope
from store.models import Rep, SlackEvent
from store.search import search_companies, search_contacts
from store.segments import SegmentParams
from store.types import utcnow

log = logging.getLogger(__name__)
ACK_BUDGET_SECONDS = 2.0  # from the request's arrival: answer in the ack if the handler is done by then (Slack allows 3 s)
LISTENER_THREADS = 16  # Bolt's default of 5 let listeners queue behind slow ones past Slack's 3 s under load
SHORTCUT_CALLBACK = "log_to_crm"
BUSY_TEXT = "Slack is busy right now and I could not look you up; try again in a minute."
Clock = Callable[[], datetime]
ConversationAct = Callable[[Session, Rep, int, str], tuple[Outcome, Rep | None]]  # id, then what follows ":"
WinbackAct = Callable[[Session, Rep, SegmentParams, datetime], Outcome]


class CardAct(Protocol):
    """A card menu's change: the contact, what follows ":" in the value, the time and the actor."""

    def __call__(self, session: Session, rep: Rep, contact_id: int, argument: str, *, now: datetime,
                 actor: Actor) -> Outcome: ...


class RapportSlack:
    """The listeners and what they share (engine, clock, options); `app` is the Bolt app."""

    def __init__(
        self,
        engine: Engine,
        *,
        client: WebClient,
        options: BotOptions,
        clock: Clock = utcnow,
    ) -> None:
        self.engine = engine
        self.client = client  # acks and views; every message goes through `sender`
        self.sender = SlackSender(client)
        self.options = options
        self.clock = clock
        self.rep_ids = RepIds(engine, self.sender.user_email)  # Slack user -> rep, for `_identify`
        self.after_reply: Callable[[], object] | None = None  # `serve`: deliver the reply now, not at the next tick
        self._slow = ThreadPoolExecutor(max_workers=4, thread_name_prefix="rapport-slow")
        # A reading command runs in its listener's thread; a writing one here, four at a time: on
        # SQLite they queue for the one write lock anyway, and sixteen waiting for it held every
        # listener and every connection of the pool (15)
        self._writing_commands = ThreadPoolExecutor(max_workers=4, thread_name_prefix="rapport-write-command")
        self._deadlines = Deadlines()  # acks "Working on…" for a command still running at its budget
        self._listeners = ThreadPoolExecutor(max_workers=LISTENER_THREADS, thread_name_prefix="rapport-listener")
        self.app = App(
            client=client,
            process_before_response=False,
            token_verification_enabled=False,  # no auth.test at start: the token is checked on first use
            # A request's signature is checked once, by bot.http.SlackGuard, before its body is read
            # (HTTP mode's only way in; it hands Bolt the body as JSON); Socket Mode's come over
            # Slack's own authenticated connection
            request_verification_enabled=False,
            raise_error_for_unhandled_request=False,
            listener_executor=self._listeners,
        )
        self._register()

    # ------------------------------------------------------------------ wiring
    def _register(self) -> None:
        app = self.app
        app.middleware(self._admit)
        app.command(self.options.command)(self._on_command)
        app.options("contact_picker")(self._on_contact_options)
        app.action("contact_open")(self._on_contact_open)
        app.action("log_call_open")(self._on_open_modal("call"))
        app.action("followup_open")(self._on_open_modal("followup"))
        app.action("note_open")(self._on_open_modal("note"))
        app.options("company_picker")(self._on_company_options)
        for field in MOVE_FIELDS:
            app.action(f"contact_{field}")(self._on_card_menu(move_from_card))
        app.action(CONSENT_ACTION)(self._on_card_menu(change_consent))
        conversation_actions: dict[str, ConversationAct] = {
            "conv_claim": lambda s, rep, cid, _: (claim_conversation(s, rep, cid, self.clock(),
                                                                                keyword_prefix=self.prefix), None),
            "conv_answered": lambda s, rep, cid, _: (mark_answered(s, rep, cid, self.clock()), None),
            "conv_recategorise": lambda s, rep, cid, category: recategorise(
                s, rep, cid, category, apply=self.options.apply_correction, categories=self.options.categories,
                now=self.clock()),
            "conv_reassign": lambda s, rep, cid, to: reassign_conversation(
                s, rep, cid, whole_number(to) or 0, self.clock(), keyword_prefix=self.prefix),
        }
        for action_id, act in conversation_actions.items():
            app.action(action_id)(self._on_conversation_action(act))
        app.action("followup_done")(self._on_followup_action(complete))
        app.action(CREATE_ACTION)(self._on_winback_action(create_followups))
        app.action(ASSIGN_ACTION)(self._on_winback_action(assign_owners))
        for choice in SNOOZES:
            app.action(f"followup_snooze_{choice}")(self._on_followup_action(partial(_snooze, choice)))
        app.view("log_call")(self._on_submission(submit_log_call))
        app.view("add_followup")(self._on_submission(submit_followup))
        app.view("log_message")(self._on_submission(submit_log_message))
        app.view("add_note")(self._on_submission(submit_note))
        app.action("conv_thread")(self._on_view_action(lambda s, rep, value: thread_view(s, rep, whole_number(value) or 0)))
        app.action("conv_reply")(self._on_view_action(lambda s, rep, value: reply_view(
            s, rep, whole_number(value) or 0, self.options.reply)))
        app.action("thread_page")(self._on_thread_page)
        app.view("email_reply")(self._on_submission(partial(submit_reply, options=self.options.reply),
                                                    then=lambda: self.after_reply and self.after_reply()))
        app.view(PRIVACY_CALLBACK)(self._on_privacy_confirm)
        app.shortcut(SHORTCUT_CALLBACK)(self._on_log_shortcut)
        app.event("app_home_opened")(self._on_home_opened)
        app.event("message")(self._on_direct_message)
        app.error(self._on_error)

    def close(self) -> None:
        self._slow.shutdown(wait=False, cancel_futures=True)
        self._writing_commands.shutdown(wait=False, cancel_futures=True)
        self._deadlines.stop()
        self._listeners.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ middleware
    def _admit(self, body: dict[str, Any], context: BoltContext, next: Callable[[], BoltResponse]) -> BoltResponse:
        """Every request passes these steps in order; the first that answers it ends it. One Bolt
        middleware, not five: Bolt builds each middleware's arguments anew (issue 15)."""
        for step in (self._stamp_arrival, _skip_other_messages, self._dedupe_events, self._identify,
                     self._authorise):
            if (answer := step(body, context)) is not None:
                return answer
        return next()

    def _stamp_arrival(self, body: dict[str, Any], context: BoltContext) -> None:
        """Slack's 3 s run from the request, not from when a listener thread became free: a slash
        command's deadline is set here, in the request's own thread, so one still waiting for a
        listener is acked "Working on…" at its budget too (a refusal by a later step leaves
        that ack to nobody: the request was already answered)."""
        context["received_at"] = arrived = time.monotonic()
        if body.get("command"):
            # Slack sends &, < and > escaped: undo it, so `find AT&T` searches for AT&T
            text = context["rapport_command_text"] = html.unescape(str(body.get("text") or ""))
            ack = context.ack
            context["rapport_deadline"] = self._deadlines.watch(
                arrived + ACK_BUDGET_SECONDS,
                lambda: ack(response_type="ephemeral", text=f"Working on `{escape(clip(text, 60))}`…"))

    def _dedupe_events(self, body: dict[str, Any], _context: BoltContext) -> BoltResponse | None:
        """Slack retries events it thinks were not received: act on each event id once."""
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        if event_id:
            try:
                with session_scope(self.engine) as session:
                    session.add(SlackEvent(event_id=str(event_id)))
            except IntegrityError:
                log.info("event %s already handled; ignoring the retry", event_id)
                return BoltResponse(status=200, body="")
        return None

    def _identify(self, body: dict[str, Any], context: BoltContext) -> BoltResponse | None:
        """Every request from a person: their rep, once, in `context["rep_id"]`; an unknown user
        is answered here, so no listener runs without a rep."""
        user_id = _user(body) or str((body.get("event") or {}).get("user") or "")
        if not user_id:
            return None
        try:
            rep_id = self.rep_ids(user_id)
        except RateLimited:
            rep_id, text = None, BUSY_TEXT
        else:
            text = unknown_user_text(self.options.command)
        if rep_id is not None:
            context["rep_id"] = rep_id
            return None
        if body.get("command"):
            return _json_response({"response_type": "ephemeral", "text": text, "blocks": [section(text)]})
        if body.get("type") == "block_suggestion":
            return _json_response({"options": []})
        if body.get("type") in ("block_actions", "message_action", "view_submission"):
            self._slow.submit(self.sender.tell, user_id, text, channel=_channel(body))
        elif is_direct_message(body.get("event") or {}):
            self._slow.submit(self.sender.post, str(body["event"].get("channel") or user_id), text, [section(text)])
        return BoltResponse(status=200, body="")

    def _authorise(self, body: dict[str, Any], context: BoltContext) -> BoltResponse | None:
        """Every button and form, once: each record its payload names must be one the rep may act
        on (bot.access); a crafted id is refused here, before any listener, and audited."""
        if body.get("type") not in ("block_actions", "view_submission") or "rep_id" not in context:
            return None
        what, targets = targets_of(body)
        if not targets:
            return None
        with read_and_append(self.engine) as session:  # a refusal's audit entries are written after the read
            rep = self._rep(session, context)
            refused = refused_targets(session, rep, targets)
            # the listener's session takes the rep and their team from here, not from the database
            # again: a click's statements are most of its CPU (issue 15)
            context["rapport_rep"], context["rapport_teams"] = rep, teams_read(session)
            actor = Actor.slack(rep.email, _user(body), _channel(body))
            for target in refused:
                record_audit(session, actor, what, target_kind=target.kind, target_id=target.id,
                             contact_id=target.id if target.kind == "contact" else None, outcome=REFUSED,
                             at=self.clock())
        if not refused:
            return None
        log.warning("refused %s by %s on %s", what, actor.name, ", ".join(f"{t.kind} {t.id}" for t in refused))
        text = "That is not yours to see or change."
        view_state = ((body.get("view") or {}).get("state") or {}).get("values") or {}
        # a form stays open with the refusal under the field that named the record (else its first field)
        named = [name for name in ("contact", "company", "about") if name in view_state] + list(view_state)
        field = named[0] if named else None
        if body.get("type") == "view_submission" and field is not None:
            return _json_response({"response_action": "errors", "errors": {field: text}})
        self._slow.submit(self.sender.tell, _user(body), text, [section(text)], channel=_channel(body))
        return BoltResponse(status=200, body="")

    # ------------------------------------------------------------------ helpers
    def _ctx(self, session: Session, context: BoltContext, body: dict[str, Any]) -> Ctx:
        origin = f"slack:{_user(body)}" + (f" in {channel}" if (channel := _channel(body)) else "")
        return Ctx(session, self._rep(session, context), self.clock(), self.options, origin=origin)

    @property
    def prefix(self) -> str:
        return self.options.keyword_prefix

    def _rep(self, session: Session, context: BoltContext) -> Rep:
        """The request's rep in `session`: as `_authorise` read them moments ago, else read now."""
        if (known := context.get("rapport_rep")) is not None:
            reuse_teams(session, context.get("rapport_teams") or {})
            return session.merge(known, load=False)
        rep = rep_with_team(session, context["rep_id"])
        assert rep is not None  # _identify found it moments ago; reps are deactivated, never deleted
        return rep

    def publish_home(self, rep_ids: set[int]) -> None:
        """Refresh the App Home of these reps: rendered in a read session, published after it."""
        with read_session(self.engine) as session:
            reps = [rep for rep in map(partial(session.get, Rep), rep_ids) if rep is not None and rep.slack_user_id]
            views = [(rep.email, str(rep.slack_user_id), home_view(session, rep, now=self.clock())) for rep in reps]
        for email, user_id, view in views:
            try:
                self.client.views_publish(user_id=user_id, view=view)
            except SlackApiError as exc:
                log.warning("views.publish for %s failed: %s", email, exc.response.get("error"))

    # ------------------------------------------------------------------ commands
    def _on_command(self, ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
        text, pending = context["rapport_command_text"], context["rapport_deadline"]
        if command_writes(text):
            self._writing_commands.submit(self._run_and_answer, pending, ack, context, body, text)
        else:
            self._run_and_answer(pending, ack, context, body, text)

    def _run_and_answer(self, pending: Pending, ack: Ack, context: BoltContext, body: dict[str, Any],
                        text: str) -> None:
        """Runs the command, then answers in the ack if its deadline has not passed, else by message."""
        user_id = str(body.get("user_id") or "")
        try:
            reply = self._run_command(context, body, text)
        except Exception:
            log.exception("command %r failed", clip(text, 60))
            failed = "Sorry, that failed; the error has been logged."
            if self._deadlines.claim(pending):
                ack(response_type="ephemeral", text=failed)
            else:
                self.sender.tell(user_id, failed, channel=body.get("channel_id"))
            return
        try:
            if self._deadlines.claim(pending):
                self._answer(ack, body, context["rep_id"], reply)
                return
            self.sender.tell(user_id, reply.text, reply.blocks, channel=body.get("channel_id"))
            if reply.changed_home:
                self.publish_home({context["rep_id"]})
        except Exception as error:  # a writing command's pool thread has no one else to report it
            self._on_error(error, body)

    def _run_command(self, context: BoltContext, body: dict[str, Any], text: str) -> Reply:
        with (session_scope if command_writes(text) else read_and_append)(self.engine) as session:
            return run_command(self._ctx(session, context, body), text)

    def _answer(self, ack: Ack, body: dict[str, Any], rep_id: int, reply: Reply) -> None:
        if reply.modal is not None:
            self.client.views_open(trigger_id=body["trigger_id"], view=reply.modal)
            ack()
            return
        parts = split_blocks(reply.blocks)
        ack(response_type="ephemeral", text=reply.text, blocks=parts[0])
        for part in parts[1:]:
            self.sender.tell(str(body.get("user_id")), reply.text, part, channel=body.get("channel_id"))
        if reply.changed_home:
            self.publish_home({rep_id})

    # ------------------------------------------------------------------ type-ahead and cards
    def _on_contact_options(self, ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
        query = str(body.get("value") or "")
        if len(query.strip()) < 2:
            ack(options=[])
            return
        with read_session(self.engine) as session:
            visible = visible_owner_ids(session, self._rep(session, context))
            hits = search_contacts(session, query, limit=20, visible_owner_ids=visible)
        ack(options=[{"text": {"type": "plain_text", "text": clip(h.name + (f" ({h.company})" if h.company else ""), 75)},
                      "value": str(h.contact_id)} for h in hits])

    def _on_contact_open(self, ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
        ack()
        value = _action_value(body)
        with read_and_append(self.engine) as session:  # the view's audit entry is written after the read
            reply = card_reply(self._ctx(session, context, body), whole_number(value) or 0)
        self.client.views_open(trigger_id=body["trigger_id"], view=card_modal(reply.blocks))

    def _on_company_options(self, ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
        query = str(body.get("value") or "")
        if len(query.strip()) < 2:
            ack(options=[])
            return
        with read_session(self.engine) as session:
            rep = self._rep(session, context)
            hits = [h for h in search_companies(session, query, limit=20) if can_see(session, rep, h.owner_id)]
        ack(options=[{"text": {"type": "plain_text", "text": clip(h.name, 75)}, "value": str(h.company_id)}
                     for h in hits])

    def _on_card_menu(self, act: CardAct) -> Callable[..., None]:
        """A card's menu (kind, stage, consent; value `<contact id>:<argument>`): act, then show the
        card as it is now. The act audits what it changed or refused."""

        def on_choice(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
            ack()
            contact_text, _, argument = _action_value(body).partition(":")
            contact_id = whole_number(contact_text) or 0
            with session_scope(self.engine) as session:
                ctx = self._ctx(session, context, body)
                outcome = act(session, ctx.rep, contact_id, argument, now=ctx.now, actor=ctx.actor)
                card = card_reply(ctx, contact_id).blocks if outcome.ok else []
            view = body.get("view") or {}
            if outcome.ok and (body.get("container") or {}).get("type") == "view" and view.get("id"):
                self.client.views_update(view_id=str(view["id"]), view=_card_with_status(card, outcome.text))
                return
            self._show_outcome(body, outcome, keep=lambda block: block.get("block_id") != "rapport_status",
                               blocks=card or None)

        return on_choice

    def _on_open_modal(self, kind: str) -> Callable[..., None]:
        def open_modal(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
            ack()
            value = _action_value(body)
            with read_session(self.engine) as session:
                ctx = self._ctx(session, context, body)
                view = (card_note_modal(ctx, whole_number(value)) if kind == "note"
                        else contact_modal(ctx, whole_number(value), kind))
            self._open_or_push(body, view)

        return open_modal

    def _on_view_action(self, build: Callable[[Session, Rep, str], dict[str, Any]]) -> Callable[..., None]:
        """A button that opens a read-only modal (a conversation, a reply to confirm): rendered in a
        read session, opened (or pushed over the modal it was clicked in) after it."""

        def open_view(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
            ack()
            with read_session(self.engine) as session:
                view = build(session, self._rep(session, context), _action_value(body))
            self._open_or_push(body, view)

        return open_view

    def _on_thread_page(self, ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
        ack()
        conversation_id, page = page_of(_action_value(body))
        with read_session(self.engine) as session:
            view = thread_view(session, self._rep(session, context), conversation_id, page)
        self.client.views_update(view_id=str((body.get("view") or {}).get("id") or ""), view=view)

    def _open_or_push(self, body: dict[str, Any], view: dict[str, Any]) -> None:
        if (body.get("container") or {}).get("type") == "view" and (body.get("view") or {}).get("type") == "modal":
            self.client.views_push(trigger_id=body["trigger_id"], view=view)
        else:
            self.client.views_open(trigger_id=body["trigger_id"], view=view)

    # ------------------------------------------------------------------ assignment DM buttons
    def _on_conversation_action(self, act: ConversationAct) -> Callable[..., None]:
        def on_action(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
            ack()
            conversation_text, _, argument = _action_value(body).partition(":")
            conversation_id = whole_number(conversation_text) or 0  # 0: "no longer exists"
            with session_scope(self.engine) as session:
                ctx = self._ctx(session, context, body)
                outcome, new_owner = act(session, ctx.rep, conversation_id, argument)
                record_audit(session, ctx.actor, audit_name(_action_id(body)), target_kind="conversation",
                             target_id=conversation_id, outcome=OK if outcome.ok else REFUSED,
                             detail={"new_owner_id": new_owner.id} if new_owner is not None else None, at=ctx.now)
                changed = {context["rep_id"]} if outcome.ok else set()
                changed |= {new_owner.id} if new_owner is not None and new_owner.id is not None else set()
            self._show_outcome(body, outcome, keep=lambda block: block.get("block_id") != "rapport_status")
            if changed:
                self.publish_home(changed)

        return on_action

    def _show_outcome(self, body: dict[str, Any], outcome: Outcome, keep: Callable[[Block], bool],
                      blocks: list[Block] | None = None) -> None:
        """Success: a status line on the clicked message (with the blocks `keep` keeps, or `blocks`
        instead of the message's); refusal: a private note to the clicker. A click elsewhere (App
        Home) shows in the refreshed Home."""
        container, message = body.get("container") or {}, body.get("message") or {}
        if outcome.ok and container.get("type") == "message" and message:
            status = {**context(outcome.text), "block_id": "rapport_status"}
            kept = blocks if blocks is not None else message.get("blocks") or []
            blocks = [*[b for b in kept if keep(b)][:49], status]  # Slack allows 50
            if self.sender.update(str(container.get("channel_id") or _channel(body)), str(message.get("ts")),
                                  message.get("text") or outcome.text, blocks):
                return
        if not outcome.ok or container.get("type") == "message":
            self.sender.tell(_user(body), outcome.text, [section(outcome.text)], channel=_channel(body))

    # ------------------------------------------------------------------ reminder buttons
    def _on_followup_action(self, act: FollowUpAct) -> Callable[..., None]:
        def on_action(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
            ack()
            value = _action_value(body)
            with session_scope(self.engine) as session:
                outcome = act(session, self._rep(session, context), whole_number(value) or 0, self.clock())
            # the buttons go, so that a reminder cannot be clicked twice by mistake
            self._show_outcome(body, outcome, keep=lambda block: block.get("type") != "actions")
            if outcome.ok:
                self.publish_home({context["rep_id"]})

        return on_action

    # ------------------------------------------------------------------ win-back buttons
    def _on_winback_action(self, act: WinbackAct) -> Callable[..., None]:
        def on_action(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
            ack()
            params = self.options.segment_params or SegmentParams()
            with session_scope(self.engine) as session:
                outcome = act(session, self._rep(session, context), params, self.clock())
            self._show_outcome(body, outcome, keep=lambda block: block.get("block_id") != "rapport_status")
            if outcome.ok:
                self.publish_home({context["rep_id"]})

        return on_action

    # ------------------------------------------------------------------ modals
    def _on_submission(self, submit: Callable[[Session, Rep, dict[str, Any], datetime], Submission],
                       then: Callable[[], object] | None = None) -> Callable[..., None]:
        def on_submit(ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext) -> None:
            with session_scope(self.engine) as session:
                result = submit(session, self._rep(session, context), view, self.clock())
                if result.errors:
                    session.rollback()
            if result.errors:
                ack(response_action="errors", errors=result.errors)
                return
            ack()
            if then is not None:
                self._slow.submit(then)
            self.sender.tell(_user(body), result.text, [section(result.text)])
            self.publish_home({context["rep_id"]})

        return on_submit

    def _on_privacy_confirm(self, ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext) -> None:
        with session_scope(self.engine) as session:  # done before the ack: the modal closes when it is done
            ctx = self._ctx(session, context, body)
            result = submit_privacy(session, ctx.rep, view, ctx.now, actor=ctx.actor,
                                    privacy_key=self.options.privacy_key)
        ack()
        self.sender.tell(_user(body), result.text, [section(result.text)])

    def _on_log_shortcut(self, ack: Ack, body: dict[str, Any]) -> None:
        ack()
        channel = _channel(body)
        message = body.get("message") or {}
        permalink = self.sender.permalink(str(channel), str(message.get("ts")))
        self.client.views_open(trigger_id=body["trigger_id"], view=log_message_modal(html.unescape(str(message.get("text") or "")), permalink))

    # ------------------------------------------------------------------ events
    def _on_home_opened(self, event: dict[str, Any], context: BoltContext) -> None:
        if event.get("tab", "home") == "home":
            self.publish_home({context["rep_id"]})

    def _on_direct_message(self, event: dict[str, Any], context: BoltContext) -> None:
        """A message in the bot's DM runs like `/crm TEXT` (a leading `/crm` is allowed); the answer
        is posted in that DM. A form needs a slash command or a button (Slack gives no trigger here)."""
        text = html.unescape(str(event.get("text") or "")).strip()
        if text.lower().split(" ", 1)[0] in (self.options.command, self.options.command.lstrip("/")):
            text = text.split(" ", 1)[1] if " " in text else ""
        origin = {"user_id": event.get("user"), "channel_id": event.get("channel")}
        reply = self._run_command(context, origin, text)
        if reply.modal is not None:
            hint = f"That opens a form: type `{self.options.command} {escape(clip(text, 60))}` instead."
            reply = Reply(hint, [section(hint)])
        self.sender.post(str(event.get("channel")), reply.text, reply.blocks)
        if reply.changed_home:
            self.publish_home({context["rep_id"]})

    def _on_error(self, error: Exception, body: dict[str, Any]) -> None:
        log.error("Slack request failed: %s: %s", type(error).__name__, error, exc_info=error)
        user_id = _user(body) or str(body.get("user_id") or "")
        if user_id:
            try:
                self.sender.tell(user_id, "Sorry, something went wrong; the error has been logged.", channel=_channel(body))
            except SlackApiError:
                log.warning("could not tell %s about the error", user_id)


def is_direct_message(event: dict[str, Any]) -> bool:
    """A person's new message in a DM with the bot (`message.im`): no bot, no edit, no other subtype."""
    return (event.get("type") == "message" and event.get("channel_type") == "im" and not event.get("subtype")
            and not event.get("bot_id") and bool(event.get("user")))


def _skip_other_messages(body: dict[str, Any], _context: BoltContext) -> BoltResponse | None:
    """Of `message` events only a person's new message in the bot's DM is a command: the bot's own
    replies, edits, deletions and other subtypes are answered 200 before anything else runs."""
    event = body.get("event") or {}
    if body.get("type") == "event_callback" and event.get("type") == "message" and not is_direct_message(event):
        return BoltResponse(status=200, body="")
    return None


def _user(body: dict[str, Any]) -> str:
    user = body.get("user")
    if isinstance(user, dict):
        return str(user.get("id") or "")
    return str(body.get("user_id") or "")


def _channel(body: dict[str, Any]) -> str | None:
    channel = body.get("channel")
    if isinstance(channel, dict):
        return str(channel.get("id") or "") or None
    return str(body.get("channel_id") or "") or None


def _action_id(body: dict[str, Any]) -> str:
    return str((body.get("actions") or [{}])[0].get("action_id") or "action")


def _action_value(body: dict[str, Any]) -> str:
    action = (body.get("actions") or [{}])[0]
    selected = action.get("selected_option")
    if isinstance(selected, dict):
        return str(selected.get("value") or "")
    return str(action.get("value") or "")


def _card_with_status(card: list[Block], text: str) -> dict[str, Any]:
    return card_modal([*card, context(text)])


def _snooze(choice: str, session: Session, rep: Rep, followup_id: int, now: datetime) -> Outcome:
    return snooze(session, rep, followup_id, choice, now)


def _json_response(answer: dict[str, Any]) -> BoltResponse:
    return BoltResponse(status=200, body=json.dumps(answer), headers={"content-type": "application/json"})


def build_app(
    engine: Engine,
    *,
    client: WebClient,
    options: BotOptions,
    clock: Clock = utcnow,
) -> RapportSlack:
    """The Slack app over `engine`; `client` carries the bot token and SLACK_API_URL."""
    return RapportSlack(engine, client=client, options=options, clock=clock)
