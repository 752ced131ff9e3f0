"""The scheduler also enqueues and delivers the managers' digests (bot.digest), once."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from rapport.serve import Service
from store.models import OutboxItem, Rep
from tests.bot.conftest import CAROL, Clock, Seeded
from tests.servers.fake_slack import FakeSlack


def test_digest_goes_out_once_at_the_managers_hour(
    service: Service, engine: Any, seeded: Seeded, fake_slack: FakeSlack, clock: Clock
) -> None:
    with Session(engine) as session:
        carol = session.exec(select(Rep).where(Rep.slack_user_id == CAROL)).one()
        carol.digest_via, carol.digest_hour = ["slack"], 11  # 11:00 in Stockholm is 10:00 UTC
        session.add(carol)
        session.commit()
    assert service.scheduler is not None
    assert service.scheduler.tick(clock.now).digests == 0  # 10:00 local: not yet
    result = service.scheduler.tick(clock.advance(hours=1))
    assert result.digests == 1 and result.delivered >= 1
    service.scheduler.tick(clock.advance(minutes=15))
    with Session(engine) as session:
        digests = session.exec(select(OutboxItem).where(OutboxItem.kind == "digest-slack")).all()
    assert [(d.status, d.attempts) for d in digests] == [("sent", 1)]
    assert fake_slack.messages("D0CAROL"), "the digest reached Carol's DM"
