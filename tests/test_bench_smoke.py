"""The benchmarks are not run by CI (they take minutes and want a quiet machine), but the data
they build must still build: a regression test names each piece a bench shares with the product."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace


def test_regression_the_load_bench_builds_its_demo_copy(tmp_path: Path) -> None:
    """bench_serve_load's demo copies read their database before creating it once reading
    commands refused a missing database; nothing ran the bench, so it broke unseen."""
    from bench.bench_ingest import NoClassifier
    from bench.bench_serve_load import demo_runtime, message_count, target_for

    mailbox = SimpleNamespace(host="127.0.0.1", port=1143, password="unused")  # settings only: nothing connects
    rt = demo_runtime(f"sqlite:///{tmp_path / 'bench.db'}", tmp_path / "demo", slack_url="http://127.0.0.1:9/api/",
                      mailbox=mailbox, user="bench@example.test", classifier=NoClassifier())
    assert message_count(rt.engine) > 40  # the sample mailbox, ingested
    target = target_for(rt, port=0)
    assert target.users and target.names and all(target.contact_ids.values())
