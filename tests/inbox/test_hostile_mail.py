"""Hostile mail through the whole ingest pipeline into a real store (issue 15, "hostile mail in CI").

Generated MIME that mailers, spammers and broken gateways send: deep nesting, missing and
broken boundaries, unknown and lying charsets, odd transfer encodings, header bombs, NUL
bytes and huge parts. Whatever arrives, `process_batch` raises nothing, stores every mail
exactly once (also when the batch is read again, at the same or a new position), and its
memory stays bounded.
"""

from __future__ import annotations

import base64
import itertools
import quopri
import tracemalloc

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import select

from inbox.options import IngestOptions
from inbox.pipeline import Checkpoint, FetchedMessage, process_batch
from store.db import session_scope
from store.models import Message
from tests.inbox.helpers import KeywordClassifier

MAILBOX = "support@shop.example"
HUGE_PART_BYTES = 3_000_000
# Peak bytes a batch may allocate: the parsed text is capped, attachments are never decoded,
# so a few copies of the raw mail plus the store's working set is plenty.
MEMORY_BOUND = 48_000_000

CHARSETS = ["utf-8", "iso-8859-1", "windows-1250", "koi8-r", "gb2312", "utf-16", "utf-7", "x-unknown",
            "unicode-1-1-utf-8", "", '"', "utf-8\x00", "../../etc/passwd", "a" * 300]
ENCODINGS = ["7bit", "8bit", "binary", "base64", "quoted-printable", "x-uuencode", "BASE64 ", "bogus", ""]
TEXT_TYPES = ["text/plain", "text/html", "TEXT/PLAIN", "text/enriched", "message/delivery-status",
              "application/octet-stream", "image/png", "text", "/", ""]
_cases = itertools.count()

payloads = st.one_of(
    st.binary(max_size=400),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"\x00" * 50, b"<html><body><p>Hi<script>x</script>" * 20, b"=?utf-8?B?w6k=?= =\r\n=XY",
                     b"begin 644 a.txt\r\n#86)C\r\n`\r\nend\r\n", b"\xff\xfe\x00h\x00i", b"\r" * 100]),
)


def _encode(body: bytes, encoding: str) -> bytes:
    name = encoding.strip().lower()
    if name == "base64":
        return base64.encodebytes(body)
    if name == "quoted-printable":
        return quopri.encodestring(body)
    return body


@st.composite
def leaf_parts(draw: st.DrawFn) -> bytes:
    charset = draw(st.sampled_from(CHARSETS))
    encoding = draw(st.sampled_from(ENCODINGS))
    content_type = draw(st.sampled_from(TEXT_TYPES))
    body = draw(payloads)
    if draw(st.integers(0, 30)) == 0:  # now and then a huge part
        body = body[:64] * (HUGE_PART_BYTES // max(1, len(body[:64])))
    if draw(st.booleans()):
        body = _encode(body, encoding)
    headers = f"Content-Type: {content_type}; charset={charset}\r\nContent-Transfer-Encoding: {encoding}\r\n"
    if draw(st.booleans()):
        headers += 'Content-Disposition: attachment; filename*=utf-8\'\'%E2%9C%93%00.bin; filename="x\r\n'
    return headers.encode("utf-8", "surrogateescape") + b"\r\n" + body


def _multipart(children: list[bytes], boundary: bytes, style: str) -> bytes:
    declared = {"missing": b"", "mismatch": b"other" + boundary, "empty": b'""'}.get(style, boundary)
    header = b"Content-Type: multipart/mixed; boundary=" + declared + b"\r\n\r\npreamble\r\n"
    parts = b"".join(b"--" + boundary + b"\r\n" + child + b"\r\n" for child in children)
    closing = b"" if style == "unclosed" else b"--" + boundary + b"--\r\n"
    return header + parts + closing


@st.composite
def mime_trees(draw: st.DrawFn, depth: int = 0) -> bytes:
    if depth >= 3 or draw(st.integers(0, 2)) == 0:
        return draw(leaf_parts())
    children = [draw(mime_trees(depth + 1)) for _ in range(draw(st.integers(0, 3)))]
    boundary = draw(st.sampled_from([b"b1", b"=_x", b"-" * 70, b"a b", b"\xff", b"b1"]))  # shared names too
    style = draw(st.sampled_from(["ok", "ok", "missing", "mismatch", "empty", "unclosed"]))
    return _multipart(children, boundary + str(depth).encode(), style)


def _deep(levels: int) -> bytes:
    """Nesting far past the parser's depth limit."""
    body = b"Content-Type: text/plain\r\n\r\nthe bottom"
    for level in range(levels):
        body = _multipart([body], b"deep%d" % level, "ok")
    return body


@st.composite
def header_blocks(draw: st.DrawFn) -> bytes:
    case = next(_cases)  # every generated mail differs from every other one, in its subject
    lines = []
    if draw(st.booleans()):
        lines.append(b"Message-ID: <hostile-%d@example.test>" % case)
    elif draw(st.booleans()):
        lines.append(draw(st.sampled_from([b"Message-ID:", b"Message-ID: <>", b"Message-ID: <a@b> <c@d>",
                                           b"Message-ID: <" + b"x" * 5000 + b"@y>", b"Message-ID: \x00<n@x>"])))
    lines.append(b"From: " + draw(st.sampled_from([b"a@customer.example", b"=?utf-8?Q?=00?= <b@c.example>",
                                                    b"<>", b"\"unclosed <x@y.example>", b"@@@", b""])))
    lines.append(b"Subject: " + draw(st.binary(max_size=100)).replace(b"\n", b" ") + b" #%d" % case)
    lines.append(b"Date: " + draw(st.sampled_from([b"Mon, 23 Nov 2026 10:00:00 +0000", b"yesterday",
                                                   b"Fri, 31 Feb 10000 99:99:99 +9999", b""])))
    bomb = draw(st.sampled_from(["none", "none", "many", "long", "folded", "nul"]))
    if bomb == "many":
        lines += [b"Received: from relay%d by mx" % i for i in range(3000)]
    elif bomb == "long":
        lines.append(b"X-Long: " + b"a" * 300_000)
    elif bomb == "folded":
        lines.append(b"Subject: start" + b"\r\n continued" * 5000)
    elif bomb == "nul":
        lines.append(b"X-\x00: \x00\x00" + b"\x00" * 1000)
    lines.append(b"MIME-Version: 1.0")
    return b"\r\n".join(lines) + b"\r\n"


@st.composite
def hostile_mails(draw: st.DrawFn) -> bytes:
    headers = draw(header_blocks())
    body = _deep(draw(st.integers(13, 60))) if draw(st.integers(0, 15)) == 0 else draw(mime_trees())
    line_ends = draw(st.sampled_from(["crlf", "crlf", "lf", "cr"]))
    raw = headers + body
    if line_ends == "lf":
        raw = raw.replace(b"\r\n", b"\n")
    elif line_ends == "cr":
        raw = raw.replace(b"\r\n", b"\r")
    return raw


def _stored(engine: Engine) -> int:
    with session_scope(engine) as session:
        return int(session.exec(select(func.count()).select_from(Message)).one())


def _ingest(engine: Engine, raws: list[bytes], uidvalidity: int, first_uid: int) -> int:
    fetched = [FetchedMessage(raw, MAILBOX, "INBOX", uidvalidity, first_uid + i) for i, raw in enumerate(raws)]
    checkpoint = Checkpoint(MAILBOX, "INBOX", uidvalidity, first_uid + len(raws) - 1)
    with session_scope(engine) as session:
        result = process_batch(session, fetched, checkpoint=checkpoint, options=IngestOptions(),
                               classifier=KeywordClassifier())
    return result.new


_uids = itertools.count(1, 100)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(st.lists(hostile_mails(), min_size=1, max_size=4))
def test_hostile_mail_is_stored_once_without_escaping_errors_in_bounded_memory(
    engine: Engine, raws: list[bytes]
) -> None:
    before = _stored(engine)
    uid = next(_uids)
    tracemalloc.start()
    try:
        new = _ingest(engine, raws, uidvalidity=1, first_uid=uid)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert new == len(raws) == _stored(engine) - before
    assert peak < MEMORY_BOUND + 4 * sum(len(raw) for raw in raws)
    assert _ingest(engine, raws, uidvalidity=1, first_uid=uid) == 0  # the same positions again
    assert _ingest(engine, raws, uidvalidity=2, first_uid=uid) == 0  # the folder re-created
    assert _stored(engine) - before == len(raws)
