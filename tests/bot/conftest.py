"""Fixtures for the Slack bot: a seeded database, `rapport serve`'s Service against the fake Slack."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from rapport.config import AppConfig, RepConfig
from rapport.serve import Service
from rapport.settings import load_settings
from rapport.wiring import Runtime
from store.db import make_engine, session_scope, upgrade
from store.models import (
    Assignment,
    Company,
    CompanyDomain,
    Consent,
    Contact,
    ContactEmail,
    Conversation,
    Message,
    Order,
    Rep,
)
from store.outbox import AssignmentDm, enqueue
from store.search import refresh_index
from tests.servers import slack_requests
from tests.servers.fake_slack import FakeSlack
from tests.servers.slack_requests import SignedRequest

SECRET = "test-signing-secret"
COMMAND = "/crm"
ALICE, BOB, CAROL, DAVE, STRANGER = "U0ALICE", "U0BOB", "U0CAROL", "U0DAVE", "U0STRANGER"
START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday

REPS = [
    RepConfig(name="Alice Berg", email="alice@nordlys.example", slack_user_id=ALICE, team="sales",
              timezone="Europe/Stockholm", languages=["sv", "en"]),
    RepConfig(name="Bob Dvořák", email="bob@nordlys.example", slack_user_id=BOB, team="sales",
              timezone="Europe/Prague", languages=["cs", "en"]),
    RepConfig(name="Carol Manager", email="carol@nordlys.example", slack_user_id=CAROL, role="manager",
              team="sales", timezone="Europe/Stockholm"),
    # no Slack id in the config: found through users.lookupByEmail / users.info
    RepConfig(name="Dave Support", email="dave@nordlys.example", team="support", role="support"),
]


class Clock:
    """The service's notion of now, moved by tests instead of sleeping."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@dataclass
class Seeded:
    jan: int  # Jan Šťastný at Acme, owned by Alice
    john: int  # John Smith, owned by Dave (support team)
    johanna: int  # Johanna Smithson, unowned
    acme: int


def rep_id(engine: Engine, email: str) -> int:
    with Session(engine) as session:
        rep = session.exec(select(Rep).where(Rep.email == email)).one()
        assert rep.id is not None
        return rep.id


def seed_contacts(engine: Engine) -> Seeded:
    alice, dave = rep_id(engine, "alice@nordlys.example"), rep_id(engine, "dave@nordlys.example")
    with session_scope(engine) as session:
        acme = Company(name="Acme Corporation", kind="customer", owner_id=alice)
        session.add(acme)
        session.flush()
        assert acme.id is not None
        session.add(CompanyDomain(company_id=acme.id, domain="acme.example"))
        jan = Contact(name="Jan Šťastný", kind="customer", stage="evaluation", company_id=acme.id, owner_id=alice,
                      phone="+420 601 123 456")
        john = Contact(name="John Smith", kind="prospect", owner_id=dave)
        johanna = Contact(name="Johanna Smithson", kind="partner")
        session.add_all([jan, john, johanna])
        session.flush()
        assert jan.id and john.id and johanna.id
        session.add_all([
            ContactEmail(contact_id=jan.id, email="jan.stastny@acme.example", is_primary=True),
            ContactEmail(contact_id=john.id, email="john@smith.example", is_primary=True),
            ContactEmail(contact_id=johanna.id, email="johanna@partner.example", is_primary=True),
            Consent(contact_id=jan.id, purpose="marketing", basis="consent", granted_at=START - timedelta(days=30)),
            Order(external_id="O-1", contact_id=jan.id, company_id=acme.id, amount=Decimal("1200.50"),
                  ordered_on=(START - timedelta(days=40)).date()),
            Order(external_id="O-2", contact_id=jan.id, company_id=acme.id, amount=Decimal("99.50"),
                  ordered_on=(START - timedelta(days=10)).date()),
        ])
        session.flush()
        refresh_index(session)  # as the inbox and the importer do after writing
        assert jan.id and john.id and johanna.id and acme.id
        return Seeded(jan=jan.id, john=john.id, johanna=johanna.id, acme=acme.id)


def add_assigned_email(
    engine: Engine, *, owner_email: str, contact_id: int | None, subject: str, text: str,
    from_email: str = "jan.stastny@acme.example", from_name: str = "Jan Šťastný", at: datetime = START,
    sla_hours: float = 8, category: str = "complaint", language: str = "en", rule: str = "account_owner",
    reason: str = "Alice owns the Acme account",
) -> tuple[int, str]:
    """What the inbox writes in one transaction: conversation, message, assignment, assign-dm row."""
    owner = rep_id(engine, owner_email)
    with session_scope(engine) as session:
        conversation = Conversation(subject=subject, contact_id=contact_id, owner_id=owner, category=category,
                                    category_confidence=0.87, language=language, opened_at=at,
                                    last_message_at=at, sla_due_at=at + timedelta(hours=sla_hours),
                                    urgency="high", urgency_reason="asks for speed (“asap”)")
        session.add(conversation)
        session.flush()
        assert conversation.id is not None
        message = Message(conversation_id=conversation.id, contact_id=contact_id, message_id=f"<{subject}@x>",
                          from_email=from_email, from_name=from_name, subject=subject, received_at=at, text=text,
                          new_text=text, category=category, category_confidence=0.87, language=language,
                          entities=[{"label": "ORDER_ID", "text": "NS-480744", "start": 0, "end": 9,
                                     "value": "NS-480744"}])
        session.add(message)
        session.flush()
        assignment = Assignment(conversation_id=conversation.id, owner_id=owner, rule=rule, reason=reason)
        session.add(assignment)
        session.flush()
        key = f"assign-dm:{assignment.id}"
        assert assignment.id is not None
        enqueue(session, AssignmentDm(assignment.id, conversation.id, message.id), now=at)
        assert conversation.id is not None
        return conversation.id, key


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'rapport.db'}"


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_runtime(database_url: str, slack: FakeSlack, config: AppConfig | None = None, **settings: Any) -> Runtime:
    values: dict[str, Any] = {
        "database_url": database_url, "slack_bot_token": "xoxb-test-token", "slack_signing_secret": SECRET,
        "slack_api_url": slack.base_url, "http_port": 0, "config_file": Path("/nonexistent/rapport.toml"),
        **settings,
    }
    return Runtime(settings=load_settings(**values), config=config or AppConfig(reps=REPS))


@pytest.fixture
def config() -> AppConfig:
    """The service's rapport.toml: the reps (a test module may override it)."""
    return AppConfig(reps=REPS)


@pytest.fixture
def service(database_url: str, fake_slack: FakeSlack, clock: Clock, config: AppConfig) -> Iterator[Service]:
    """`rapport serve`'s Service in HTTP mode on loopback; the scheduler only ticks when a test says."""
    fake_slack.add_user("dave@nordlys.example", DAVE)
    fake_slack.add_user("alice@nordlys.example", ALICE)
    fake_slack.allow_mentions(ALICE, BOB, CAROL, DAVE)  # Rapport mentions its reps; nobody else may
    rt = make_runtime(database_url, fake_slack, config)
    svc = Service(rt, host="127.0.0.1", port=0, clock=clock, scheduler_interval=3600, watch_mailboxes=False)
    svc.start()
    yield svc
    svc.stop()


@pytest.fixture
def engine(service: Service) -> Engine:
    return service.rt.engine


@pytest.fixture
def seeded(engine: Engine) -> Seeded:
    return seed_contacts(engine)


@pytest.fixture
def events_url(service: Service) -> str:
    assert service.http is not None
    return f"http://127.0.0.1:{service.http.port}/slack/events"


@pytest.fixture(autouse=True)
def no_raw_mentions(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every bot test: nothing from a customer or a user pings or links in Slack (`<!channel>`, `<http…>`).

    Scans every Web API call the fake Slack recorded and every answer to a Slack request.
    """
    slack = request.getfixturevalue("fake_slack") if "fake_slack" in request.fixturenames else None
    yield
    if slack is not None:
        problems = slack.mention_problems()
        assert not problems, f"raw mentions or links that Rapport did not write: {problems}"


def _answer(fake_slack: FakeSlack, body: bytes) -> dict[str, Any]:
    answer = json.loads(body) if body.strip().startswith(b"{") else {}
    fake_slack.check_response(answer)
    return answer


@pytest.fixture
def slash(events_url: str, fake_slack: FakeSlack) -> Callable[..., tuple[int, dict[str, Any]]]:
    """Send a signed `/crm TEXT` as a user; returns (status, the JSON answer or {}), checked like a Slack call."""

    def send(text: str, *, user: str = ALICE, **fields: Any) -> tuple[int, dict[str, Any]]:
        status, body = slack_requests.slash_command(SECRET, COMMAND, text, user_id=user, **fields).post(events_url)
        return status, _answer(fake_slack, body)

    return send


@pytest.fixture
def interact(events_url: str, fake_slack: FakeSlack) -> Callable[[dict[str, Any]], tuple[int, bytes]]:
    def send(payload: dict[str, Any]) -> tuple[int, bytes]:
        status, body = slack_requests.interaction(SECRET, payload).post(events_url)
        _answer(fake_slack, body)
        return status, body

    return send


def post(request: SignedRequest, url: str) -> tuple[int, bytes]:
    return request.post(url)


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read()


def all_text(blocks: list[dict[str, Any]]) -> str:
    """Every text in a list of blocks, for assertions on what a person would read."""
    return json.dumps(blocks, ensure_ascii=False)


def engine_for(url: str) -> Engine:
    engine = make_engine(url)
    upgrade(engine)
    return engine
