"""A rep and their team in one statement (bot.identity.rep_with_team), on SQLite and PostgreSQL:
the team's members are aggregated as text (string_agg, group_concat) and read back."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from bot.identity import rep_with_team, team_member_ids
from store.db import read_session, session_scope
from store.models import Rep


def test_a_rep_comes_with_every_member_of_their_team_and_no_one_else(engine: Engine) -> None:
    with session_scope(engine) as session:
        reps = [Rep(name=name, email=f"{name.lower()}@nordlys.example", team=team, active=active)
                for name, team, active in [("Anna", "sales", True), ("Bo", "sales", False), ("Cy", "Sales", True),
                                           ("Di", "support", True), ("Ed", None, True)]]
        session.add_all(reps)
        session.flush()
        anna, bo, _, _, ed = (rep.id for rep in reps)
    assert anna is not None and bo is not None and ed is not None
    with read_session(engine) as session:
        rep = rep_with_team(session, anna)
        assert rep is not None and rep.name == "Anna"
        # as `team_member_ids` read them before: the exact team, inactive members included
        assert team_member_ids(session, rep) == {anna, bo}
    with read_session(engine) as session:
        loner = rep_with_team(session, ed)
        assert loner is not None and team_member_ids(session, loner) == {ed}
        assert rep_with_team(session, 10_000) is None
