"""`/crm segment ...` blocks: owners mentioned, limits kept, unknown names answered politely."""

from __future__ import annotations

import json

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.segments import segment_blocks
from store.segments import SegmentParams
from tests.digest.known_store import NOW, Known

PARAMS = SegmentParams(top_n=3)


def test_top_segment_lists_owners(engine: Engine, known: Known) -> None:
    with Session(engine) as session:
        blocks = segment_blocks(session, "top", PARAMS, now=NOW)

    assert blocks[0]["type"] == "header"
    rows = [block["text"]["text"] for block in blocks if block["type"] == "section"]
    assert rows[0].startswith("1. *Ada Big*: €5,920.00") and rows[0].endswith("<@UALICE>")
    assert rows[1].endswith("Bob Berg")  # no Slack id: the name
    assert len(rows) == 3


def test_lapsed_and_quiet_segments(engine: Engine, known: Known) -> None:
    with Session(engine) as session:
        lapsed = json.dumps(segment_blocks(session, " Lapsed ", PARAMS, now=NOW))
        stalled = json.dumps(segment_blocks(session, "stalled", PARAMS, now=NOW))

    assert "Lotta Bigger" in lapsed and "Lia Edge" not in lapsed
    assert "Pia Stalled" in stalled and "Per Busy" not in stalled


def test_unknown_segment_says_which_exist(engine: Engine, known: Known) -> None:
    with Session(engine) as session:
        [block] = segment_blocks(session, "vip", PARAMS, now=NOW)
    assert "unknown segment 'vip'" in block["text"]["text"]
    assert "top, lapsed, stalled, partners" in block["text"]["text"]


def test_lapsed_segment_in_slack_calls_its_value_lifetime(engine: Engine, known: Known) -> None:
    """Regression: "so far" beside the top segment's 12-month values read as the same idea."""
    with Session(engine) as session:
        blocks = segment_blocks(session, "lapsed", PARAMS, now=NOW)
    lotta = next(b["text"]["text"] for b in blocks if "Lotta Bigger" in b.get("text", {}).get("text", ""))
    assert "€3,000.00 lifetime" in lotta


def test_top_segment_title_says_the_configured_window(engine: Engine, known: Known) -> None:
    """The title follows rapport.toml's top_months, in words: never "last 1 months"."""
    with Session(engine) as session:
        [header, *_] = segment_blocks(session, "top", SegmentParams(top_months=1), now=NOW)
    assert header["text"]["text"] == "Top customers (order value, last 1 month)"
