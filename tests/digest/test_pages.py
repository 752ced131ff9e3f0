"""The read-only conversation page a digest links to, served by waitress as `rapport serve` does."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from bot.http import HttpFront, HttpServer
from bot.pages import CONVERSATION_PATH, ConversationPage, conversation_url, page_key
from tests.digest.known_store import Known

KEY = page_key("signing-secret")


@pytest.fixture
def server(engine: Engine, known: Known) -> Iterator[str]:
    front = HttpFront()
    front.add(CONVERSATION_PATH, ConversationPage(engine, KEY))
    http = HttpServer(front, host="127.0.0.1", port=0)
    http.start()
    try:
        yield f"http://127.0.0.1:{http.port}"
    finally:
        http.stop()


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_a_signed_link_opens_the_conversation_read_only(server: str, known: Known) -> None:
    c3 = known.conversations["c3"]
    assert c3.id is not None
    status, page = _get(conversation_url(server, KEY, c3.id))
    assert status == 200
    assert "conversation c3" in page and "Cleo Small" in page and "Alice Andersson" in page
    assert '<meta name="viewport"' in page


def test_a_link_rapport_did_not_write_opens_nothing(server: str, known: Known) -> None:
    c3, c1 = known.conversations["c3"], known.conversations["c1"]
    assert c3.id is not None and c1.id is not None
    forged = conversation_url(server, KEY, c1.id).replace(f"id={c1.id}", f"id={c3.id}")
    assert _get(forged)[0] == 403
    assert _get(conversation_url(server, page_key("another secret"), c3.id))[0] == 403
    assert _get(f"{server}{CONVERSATION_PATH}?id=99999999999999999999&sig=x")[0] == 403
    assert _get(conversation_url(server, KEY, 424242))[0] == 404
