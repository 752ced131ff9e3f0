"""Read-only pages on `rapport serve`'s HTTP endpoint: a conversation, opened from a digest's link.

A link carries the conversation id and a signature (HMAC-SHA256 under a key derived
from SLACK_SIGNING_SECRET), so only links Rapport wrote open a page; the page shows
the conversation and changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import html
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlencode

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.http import respond
from bot.text import whole_number
from store.db import read_session
from store.models import Contact, Conversation, Message, Rep

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

CONVERSATION_PATH = "/conversation"
MAX_MESSAGES = 50


def page_key(signing_secret: str) -> bytes:
    """The key that signs page links: derived, so a link never reveals the Slack secret."""
    return hmac.new(signing_secret.encode(), b"rapport conversation pages", hashlib.sha256).digest()


def signature(key: bytes, conversation_id: int) -> str:
    return hmac.new(key, f"conversation:{conversation_id}".encode(), hashlib.sha256).hexdigest()[:16]  # 64 bits: a link, not a key


def conversation_url(base_url: str, key: bytes, conversation_id: int) -> str:
    query = urlencode({"id": conversation_id, "sig": signature(key, conversation_id)})
    return f"{base_url.rstrip('/')}{CONVERSATION_PATH}?{query}"


class ConversationPage:
    """GET /conversation?id=N&sig=S: the conversation's subject, people and messages, read-only."""

    def __init__(self, engine: Engine, key: bytes) -> None:
        self._engine = engine
        self._key = key

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return respond(start_response, 405, "use GET")
        query = parse_qs(str(environ.get("QUERY_STRING") or ""), max_num_fields=4)
        conversation_id = whole_number((query.get("id") or [""])[0])
        given = (query.get("sig") or [""])[0]
        if conversation_id is None or not hmac.compare_digest(given, signature(self._key, conversation_id)):
            return respond(start_response, 403, "this link is not valid")
        page = self._render(conversation_id)
        if page is None:
            return respond(start_response, 404, "no such conversation")
        body = page.encode()
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body))),
                                  ("Cache-Control", "no-store"), ("X-Robots-Tag", "noindex")])
        return [body]

    def _render(self, conversation_id: int) -> str | None:
        e = html.escape
        with read_session(self._engine) as session:
            conversation = session.get(Conversation, conversation_id)
            if conversation is None:
                return None
            contact = session.get(Contact, conversation.contact_id) if conversation.contact_id else None
            owner = session.get(Rep, conversation.owner_id) if conversation.owner_id else None
            messages = session.exec(select(Message).where(Message.conversation_id == conversation_id)
                                    .order_by(col(Message.received_at)).limit(MAX_MESSAGES)).all()
            rows = "".join(
                f'<div style="border-top:1px solid #8884;padding:8px 0">'
                f'<div style="font-size:13px;color:#888">{"From the customer" if m.direction == "inbound" else "Our reply"}'
                f" · {m.received_at:%d %b %Y %H:%M} UTC</div>"
                f'<div style="white-space:pre-wrap;overflow-wrap:anywhere">{e((m.new_text or m.text or "")[:4000])}</div>'
                f"</div>"
                for m in messages
            )
            facts = (f"{e(contact.name) if contact else 'Unknown sender'} · owner "
                     f"{e(owner.name) if owner else 'none (queue ' + e(conversation.queue or '?') + ')'}"
                     f" · {e(conversation.status)}")
            subject = e(conversation.subject or "(no subject)")
        return (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<meta name="color-scheme" content="light dark">'
            f"<title>{subject}</title></head>"
            '<body style="margin:0"><div style="max-width:600px;margin:0 auto;padding:16px;'
            'font-family:-apple-system,Segoe UI,Roboto,Arial,sans-serif;font-size:15px;line-height:1.4">'
            f'<h1 style="font-size:20px;margin:0 0 4px;overflow-wrap:anywhere">{subject}</h1>'
            f'<p style="margin:0 0 12px;color:#888">{facts}</p>{rows}'
            '<p style="font-size:13px;color:#888">Read-only. Claim, answer or reassign it in Slack.</p>'
            "</div></body></html>"
        )


__all__ = ["CONVERSATION_PATH", "ConversationPage", "conversation_url", "page_key", "signature"]
