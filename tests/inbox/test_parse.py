"""Behaviour of inbox.parse on realistic .eml fixtures, hostile bytes and a 30 MB mail."""

from __future__ import annotations

import base64
import re
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inbox.parse import (
    MAX_TEXT_CHARS,
    ParsedMessage,
    _delimiter_lines,
    decode_rfc2047,
    extract_new_text,
    normalize_subject,
    parse_message,
)
from tests.inbox.helpers import mail

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "eml"


def parse_fixture(name: str) -> ParsedMessage:
    return parse_message((FIXTURES / name).read_bytes())


# --- fixtures ------------------------------------------------------------------------------


def test_outlook_html_only_becomes_text_without_quoted_header() -> None:
    parsed = parse_fixture("outlook_html_only.eml")
    assert parsed.message_id == "<AM0PR02MB5555A1B2C3D4E5F6@AM0PR02MB5555.eurprd02.prod.outlook.com>"
    assert parsed.has_real_message_id
    assert parsed.in_reply_to == "<order-4711@rapport.example>"
    assert parsed.references == ["<order-4711@rapport.example>"]
    assert parsed.subject == "RE: Potvrdenie objednávky 4711"
    assert parsed.from_email == "peter.horvath@stavby.sk"
    assert parsed.from_name == "Peter Horváth"
    assert parsed.to == ["sales@rapport.example"]
    assert parsed.sent_at == datetime(2026, 11, 23, 9, 15, 42, tzinfo=UTC)
    assert "</p>" not in parsed.text and "MsoNormal" not in parsed.text
    assert "zrušenie objednávky č. 4711" in parsed.text
    assert "Ďakujeme za objednávku" in parsed.text  # the full text keeps the quote
    assert "zrušenie objednávky" in parsed.new_text
    assert "From:" not in parsed.new_text and "Ďakujeme" not in parsed.new_text
    assert "S pozdravom" not in parsed.new_text
    assert parsed.headers["content-language"] == "sk-SK"
    assert parsed.problems == []


def test_gmail_reply_in_slovak_prefers_plain_and_strips_wrapped_attribution() -> None:
    parsed = parse_fixture("gmail_reply_slovak.eml")
    assert parsed.subject == "Re: Cenová ponuka – 20 kusov"
    assert parsed.from_name == "Zuzana Kováčová"
    assert "> posielame" in parsed.text  # text/plain alternative chosen, quote kept in text
    assert "<div" not in parsed.text
    assert (
        parsed.new_text
        == "Dobrý deň,\n\náno, 20 kusov by sme potrebovali do piatku. Dá sa to?\n\nVďaka\nZuzana"
    )


@pytest.mark.parametrize(
    ("name", "subject", "from_name", "snippet"),
    [
        ("windows1250_slovenian.eml", "Povpraševanje za stole", "Žiga Čeh", "Kakšen je rok dobave"),
        ("iso8859_2_hungarian.eml", "Hibás számla", "Kovács Árpád", "A számlán szereplő összeg hibás"),
        ("koi8r_russian.eml", "Счёт на лицензии", "Иван Петров", "Прошу выставить счёт"),
        ("gb2312_chinese.eml", "询价：设备", "王伟", "我们想订购一百台设备"),
    ],
)
def test_legacy_charsets_decode_cleanly(name: str, subject: str, from_name: str, snippet: str) -> None:
    parsed = parse_fixture(name)
    assert parsed.subject == subject
    assert parsed.from_name == from_name
    assert snippet in parsed.text
    assert parsed.problems == []


def test_signatures_in_several_languages_are_dropped_from_new_text() -> None:
    assert "Lep pozdrav" not in parse_fixture("windows1250_slovenian.eml").new_text
    assert "Üdvözlettel" not in parse_fixture("iso8859_2_hungarian.eml").new_text
    assert "уважением" not in parse_fixture("koi8r_russian.eml").new_text


def test_mislabelled_and_unknown_charsets_fall_back_and_are_reported() -> None:
    parsed = parse_fixture("mislabelled_charset.eml")
    assert "Grüße aus München" in parsed.text  # latin-1 bytes declared as utf-8
    assert "Größe passt" in parsed.text  # utf-8 bytes declared as x-unknown
    assert parsed.subject == "Bestätigung"  # utf8mb4 read as utf-8
    assert parsed.from_name == "Müller"  # x-unknown encoded-word
    assert any("not valid utf-8" in problem for problem in parsed.problems)
    assert any("unknown charset 'x-unknown'" in problem for problem in parsed.problems)


def test_wrong_boundary_is_recovered_from_the_body() -> None:
    parsed = parse_fixture("broken_boundary.eml")
    assert parsed.text == "Hello, I cannot log in to my account since yesterday. Please help."
    assert any("boundary" in problem for problem in parsed.problems)


def test_missing_boundary_keeps_the_body_as_text() -> None:
    raw = b"Subject: x\r\nContent-Type: multipart/mixed\r\n\r\nJust words, no parts.\r\n"
    parsed = parse_message(raw)
    assert parsed.text == "Just words, no parts."
    assert "multipart without boundary parameter" in parsed.problems


def test_alternative_with_empty_plain_uses_html_and_attached_text_stays_an_attachment() -> None:
    raw = (
        b"Subject: x\r\nContent-Type: multipart/mixed; boundary=M\r\n\r\n"
        b"--M\r\nContent-Type: multipart/alternative; boundary=A\r\n\r\n"
        b"--A\r\nContent-Type: text/plain\r\n\r\n\r\n"
        b"--A\r\nContent-Type: text/html\r\n\r\n<p>Send <b>10</b> units &amp; an invoice</p>\r\n--A--\r\n"
        b"--M\r\nContent-Type: text/plain; name=notes.txt\r\nContent-Disposition: attachment\r\n\r\n"
        b"secret notes\r\n--M--\r\n"
    )
    parsed = parse_message(raw)
    assert parsed.text == "Send 10 units & an invoice"
    assert [(a.filename, a.content_type, a.size) for a in parsed.attachments] == [
        ("notes.txt", "text/plain", len(b"secret notes"))
    ]


def test_message_without_message_id_gets_stable_synthetic_id() -> None:
    raw = (FIXTURES / "no_message_id.eml").read_bytes()
    first, second = parse_message(raw), parse_message(bytes(raw))
    assert not first.has_real_message_id
    assert first.message_id == second.message_id
    assert first.message_id.startswith("<") and first.message_id.endswith("@rapport.invalid>")
    assert parse_message(raw + b"\r\n").message_id != first.message_id
    assert first.text == "Could you send me your current price list?"
    assert [(a.filename, a.content_type, a.size) for a in first.attachments] == [
        ("old.pdf", "application/pdf", len(b"%PDF-1.4\n"))
    ]
    assert any("not closed" in problem for problem in first.problems)


def test_rfc2231_and_rfc2047_filenames_and_attachment_sizes() -> None:
    parsed = parse_fixture("rfc2231_filename.eml")
    assert parsed.text == "V priloze posilam fakturu."
    pdf, png = parsed.attachments
    assert pdf.filename == "Žluťoučký kůň faktura.pdf"
    assert pdf.content_type == "application/pdf"
    assert pdf.size == len(b"%PDF-1.4\n" + bytes(range(256)) * 8)
    assert png.filename == "podpis čtyři.png"
    assert png.size == len(base64.b64decode("iVBORw0KGgo="))


def test_delivery_status_part_is_kept_for_bounce_detection() -> None:
    parsed = parse_fixture("dsn_bounce.eml")
    assert "Final-Recipient: rfc822; old.buyer@customer.example" in parsed.delivery_status
    assert parsed.headers["return-path"] == "<>"
    assert [a.content_type for a in parsed.attachments] == ["text/rfc822-headers"]
    assert "could not\nbe delivered" in parsed.text


# --- headers and text helpers --------------------------------------------------------------


def test_header_oddities() -> None:
    raw = (
        b"From nobody Mon Nov 23 10:00:00 2026\r\n"  # mbox separator
        b"Message-ID: bare-id@example.com\r\n"
        b'From: "Doe, Jane" <JANE@Example.COM>\r\n'
        b"To: a@x.example, =?utf-8?Q?B=C3=B6b?= <b@y.example>, not-an-address\r\n"
        b"Cc: c@z.example\r\n"
        b"Reply-To: <Replies@Example.com>\r\n"
        b"Subject: =?utf-8?B?xb0=?=\r\n =?utf-8?B?bHXFpW/FiA==?=   \t and\r\n  more\r\n"
        b"Date: not a date\r\n"
        b"References: <a@x> <b@x>\r\n <c@x>\r\n"
        b"In-Reply-To: junk <c@x> (comment)\r\n"
        b"Precedence: BULK\r\n"
        b"X-Weird \x01: value\r\n"
        b"\r\n"
        b"body\r\n"
    )
    parsed = parse_message(raw)
    assert parsed.message_id == "<bare-id@example.com>" and parsed.has_real_message_id
    assert (parsed.from_email, parsed.from_name) == ("jane@example.com", "Doe, Jane")
    assert parsed.to == ["a@x.example", "b@y.example"]
    assert parsed.cc == ["c@z.example"]
    assert parsed.reply_to == "replies@example.com"
    assert parsed.subject == "Žluťoň and more"  # split multibyte sequence across encoded-words
    assert parsed.sent_at is None
    assert parsed.references == ["<a@x>", "<b@x>", "<c@x>"]
    assert parsed.in_reply_to == "<c@x>"
    assert parsed.headers["precedence"] == "BULK"
    assert any("Date" in problem for problem in parsed.problems)
    assert "malformed header line(s) skipped" in parsed.problems
    assert parsed.text == "body"


def test_broken_encoded_words_do_not_crash() -> None:
    problems: list[str] = []
    assert decode_rfc2047("=?utf-8?B?w6k?=", problems) == "é"  # missing padding
    assert decode_rfc2047("=?nonsense?Q?caf=E9?=", problems) == "café"
    assert decode_rfc2047("=?base64?Q?abc?=", problems) == "abc"  # not a text codec
    assert decode_rfc2047("plain =?utf-8?Q?unterminated", problems) == "plain =?utf-8?Q?unterminated"


def test_nul_in_charset_label_is_an_unknown_charset_not_a_failure() -> None:
    # Regression: codecs.lookup raises ValueError (not LookupError) on an embedded NUL.
    parsed = parse_message(
        b'Subject: =?utf\x00-8?Q?caf=C3=A9?=\r\nContent-Type: text/plain; charset="a\x00b"\r\n\r\ncaf\xc3\xa9'
    )
    assert parsed.subject == "café"
    assert parsed.text == "café"
    assert not any(problem.startswith("parser failure") for problem in parsed.problems)


def test_naive_and_offset_dates_become_aware_utc() -> None:
    parsed = parse_message(b"Date: Mon, 23 Nov 2026 10:00:00 -0000\r\n\r\nx")
    assert parsed.sent_at == datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    parsed = parse_message(b"Date: Mon, 23 Nov 2026 10:00:00 -0500\r\n\r\nx")
    assert parsed.sent_at == datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Re: Order 12", "order 12"),
        ("RE: AW: Fwd: order 12", "order 12"),
        ("Re[2]: Re(3): Re^4: order", "order"),
        ("SV: VS: Odp: Vá: Odg: TR: RV: order", "order"),
        ("[EXTERNAL] Re: [list] Order   12 (fwd)", "order 12"),
        ("回复：订单", "订单"),
        ("Re : réponse", "réponse"),
        ("Recall: order", "recall: order"),
        ("Re:", ""),
    ],
)
def test_normalize_subject(subject: str, expected: str) -> None:
    assert normalize_subject(subject) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hi\n\nAm Mo., 23. Nov. 2026 um 10:00 Uhr schrieb Jan <j@x.de>:\n> alt", "Hi"),
        ("Bonjour\n\nLe lun. 23 nov. 2026 à 10:00, Jan <j@x.fr> a écrit :\n> vieux", "Bonjour"),
        ("Hola\n\nEl lun, 23 nov 2026 a las 10:00, Jan (<j@x.es>) escribió:\n> viejo", "Hola"),
        ("Witam\n\nW dniu 23.11.2026 o 10:00, Jan Kowalski pisze:\n> stare", "Witam"),
        ("Hej\n\nDen mån 23 nov. 2026 kl 10:00 skrev Jan <j@x.se>:\n> gammalt", "Hej"),
        ("Szia\n\n2026. nov. 23., h 10:00 keltezéssel Jan <j@x.hu> ezt írta:\n> régi", "Szia"),
        ("Živjo\n\nV pon., 23. nov. 2026 ob 10:00 je Jan <j@x.si> napisal:\n> staro", "Živjo"),
        ("Ahoj\n\n-----Původní zpráva-----\nOd: Jan\nOdesláno: pondělí\n", "Ahoj"),
        ("Hi\n\nVon: Jan <j@x.de>\nGesendet: Montag\nAn: sales\nBetreff: x\n\nalt", "Hi"),
        (
            "Inline answer:\n> question 1\nanswer 1\n> question 2\nanswer 2",
            "Inline answer:\nanswer 1\nanswer 2",
        ),
        ("Order 5 units.\n-- \nJan Novak\nCEO", "Order 5 units."),
        ("Order 5 units.\n\nSent from my iPhone", "Order 5 units."),
        ("As my boss wrote:\nwe need 5 units.", "As my boss wrote:\nwe need 5 units."),
        ("Thanks, I'd like to order 5 units.\nJan", "Thanks, I'd like to order 5 units.\nJan"),
    ],
)
def test_extract_new_text(text: str, expected: str) -> None:
    assert extract_new_text(text) == expected


def test_forward_without_comment_keeps_forwarded_text() -> None:
    text = "---------- Forwarded message ---------\nFrom: Ann <a@x>\nDate: Mon\n\nPlease quote 20 units."
    assert "Please quote 20 units." in extract_new_text(text)


# --- robustness ----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_never_raise_and_id_is_stable(raw: bytes) -> None:
    first = parse_message(raw)
    assert isinstance(first, ParsedMessage)
    assert first.size == len(raw)
    assert parse_message(raw).message_id == first.message_id
    assert not any(problem.startswith("parser failure") for problem in first.problems)
    for value in (first.text, first.new_text, first.subject):
        assert "\x00" not in value
        value.encode("utf-8")  # storable: no lone surrogates


_SEEDS = sorted(path.read_bytes() for path in FIXTURES.glob("*.eml"))


@st.composite
def mutated_messages(draw: st.DrawFn) -> bytes:
    raw = bytearray(draw(st.sampled_from(_SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, max(0, len(raw) - 1)))
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "dup"]))
        if action == "flip" and raw:
            raw[position] = draw(st.integers(0, 255))
        elif action == "insert":
            raw[position:position] = draw(
                st.sampled_from(
                    [b"\r\n", b"\r\n\r\n", b"=?utf-8?B?", b"--", b";", b'"', b"\xff\xfe", b"\x00"]
                )
            )
        elif action == "delete":
            del raw[position : position + draw(st.integers(1, 64))]
        elif action == "truncate":
            del raw[position:]
        elif action == "dup":
            raw[position:position] = raw[position : position + draw(st.integers(1, 200))]
    return bytes(raw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_messages())
def test_mutated_valid_messages_never_raise(raw: bytes) -> None:
    parsed = parse_message(raw)
    assert parsed.message_id.startswith("<") and parsed.message_id.endswith(">")
    assert parse_message(raw).message_id == parsed.message_id
    assert not any(problem.startswith("parser failure") for problem in parsed.problems)
    assert "\x00" not in parsed.text


def test_non_bytes_input_is_reported_not_raised() -> None:
    parsed = parse_message(None)  # type: ignore[arg-type]
    assert parsed.size == 0 and parsed.text == ""


def test_deep_nesting_and_many_parts_are_bounded() -> None:
    raw = b"Content-Type: multipart/mixed; boundary=b0\r\n\r\n"
    for depth in range(1, 40):
        raw += b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (depth - 1, depth)
    raw += b"--b39\r\nContent-Type: text/plain\r\n\r\ndeep\r\n"
    parsed = parse_message(raw)
    assert isinstance(parsed, ParsedMessage)
    many = b"Content-Type: multipart/mixed; boundary=x\r\n\r\n" + b"--x\r\n\r\nhi\r\n" * 2000 + b"--x--\r\n"
    parsed = parse_message(many)
    assert any("MIME parts" in problem for problem in parsed.problems)


# --- a 30 MB message -----------------------------------------------------------------------


def _huge_message(attachment_bytes: int, text_bytes: int) -> bytes:
    encoded = base64.encodebytes(b"\x89PNG" + b"\x00\x11\x22" * (attachment_bytes // 3)).replace(
        b"\n", b"\r\n"
    )
    text = b"Please see the scan.\r\n" + b"lorem ipsum dolor sit amet " * (text_bytes // 27)
    return (
        b"From: big@example.com\r\nSubject: scan\r\nMessage-ID: <big@example.com>\r\n"
        b"Content-Type: multipart/mixed; boundary=BIG\r\n\r\n"
        b"--BIG\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + text + b"\r\n"
        b"--BIG\r\nContent-Type: image/png\r\nContent-Disposition: attachment; filename=scan.png\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded + b"--BIG--\r\n"
    )


def test_30_mb_message_is_parsed_with_bounded_memory_and_capped_text() -> None:
    raw = _huge_message(attachment_bytes=21_000_000, text_bytes=1_000_000)
    assert len(raw) > 28_000_000
    tracemalloc.start()
    try:
        parsed = parse_message(raw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The attachment is never decoded or copied: peak memory is a small fraction of the mail.
    assert peak < len(raw) // 3
    assert len(parsed.text) == MAX_TEXT_CHARS
    assert parsed.text.startswith("Please see the scan.")
    assert any("truncated" in problem for problem in parsed.problems)
    [attachment] = parsed.attachments
    assert attachment.filename == "scan.png"
    assert attachment.content_type == "image/png"
    assert abs(attachment.size - (4 + 3 * (21_000_000 // 3))) <= 3
    assert parsed.size == len(raw)


@settings(max_examples=300)
@given(
    st.lists(
        st.sampled_from([b"--b", b"--bb", b"--", b"b", b"\r", b"\n", b"\r\n", b" ", b"\t", b"x"]), max_size=30
    ).map(b"".join),
    st.integers(min_value=0, max_value=5),
)
def test_delimiter_lines_are_those_the_mime_grammar_gives(raw: bytes, start: int) -> None:
    """Regression guard: delimiters are found with bytes.find, not a per-message compiled pattern."""
    grammar = re.compile(rb"^--b(--)?[ \t]*\r?$", re.M)
    start = min(start, len(raw))
    expected = [(m.start(), m.end(), bool(m.group(1))) for m in grammar.finditer(raw, start, len(raw))]
    assert list(_delimiter_lines(raw, b"--b", start, len(raw))) == expected


def test_prose_with_skrev_and_a_colon_is_not_a_quote_header() -> None:
    """Regression: a Swedish sentence "Som jag skrev ... två nivåer:" cut the rest of the mail as a quote."""
    raw = (b"From: a@b.example\r\nTo: s@n.example\r\nSubject: Labbdagarna\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
           + "Hej Linnea,\r\n\r\nSom jag skrev är Labbdagarna i Norrköping den 20 april, med två nivåer:\r\n"
             "guld och silver. Vilken passar er?\r\n".encode())
    assert "guld och silver" in parse_message(raw).new_text


def test_hungarian_gmail_quote_header_starts_the_quote() -> None:
    raw = (b"From: a@b.example\r\nTo: s@n.example\r\nSubject: Re: rendeles\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
           + "Kérem a visszaigazolást.\r\n\r\nTóth Gábor <g@x.example> ezt írta (időpont: 2026. nov. 18., "
             "Sze, 10:22):\r\n> Régi szöveg a szállításról.\r\n".encode())
    new_text = parse_message(raw).new_text
    assert "visszaigazolást" in new_text
    assert "ezt írta" not in new_text and "Régi" not in new_text


def test_content_hash_is_the_same_mail_not_the_same_message_id() -> None:
    """One mail read over IMAP (CRLF, a Received header added) and from a file (LF) hashes alike;
    another mail with the same Message-ID does not."""
    crlf = mail(message_id="<same@x>", body="Line one\r\nLine two")
    lf = crlf.replace(b"\r\n", b"\n") + b"\n"
    delivered = b"Received: from mx.example by imap.example; Mon, 23 Nov 2026 10:00:01 +0000\r\n" + crlf
    other = mail(message_id="<same@x>", body="Line one\r\nLine three")
    hashes = [parse_message(raw).content_hash for raw in (crlf, lf, delivered, other)]
    assert hashes[0] == hashes[1] == hashes[2] != hashes[3]
    assert parse_message(b"\x00garbage").content_hash == parse_message(b"\x00garbage").content_hash
