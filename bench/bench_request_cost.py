"""What one Slack request costs in an HTTP worker: CPU, statements, the database server's CPU.

    python bench/bench_request_cost.py [--only sqlite|postgres] [--requests 500] [--rounds 3]
    valgrind --tool=callgrind --instr-atstart=no --trace-children=no \\
        python bench/bench_request_cost.py --only postgres --requests 50 --instructions

The demo's data (as bench_serve_load builds it), and the worker's own WSGI app (`rapport.serve.
http_front`: the guard, Bolt's adapter, the listeners) called in this process with signed `/crm
find NAME`, `/crm my` and contact clicks, one at a time, so no other work is counted: per kind,
this process's CPU per request (median of the rounds), statements per request, and PostgreSQL's
CPU per request (its processes on this machine, read with psutil). The load bench's throughput
is bounded by these. On a shared machine CPU time moves by 10-20 % from minute to minute;
`--instructions`, run under callgrind as above, counts the instructions of this process per
request instead, which do not move (the same run twice: within 0.5 %). It builds a tiny
extension that starts and stops callgrind's counting around each kind (a C compiler and
valgrind's headers are needed; on Debian: gcc, python3-dev, valgrind), and reads each kind's
total from the file callgrind writes for it.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_serve_load import KINDS, POSTGRES_URL, _request, demo_runtime, fake_slack_process, target_for
from tests.servers import slack_requests

App = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

TOGGLE_C = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <valgrind/callgrind.h>
static PyObject* start(PyObject* s, PyObject* a) { CALLGRIND_ZERO_STATS; CALLGRIND_START_INSTRUMENTATION; Py_RETURN_NONE; }
static PyObject* dump(PyObject* s, PyObject* a) {
    const char* name; if (!PyArg_ParseTuple(a, "s", &name)) return NULL;
    CALLGRIND_STOP_INSTRUMENTATION; CALLGRIND_DUMP_STATS_AT(name); Py_RETURN_NONE; }
static PyMethodDef methods[] = {{"start", start, METH_NOARGS, ""}, {"dump", dump, METH_VARARGS, ""}, {0}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "callgrind_toggle", 0, -1, methods};
PyMODINIT_FUNC PyInit_callgrind_toggle(void) { return PyModule_Create(&module); }
"""


def call(app: App, request: slack_requests.SignedRequest) -> None:
    """One request through the WSGI app, as waitress would hand it over."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/slack/events", "QUERY_STRING": "", "SERVER_NAME": "bench",
        "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
        "REMOTE_ADDR": "127.0.0.1", "CONTENT_LENGTH": str(len(request.body)), "wsgi.input": io.BytesIO(request.body),
    }
    for name, value in request.headers.items():
        key = name.upper().replace("-", "_")
        environ[key if key == "CONTENT_TYPE" else f"HTTP_{key}"] = value
    statuses: list[str] = []
    b"".join(app(environ, lambda status, headers, exc_info=None: statuses.append(status)))
    assert statuses and statuses[0].startswith("200"), statuses


def postgres_cpu_seconds() -> float:
    import psutil

    total = 0.0
    for process in psutil.process_iter(["name"]):
        if (process.info["name"] or "").startswith("postgres"):
            try:
                times = process.cpu_times()
            except psutil.Error:  # a backend that ended meanwhile
                continue
            total += times.user + times.system
    return total


def callgrind_toggle() -> Any:
    """The extension that starts and stops callgrind's counting, built in a temporary folder."""
    folder = Path(tempfile.mkdtemp(prefix="rapport-callgrind-"))
    source = folder / "callgrind_toggle.c"
    source.write_text(TOGGLE_C)
    target = folder / f"callgrind_toggle{sysconfig.get_config_var('EXT_SUFFIX')}"
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", f"-I{sysconfig.get_paths()['include']}", str(source),
                    "-o", str(target)], check=True)
    sys.path.insert(0, str(folder))
    import callgrind_toggle  # type: ignore[import-not-found]

    return callgrind_toggle


def callgrind_total(name: str) -> int:
    """The instruction total of the dump callgrind wrote for `name` (in the current directory)."""
    for path in sorted(Path.cwd().glob(f"callgrind.out.{os.getpid()}*"), key=lambda p: p.stat().st_mtime,
                       reverse=True):
        text = path.read_text(errors="replace")
        if f"Client Request: {name}\n" in text:
            return int(next(line for line in text.splitlines() if line.startswith("totals:")).split()[1])
    raise SystemExit(f"no callgrind dump for {name}: run this under valgrind --tool=callgrind (see --help)")


def measure(label: str, url: str, args: argparse.Namespace) -> None:
    from sqlalchemy import event

    from bench.bench_ingest import NoClassifier
    from bot.http import HttpLimits
    from rapport.serve import http_front, slack_app, slack_credentials
    from rapport.wiring import reply_handler, survey_options
    from store.types import utcnow
    from tests.servers.dovecot import DovecotServer, make_server_directory

    with tempfile.TemporaryDirectory() as tmp, fake_slack_process() as slack_url, \
            DovecotServer(make_server_directory(), users=["bench@example.test"]) as dovecot:
        rt = demo_runtime(url, Path(tmp) / "demo", slack_url=slack_url, mailbox=dovecot, user="bench@example.test",
                          classifier=NoClassifier())
        secret, _ = slack_credentials(rt.settings)
        slack = slack_app(rt, reply_handler(rt), utcnow)
        app = http_front(rt, slack, secret=secret, surveys=survey_options(rt), limits=HttpLimits(), clock=utcnow)
        assert app is not None
        statements: Counter[str] = Counter()
        kind_now: list[str] = [""]
        event.listen(rt.engine, "before_cursor_execute", lambda *_args: statements.update(kind_now))
        rng = random.Random(7)
        target = target_for(rt, 0)
        requests = {kind: [_request(target, kind, rng) for _ in range(args.requests)] for kind in KINDS}
        for kind in KINDS:  # warm: statements prepared, caches filled
            for request in requests[kind][:50]:
                call(app, request)
        toggle = callgrind_toggle() if args.instructions else None
        cpu: dict[str, list[float]] = {kind: [] for kind in KINDS}
        server: dict[str, list[float]] = {kind: [] for kind in KINDS}
        instructions: dict[str, float] = {}
        for _ in range(1 if toggle else args.rounds):
            for kind in KINDS:
                kind_now[0] = kind
                server_before, before = postgres_cpu_seconds(), time.process_time()
                if toggle:
                    toggle.start()
                for request in requests[kind]:
                    call(app, request)
                time.sleep(0.2)  # the deliveries after an ack (a click's modal) belong to it
                if toggle:
                    toggle.dump(f"{label}-{kind}")
                    instructions[kind] = callgrind_total(f"{label}-{kind}") / args.requests
                cpu[kind].append((time.process_time() - before) / args.requests)
                server[kind].append((postgres_cpu_seconds() - server_before) / args.requests)
                kind_now[0] = ""
        slack.close()
    print(f"\n{label}, {args.requests} requests per kind, one at a time"
          + ("" if toggle else f", median of {args.rounds} rounds"))
    for kind in KINDS:
        line = f"  {kind:5}  statements {statements[kind] / len(cpu[kind]) / args.requests:4.1f}"
        if kind in instructions:  # under valgrind, times say nothing
            print(f"{line}  {instructions[kind] / 1e6:5.2f} M instructions")
            continue
        line += f"  CPU {statistics.median(cpu[kind]) * 1000:5.2f} ms"
        if label == "PostgreSQL":
            line += f"  server CPU {statistics.median(server[kind]) * 1000:4.2f} ms"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["sqlite", "postgres"], help="one database only")
    parser.add_argument("--postgres-url", default=POSTGRES_URL)
    parser.add_argument("--requests", type=int, default=500, help="requests per kind and round (default 500)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, the median is printed (default 3)")
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions per request (run under callgrind, see above)")
    args = parser.parse_args()
    if not 50 <= args.requests <= 100_000 or not 0 < args.rounds <= 50:
        parser.error("--requests must be in [50, 100000] and --rounds in [1, 50]")

    from tests.servers.postgres import create_schema, drop_schema

    if args.only != "postgres":
        with tempfile.TemporaryDirectory() as tmp:
            measure("SQLite", f"sqlite:///{tmp}/bench.db", args)
    if args.only != "sqlite":
        schema, url = create_schema(args.postgres_url)
        try:
            measure("PostgreSQL", url, args)
        finally:
            drop_schema(args.postgres_url, schema)


if __name__ == "__main__":
    main()
