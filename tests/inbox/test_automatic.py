"""Behaviour of inbox.automatic: standards first, `Auto-Submitted: no` is a human, OOO in many languages."""

from __future__ import annotations

from pathlib import Path

import pytest

from inbox.automatic import AutomaticVerdict, detect_automatic
from inbox.parse import parse_message

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "eml"


def verdict_for(raw: bytes) -> AutomaticVerdict:
    return detect_automatic(parse_message(raw))


def mail(headers: str, body: str = "Hello, I would like to order 5 chairs.") -> bytes:
    head = "From: Jan <jan@customer.example>\nTo: sales@rapport.example\nMessage-ID: <m@x>\n" + headers
    return (head.strip("\n") + "\n\n" + body + "\n").replace("\n", "\r\n").encode("utf-8")


def test_rfc3464_report_lists_failed_recipients_only() -> None:
    verdict = detect_automatic(parse_message((FIXTURES / "dsn_bounce.eml").read_bytes()))
    assert verdict.is_automatic
    assert verdict.bounced_recipients == ["old.buyer@customer.example"]  # the delayed one is not a bounce
    assert verdict.reason is not None and verdict.reason.startswith("RFC 3464")


def test_report_with_only_delays_is_automatic_without_bounces() -> None:
    raw = (
        b"From: MAILER-DAEMON@mx.example\r\nSubject: Delayed Mail (still being retried)\r\n"
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=R\r\n\r\n"
        b"--R\r\nContent-Type: text/plain\r\n\r\nStill trying.\r\n"
        b"--R\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.example\r\n\r\nFinal-Recipient: rfc822; slow@x.example\r\n"
        b"Action: delayed\r\nStatus: 4.4.1\r\n--R--\r\n"
    )
    verdict = verdict_for(raw)
    assert verdict.is_automatic and verdict.bounced_recipients == []
    assert verdict.reason == "RFC 3464 delivery delay report"


def test_informal_gmail_bounce_names_the_failed_address() -> None:
    verdict = detect_automatic(parse_message((FIXTURES / "gmail_bounce_plain.eml").read_bytes()))
    assert verdict.is_automatic
    assert verdict.bounced_recipients == ["nobody.here@gmail.com"]


def test_postfix_style_bounce_without_report() -> None:
    body = (
        "This is the mail system at host mx.rapport.example.\n\n"
        "<gone@customer.example>: host mx.customer.example said: 550 5.1.1 User unknown\n"
    )
    raw = mail("From: MAILER-DAEMON@mx.rapport.example\nSubject: Undelivered Mail Returned to Sender\n", body)
    verdict = verdict_for(raw)
    assert verdict.is_automatic
    assert verdict.bounced_recipients == ["gone@customer.example"]


def test_exim_failed_recipients_header() -> None:
    verdict = verdict_for(mail("X-Failed-Recipients: A@x.example, b@y.example\n"))
    assert verdict.bounced_recipients == ["a@x.example", "b@y.example"]


@pytest.mark.parametrize("value", ["auto-replied", "auto-generated", "auto-notified; owner-email=x@y"])
def test_auto_submitted_values_are_automatic(value: str) -> None:
    verdict = verdict_for(mail(f"Auto-Submitted: {value}\n"))
    assert verdict.is_automatic
    assert verdict.reason == f"RFC 3834 Auto-Submitted: {value.split(';')[0]}"


def test_auto_submitted_no_is_a_human_even_with_weaker_hints() -> None:
    verdict = detect_automatic(parse_message((FIXTURES / "auto_submitted_no.eml").read_bytes()))
    assert verdict.is_automatic is False and verdict.reason is None
    raw = mail("Auto-Submitted: No\nSubject: Out of Office: order\nX-Autoreply: yes\n")
    assert not verdict_for(raw).is_automatic


def test_auto_submitted_no_does_not_hide_a_mailing_list() -> None:
    assert verdict_for(mail("Auto-Submitted: no\nList-Id: <team.lists.example>\n")).is_automatic


@pytest.mark.parametrize("value", ["bulk", "list", "junk", "Bulk "])
def test_precedence(value: str) -> None:
    verdict = verdict_for(mail(f"Precedence: {value}\n"))
    assert verdict.is_automatic and verdict.reason == f"Precedence: {value.strip().lower()}"


def test_precedence_first_class_is_human() -> None:
    assert not verdict_for(mail("Precedence: first-class\n")).is_automatic


def test_mailing_list_fixture() -> None:
    verdict = detect_automatic(parse_message((FIXTURES / "mailing_list.eml").read_bytes()))
    assert verdict.is_automatic and verdict.reason is not None and "List-Id" in verdict.reason


def test_list_unsubscribe_alone_is_a_newsletter() -> None:
    assert verdict_for(mail("List-Unsubscribe: <mailto:u@x>\n")).is_automatic


@pytest.mark.parametrize("value", ["All", "OOF", "DR, RN, NRN, OOF, AutoReply"])
def test_auto_response_suppress(value: str) -> None:
    assert verdict_for(mail(f"X-Auto-Response-Suppress: {value}\n")).is_automatic


def test_auto_response_suppress_for_receipts_only_is_human() -> None:
    assert not verdict_for(mail("X-Auto-Response-Suppress: DR, RN\n")).is_automatic


@pytest.mark.parametrize("name", ["X-Autoreply", "X-Autorespond"])
def test_autoresponder_headers(name: str) -> None:
    assert verdict_for(mail(f"{name}: yes\n")).is_automatic


def test_null_return_path() -> None:
    assert verdict_for(mail("Return-Path: <>\n")).is_automatic


def test_swedish_out_of_office_fixture() -> None:
    verdict = detect_automatic(parse_message((FIXTURES / "ooo_swedish.eml").read_bytes()))
    assert verdict.is_automatic and verdict.reason == "out-of-office reply (Swedish)"


@pytest.mark.parametrize(
    ("subject", "language"),
    [
        ("Out of Office: Your order", "English"),
        ("Automatic reply: Your order", "English"),
        ("Abwesenheitsnotiz: Ihre Bestellung", "German"),
        ("Automatische Antwort: Ihre Bestellung", "German"),
        ("Frånvaro: Er beställning", "Swedish"),
        ("Automatická odpoveď: Vaša objednávka", "Slovak"),
        ("Automatická odpověď: Vaše objednávka", "Czech"),
        ("Házon kívül: Rendelés", "Hungarian"),
        ("Automatikus válasz: Rendelés", "Hungarian"),
        ("Odsotnost: Naročilo", "Slovenian"),
        ("Réponse automatique : Votre commande", "French"),
        ("Fuera de la oficina: Su pedido", "Spanish"),
        ("Odpowiedź automatyczna: Zamówienie", "Polish"),
    ],
)
def test_out_of_office_subjects(subject: str, language: str) -> None:
    verdict = verdict_for(mail(f"Subject: {subject}\n", "Thank you for your message."))
    assert verdict.is_automatic and verdict.reason == f"out-of-office reply ({language})"


@pytest.mark.parametrize(
    ("body", "language"),
    [
        ("I am currently out of the office until Monday.", "English"),
        ("Ich bin derzeit nicht im Büro und ab 3.12. wieder erreichbar.", "German"),
        ("Som mimo kancelárie do 30. 11.", "Slovak"),
        ("Jsem mimo kancelář do pondělí.", "Czech"),
        ("Házon kívül vagyok december 3-ig.", "Hungarian"),
        ("Sem odsoten do 1. 12.", "Slovenian"),
        ("Je suis absent jusqu'au 2 décembre.", "French"),
        ("Estoy fuera de la oficina hasta el lunes.", "Spanish"),
        ("Jestem poza biurem do poniedziałku.", "Polish"),
    ],
)
def test_out_of_office_texts(body: str, language: str) -> None:
    verdict = verdict_for(mail("Subject: Re: your order\n", body))
    assert verdict.is_automatic and verdict.reason == f"out-of-office text ({language})"


@pytest.mark.parametrize(
    "subject",
    ["Absence de livraison", "Out of stock question", "Urlaub und Bestellung", "Dovolenka v Tatrách"],
)
def test_human_subjects_that_look_similar_are_human(subject: str) -> None:
    assert not verdict_for(mail(f"Subject: {subject}\n")).is_automatic


def test_long_human_mail_mentioning_vacation_is_human() -> None:
    body = "We need 40 chairs before Christmas. " * 10 + "\nI am on vacation next month, so please hurry."
    assert not verdict_for(mail("Subject: Chairs\n", body)).is_automatic


@pytest.mark.parametrize(
    "name",
    [
        "outlook_html_only.eml",
        "gmail_reply_slovak.eml",
        "windows1250_slovenian.eml",
        "iso8859_2_hungarian.eml",
        "koi8r_russian.eml",
        "gb2312_chinese.eml",
        "mislabelled_charset.eml",
        "broken_boundary.eml",
        "no_message_id.eml",
        "rfc2231_filename.eml",
    ],
)
def test_human_fixtures_are_human(name: str) -> None:
    verdict = detect_automatic(parse_message((FIXTURES / name).read_bytes()))
    assert verdict.is_automatic is False
    assert verdict.bounced_recipients == []
