"""Generated customer mail for the inbox benchmarks: realistic sizes and shapes, reproducible by seed."""

from __future__ import annotations

import base64
import random
from datetime import UTC, datetime, timedelta
from email.header import Header
from email.utils import format_datetime

BACKLOG_END = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
FIRST = ["Anna", "Jana", "Péter", "Zsófia", "Jürgen", "Eva", "Luka", "Marek", "Åsa", "Björn", "Claire", "Diego"]
LAST = ["Berg", "Nováková", "Kovács", "Müller", "Kranjc", "Svoboda", "Lindqvist", "Dubois", "García", "Horváth"]
DOMAINS = ["biolab.example", "tatra-pharma.example", "duna-labor.example", "gmail.com", "kontor.example",
           "alpenlabor.example", "medlab.example", "outlook.com", "seznam.cz", "officehub.example"]
SUBJECTS = ["Refund for order {n}", "Where is my delivery {n}?", "Invoice {n} looks wrong", "Quote for {n} units",
            "Cancel order {n}", "Login problem on the portal", "Complaint about order {n}", "Partnership question",
            "Változás a rendelésben {n}", "Objednávka {n} nedorazila", "Rückerstattung für Bestellung {n}"]
SENTENCES = [
    "We ordered the lab supplies last week and the parcel has still not arrived.",
    "Could you please send me a corrected invoice with our VAT number on it?",
    "The package arrived damaged and two of the bottles were broken.",
    "I would like to cancel the remaining items of the order before they ship.",
    "Can you give us a quote for five hundred units with delivery in January?",
    "Our finance department asks whether the payment has been received.",
    "Please change the delivery address to our new warehouse in Brno.",
    "We are interested in becoming a reseller for your products in Hungary.",
    "The portal says my password is wrong although I just reset it.",
    "Thank you for the quick help last time, everything works now.",
]


def _text(rng: random.Random, size: int) -> str:
    parts: list[str] = []
    while sum(len(p) + 1 for p in parts) < size:
        parts.append(rng.choice(SENTENCES))
    return "Hello,\n\n" + "\n".join(parts) + "\n\nBest regards\n"


def _address(rng: random.Random, index: int) -> tuple[str, str]:
    first, last = FIRST[index % len(FIRST)], LAST[(index // len(FIRST)) % len(LAST)]
    domain = DOMAINS[index % len(DOMAINS)]
    return f"{first} {last}", f"c{index}.{first.lower()[:3]}@{domain}".encode("ascii", "ignore").decode()


def generate(count: int, *, seed: int = 1, senders: int = 400) -> list[bytes]:
    """`count` messages of 3–5 KB: a quarter multipart with HTML, a fifth with an attachment,
    a quarter with RFC 2047-encoded non-ASCII headers, one in six a reply to an earlier one."""
    rng = random.Random(seed)
    # A backlog: every message in the past (servers move future INTERNALDATEs to the present).
    start = BACKLOG_END - timedelta(minutes=7 * count)
    messages = []
    ids: list[str] = []
    for i in range(count):
        sender = rng.randrange(senders)
        name, address = _address(rng, sender)
        subject = rng.choice(SUBJECTS).format(n=rng.randrange(10000, 99999))
        encoded = i % 4 == 1
        if encoded:
            subject_header = Header(subject + " – ü ő č ř", "utf-8").encode()
            from_header = f"{Header(name + ' Ščř', 'utf-8').encode()} <{address}>"
        else:
            subject_header = subject.encode("ascii", "ignore").decode()
            from_header = f"{name.encode('ascii', 'ignore').decode()} <{address}>"
        headers = [
            f"From: {from_header}",
            "To: Support <support@example.test>",
            f"Subject: {subject_header}",
            f"Date: {format_datetime(start + timedelta(minutes=7 * i))}",
            f"Message-ID: <bench{i}.{seed}@{address.split('@')[1]}>",
            "MIME-Version: 1.0",
        ]
        ids.append(headers[4].partition(" ")[2])
        if i % 6 == 5 and i > 10:
            headers.append(f"In-Reply-To: {ids[rng.randrange(max(0, i - 50), i)]}")
        html = i % 4 == 0
        attachment = i % 5 == 2
        low, high = (1100, 1600) if html else (1700, 3000) if attachment else (2500, 4200)
        body = _text(rng, rng.randrange(low, high))
        messages.append(_assemble(headers, body, html=html, attachment=attachment, index=i, rng=rng))
    return messages


def _assemble(headers: list[str], body: str, *, html: bool, attachment: bool, index: int,
              rng: random.Random) -> bytes:
    crlf = "\r\n"
    plain = body.replace("\n", crlf)
    if not html and not attachment:
        return (crlf.join([*headers, "Content-Type: text/plain; charset=utf-8",
                           "Content-Transfer-Encoding: 8bit", "", plain, ""])).encode()
    boundary = f"=_b{index}"
    parts: list[str] = []
    if html:
        markup = "<html><body>" + "".join(f"<p>{line}</p>" for line in body.split("\n") if line) + "</body></html>"
        inner = f"=_a{index}"
        parts.append(crlf.join([
            f'Content-Type: multipart/alternative; boundary="{inner}"', "",
            f"--{inner}", "Content-Type: text/plain; charset=utf-8", "", plain,
            f"--{inner}", "Content-Type: text/html; charset=utf-8", "", markup,
            f"--{inner}--", "",
        ]))
    else:
        parts.append(crlf.join(["Content-Type: text/plain; charset=utf-8", "", plain]))
    if attachment:
        blob = base64.encodebytes(rng.randbytes(900)).decode().replace("\n", crlf)
        parts.append(crlf.join([
            f'Content-Type: application/pdf; name="order-{index}.pdf"',
            f'Content-Disposition: attachment; filename="order-{index}.pdf"',
            "Content-Transfer-Encoding: base64", "", blob,
        ]))
    text = crlf.join([*headers, f'Content-Type: multipart/mixed; boundary="{boundary}"', ""])
    for part in parts:
        text += f"{crlf}--{boundary}{crlf}{part}"
    text += f"{crlf}--{boundary}--{crlf}"
    return text.encode()
