"""`rapport serve --workers N`: worker processes answer Slack on one port; one that dies is replaced."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import psutil

from tests.bot.conftest import ALICE, COMMAND, SECRET
from tests.bot.test_serve_process import CONFIG, LAUNCH, ROOT, TOKEN
from tests.servers import slack_requests
from tests.servers.fake_slack import FakeSlack
from tests.servers.ports import free_port


def _children(pid: int) -> set[int]:
    """The live processes whose parent is `pid`."""
    return {child.pid for child in psutil.Process(pid).children() if _alive(child.pid)}


def _workers(pid: int, count: int) -> set[int]:
    """Waits until `pid` has `count` worker processes (multiprocessing's resource tracker aside)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        workers = {child for child in _children(pid) if "resource_tracker" not in _cmdline(child)}
        if len(workers) == count:
            return workers
        time.sleep(0.1)
    raise AssertionError(f"expected {count} HTTP workers under {pid}, found {_children(pid)}")


def _cmdline(pid: int) -> str:
    try:
        return " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:  # it ended meanwhile
        return ""


def _wait_started(process: subprocess.Popen[bytes], log_file: Path) -> None:
    """Until `serve` logs that its workers are up (/healthz answers as soon as the first one is)."""
    deadline = time.monotonic() + 90
    while "worker processes" not in " ".join(log_file.read_text(errors="replace").split()):
        assert process.poll() is None, "rapport serve exited early"
        assert time.monotonic() < deadline, "rapport serve did not say its workers were up"
        time.sleep(0.1)


def _help(port: int) -> None:
    status, body = slack_requests.slash_command(SECRET, COMMAND, "help", user_id=ALICE).post(
        f"http://127.0.0.1:{port}/slack/events")
    assert status == 200
    assert "remind CONTACT WHEN NOTE" in json.dumps(json.loads(body)["blocks"])


def _launch(tmp_path: Path, fake_slack: FakeSlack, port: int, log: IO[bytes]) -> subprocess.Popen[bytes]:
    config = tmp_path / "rapport.toml"
    config.write_text(CONFIG)
    env = {
        **os.environ, "PYTHONPATH": str(ROOT), "RAPPORT_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        "RAPPORT_CONFIG": str(config), "SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": fake_slack.base_url, "RAPPORT_HTTP_PORT": str(port),
    }
    env.pop("SLACK_APP_TOKEN", None)
    # output to a file, not a pipe: the DEBUG lines of many requests would fill a pipe and block
    # the processes; a session of its own, so a failed test can kill the workers too
    return subprocess.Popen([sys.executable, "-c", LAUNCH, "--host", "127.0.0.1", "--no-watch", "--workers", "2"],
                            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _end(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_workers_answer_on_one_port_and_a_killed_one_is_replaced(tmp_path: Path, fake_slack: FakeSlack) -> None:
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    process = _launch(tmp_path, fake_slack, port, log)
    try:
        _wait_started(process, tmp_path / "serve.log")
        first = _workers(process.pid, 2)
        for _ in range(10):
            _help(port)
        forged = slack_requests.slash_command("wrong", COMMAND, "help", user_id=ALICE)
        assert forged.post(f"http://127.0.0.1:{port}/slack/events")[0] == 401

        killed = min(first)
        os.kill(killed, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while killed in _children(process.pid) or len(_workers(process.pid, 2) - first) != 1:
            assert time.monotonic() < deadline, "the killed worker was not replaced"
            time.sleep(0.1)
        for _ in range(10):
            _help(port)
        workers = _workers(process.pid, 2)

        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    finally:
        _end(process)
        log.close()
    text = (tmp_path / "serve.log").read_text(errors="replace")
    words = " ".join(text.split())  # Rich wraps log lines at the terminal's width
    assert process.returncode == 0, text
    assert "2 worker processes" in words
    assert f"HTTP worker {killed} exited" in words
    assert TOKEN not in text  # the workers log at the same (DEBUG) level as the main process
    assert "shutting down" in text
    assert not {pid for pid in workers if psutil.pid_exists(pid)}, "a worker outlived `rapport serve`"


def test_workers_stop_when_the_main_process_is_killed(tmp_path: Path, fake_slack: FakeSlack) -> None:
    """Regression: workers of a `serve` killed with -9 kept the port, so the next `serve` could not start."""
    port = free_port()
    with (tmp_path / "serve.log").open("wb") as log:
        process = _launch(tmp_path, fake_slack, port, log)
        try:
            _wait_started(process, tmp_path / "serve.log")
            workers = _workers(process.pid, 2)
            process.kill()
            process.wait()
            deadline = time.monotonic() + 30
            while any(_alive(pid) for pid in workers):
                assert time.monotonic() < deadline, "a worker outlived its killed main process"
                time.sleep(0.1)
        finally:
            _end(process)
    with socket.create_server(("127.0.0.1", port)):  # the port is free for the next `rapport serve`
        pass


def _alive(pid: int) -> bool:
    """`pid` runs and is not a zombie (an orphan's zombie is reaped by init, not by us)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_a_worker_killed_while_starting_is_replaced(tmp_path: Path, fake_slack: FakeSlack) -> None:
    """Regression: a worker killed before it was ready (the OOM killer, a stray signal) stopped the
    whole `serve` with "could not start", as if the configuration were wrong."""
    port = free_port()
    with (tmp_path / "serve.log").open("wb") as log:
        process = _launch(tmp_path, fake_slack, port, log)
        try:
            starting = _workers(process.pid, 2)  # spawned; importing the app takes them a second or more
            killed = min(starting)
            os.kill(killed, signal.SIGKILL)
            _wait_started(process, tmp_path / "serve.log")
            assert killed not in _workers(process.pid, 2)
            _help(port)
        finally:
            _end(process)
    words = " ".join((tmp_path / "serve.log").read_text(errors="replace").split())
    assert f"HTTP worker {killed} exited (code -9) while starting; starting another" in words
    assert "could not start" not in words
