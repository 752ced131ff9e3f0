"""Real `rapport` processes for the crash benches: launched through the CLI, killed with SIGKILL.

The benches drive Rapport only through its command line (`rapport serve`, `rapport inbox
sync`), so they measure what an operator runs and survive refactors of the code behind it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.servers.fake_slack import FakeSlack
from tests.servers.postgres import (
    DEFAULT_URL,
    PrivateCluster,
    create_schema,
    drop_schema,
    find_bin_dir,
    is_reachable,
)

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = "from rapport.cli.main import main; main()"
# Reps who take every mail at any hour, each with a Slack id: every new conversation is one DM.
CONFIG = """
[inbox]
backlog_age_days = 36500  # the generated mail is old; here every mail is live work

[[reps]]
name = "Anna"
email = "anna@shop.example"
slack_user_id = "U0ANNA"
working_hours = "Mon-Sun 00:00-24:00"
capacity = 100000

[[reps]]
name = "Luka"
email = "luka@shop.example"
slack_user_id = "U0LUKA"
working_hours = "Mon-Sun 00:00-24:00"
capacity = 100000
"""


def rapport_env(directory: Path, database_url: str, slack_url: str, **extra: str) -> dict[str, str]:
    """The environment of a `rapport` process: this checkout, the bench's database, the fake Slack."""
    config = directory / "rapport.toml"
    config.write_text(CONFIG)
    env = {
        **os.environ, "PYTHONPATH": str(ROOT), "RAPPORT_DATABASE_URL": database_url, "RAPPORT_CONFIG": str(config),
        "SLACK_BOT_TOKEN": "xoxb-bench", "SLACK_SIGNING_SECRET": "bench-secret", "SLACK_API_URL": slack_url,
        "COLUMNS": "200",  # one log record per line
        **extra,
    }
    env.pop("SLACK_APP_TOKEN", None)
    return env


def run_rapport(args: list[str], env: dict[str, str], cwd: Path) -> str:
    """Run a `rapport` command to its end; its output, or SystemExit with it on failure."""
    done = subprocess.run([sys.executable, "-c", LAUNCH, *args], env=env, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"rapport {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


class RapportProcess:
    """A running `rapport` command whose log lines are collected as they come."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", LAUNCH, *args], env=env, cwd=cwd,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip())
                self._changed.notify_all()

    def wait_for(self, text: str, timeout: float = 120.0) -> None:
        """Until a log line contains `text`; SystemExit (with the log) if the process ends or time runs out."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not any(text in line for line in self.lines):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = "\n".join(self.lines[-30:])
                    raise SystemExit(f"no {text!r} from rapport (exit code {self.process.poll()}):\n{log}")
                self._changed.wait(0.2)

    def logged(self, text: str) -> bool:
        with self._changed:
            return any(text in line for line in self.lines)

    def kill(self) -> None:
        """SIGKILL: no clean-up code runs, as when the machine or the OOM killer ends it."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@contextmanager
def postgres_schema(url: str | None) -> Iterator[str]:
    """A URL whose search_path is a fresh schema: of `url`, of the machine's server, or of a private cluster."""
    cluster = None
    if url is None:
        if is_reachable(DEFAULT_URL):
            url = DEFAULT_URL
        else:
            bin_dir = find_bin_dir()
            if bin_dir is None:
                raise SystemExit("no PostgreSQL on 127.0.0.1:5432 and none installed; pass --postgres URL")
            cluster = PrivateCluster(bin_dir)
            cluster.start()
            url = cluster.url
    schema, scoped = create_schema(url)
    try:
        yield scoped
    finally:
        drop_schema(url, schema)
        if cluster is not None:
            cluster.stop()


@contextmanager
def work_directory() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="rapport-bench-") as tmp:
        yield Path(tmp)


def dm_keys(slack: FakeSlack) -> Counter[str]:
    """How many Slack messages the fake received per outbox key (Rapport puts the key in each one's metadata)."""
    keys: Counter[str] = Counter()
    for call in slack.calls("chat.postMessage"):
        metadata: Any = call.params.get("metadata")
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        key = (metadata or {}).get("event_payload", {}).get("key")
        if key:
            keys[key] += 1
    return keys
