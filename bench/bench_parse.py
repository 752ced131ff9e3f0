"""Parse throughput: inbox.parse.parse_message against the standard library's policy.default.

Generates ~2,000 realistic messages (3-5 KB; a quarter multipart/alternative with HTML, a
fifth with an attachment, a quarter with encoded non-ASCII headers) and prints messages/s of
`parse_message` (which also strips quotes and signatures) and of the baseline
`message_from_bytes(raw, policy=default)` + `get_body().get_content()`, measured in the same
run, and their ratio. Usage: python bench/bench_parse.py [--count N] [--seed S]
"""

from __future__ import annotations

import argparse
import base64
import email
import email.policy
import random
import time
from collections.abc import Callable
from email.header import Header

from inbox.parse import parse_message

WORDS = (
    "order delivery invoice refund please could you send the price list for our team we need "
    "units by friday thanks regarding contract meeting next week quote account password shipping "
    "address changed payment received discount customer support product offer"
).split()
NAMES = ["Ján Novák", "Zuzana Kováčová", "Jürgen Müller", "Åsa Lindström", "Kovács Árpád", "Žiga Čeh"]
SUBJECTS = ["Objednávka č. {n}", "Bestellung {n} – Lieferung", "Faktura {n} ärende", "Számla {n} hibás"]


def _words(rng: random.Random, count: int) -> str:
    lines, line = [], []
    for _ in range(count):
        line.append(rng.choice(WORDS))
        if len(line) == 12:
            lines.append(" ".join(line).capitalize() + ".")
            line = []
    return "\n".join(lines)


def _headers(rng: random.Random, n: int, encoded: bool) -> str:
    if encoded:
        name = Header(rng.choice(NAMES), "utf-8").encode()
        subject = Header(rng.choice(SUBJECTS).format(n=n), "utf-8").encode()
    else:
        name, subject = "John Smith", f"Re: Order {n} question"
    return (
        f"Return-Path: <c{n}@customer.example>\r\n"
        f"Received: from mx.customer.example (mx.customer.example [192.0.2.{n % 250}])\r\n"
        f"\tby mx.rapport.example with ESMTPS id {n:08x}; Mon, 23 Nov 2026 10:00:00 +0100\r\n"
        f"From: {name} <c{n}@customer.example>\r\nTo: Sales <sales@rapport.example>\r\n"
        f"Subject: {subject}\r\nDate: Mon, 23 Nov 2026 10:{n % 60:02d}:00 +0100\r\n"
        f"Message-ID: <{n}.{rng.getrandbits(48):x}@customer.example>\r\n"
        f"In-Reply-To: <offer-{n}@rapport.example>\r\nReferences: <offer-{n}@rapport.example>\r\n"
        "MIME-Version: 1.0\r\n"
    )


def _body(rng: random.Random) -> str:
    quote = "\n".join("> " + line for line in _words(rng, 120).split("\n"))
    return (
        f"Hello,\n\n{_words(rng, rng.randint(200, 380))}\n\nBest regards\nJohn\n\n"
        f"On Mon, 23 Nov 2026 at 09:00, Sales <sales@rapport.example> wrote:\n{quote}\n"
    ).replace("\n", "\r\n")


def make_message(rng: random.Random, n: int) -> bytes:
    head = _headers(rng, n, encoded=n % 4 == 0)
    text = _body(rng)
    if n % 5 == 1:
        blob = base64.encodebytes(rng.randbytes(900)).decode().replace("\n", "\r\n")
        return (
            head + 'Content-Type: multipart/mixed; boundary="MIX"\r\n\r\n'
            "--MIX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + text + "\r\n"
            '--MIX\r\nContent-Type: application/pdf; name="offer.pdf"\r\n'
            'Content-Disposition: attachment; filename="offer.pdf"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n" + blob + "--MIX--\r\n"
        ).encode("utf-8")
    if n % 4 == 2:
        html = (
            "<html><body><p>"
            + text.replace("\r\n\r\n", "</p><p>").replace("\r\n", "<br>")
            + "</p></body></html>"
        )
        return (
            head + 'Content-Type: multipart/alternative; boundary="ALT"\r\n\r\n'
            "--ALT\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + text + "\r\n"
            "--ALT\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html + "\r\n--ALT--\r\n"
        ).encode("utf-8")
    return (head + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + text).encode("utf-8")


def baseline(raw: bytes) -> str:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    body = message.get_body(preferencelist=("plain", "html"))  # type: ignore[attr-defined]
    return body.get_content() if body is not None else ""


def ours(raw: bytes) -> str:
    return parse_message(raw).new_text


def rate(function: Callable[[bytes], object], messages: list[bytes], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for raw in messages:
            function(raw)
        best = min(best, time.perf_counter() - started)
    return len(messages) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    messages = [make_message(rng, n) for n in range(args.count)]
    sizes = sorted(len(raw) for raw in messages)
    print(f"{len(messages)} messages, size median {sizes[len(sizes) // 2]} B, max {sizes[-1]} B")
    base = rate(baseline, messages, args.repeat)
    mine = rate(ours, messages, args.repeat)
    print(f"baseline message_from_bytes(policy=default)+get_content: {base:8.0f} msg/s")
    print(f"inbox.parse.parse_message (incl. quote stripping):        {mine:8.0f} msg/s")
    print(f"ratio: {mine / base:.2f}")


if __name__ == "__main__":
    main()
