"""`rapport serve` as a real process: health check, a signed command, no token in logs, clean SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.bot.conftest import ALICE, COMMAND, SECRET, get
from tests.servers import slack_requests
from tests.servers.fake_slack import FakeSlack
from tests.servers.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "xoxb-secret-token-that-must-not-be-logged"
CONFIG = """
[[reps]]
name = "Alice Berg"
email = "alice@nordlys.example"
slack_user_id = "U0ALICE"
timezone = "Europe/Stockholm"
"""
LAUNCH = "import sys; from rapport.cli.main import app; app(['--verbose', 'serve', *sys.argv[1:]])"


def _wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "rapport serve exited early"
        try:
            if get(url)[0] == 200:
                return
        except OSError:  # refused, reset or timed out while it starts (URLError is an OSError)
            time.sleep(0.1)
    raise AssertionError("rapport serve did not become healthy")


def test_serve_process_answers_and_stops_on_sigterm(tmp_path: Path, fake_slack: FakeSlack) -> None:
    config = tmp_path / "rapport.toml"
    config.write_text(CONFIG)
    port = free_port()
    env = {
        **os.environ, "PYTHONPATH": str(ROOT), "RAPPORT_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        "RAPPORT_CONFIG": str(config), "SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": fake_slack.base_url, "RAPPORT_HTTP_PORT": str(port),
    }
    env.pop("SLACK_APP_TOKEN", None)
    # one process: tests/bot/test_serve_workers.py covers worker processes
    process = subprocess.Popen([sys.executable, "-c", LAUNCH, "--host", "127.0.0.1", "--no-watch", "--workers", "1"],
                               cwd=tmp_path,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/healthz", process)
        status, body = slack_requests.slash_command(SECRET, COMMAND, "help", user_id=ALICE).post(
            f"http://127.0.0.1:{port}/slack/events")
        assert status == 200
        assert "remind CONTACT WHEN NOTE" in json.dumps(json.loads(body)["blocks"])
        forged = slack_requests.slash_command("wrong", COMMAND, "help", user_id=ALICE)
        assert forged.post(f"http://127.0.0.1:{port}/slack/events")[0] == 401
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output.decode(errors="replace")
    assert TOKEN.encode() not in output
    assert b"shutting down" in output
