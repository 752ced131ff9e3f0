"""Shared test infrastructure: real servers on loopback (see tests/servers/).

Only fixtures every package needs belong here; package-specific fixtures go in
tests/<package>/conftest.py.

When a server cannot be started the tests that need it are skipped with the reason,
except under CI=true, where they fail: CI must never pass by skipping.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from sqlalchemy.engine import Engine

from store.db import make_engine, upgrade
from tests.servers.dovecot import (
    DEFAULT_PASSWORD,
    DEFAULT_USERS,
    DovecotError,
    DovecotServer,
    ImapAccount,
    make_server_directory,
)
from tests.servers.fake_slack import FakeSlack
from tests.servers.fake_socket_mode import FakeSocketMode
from tests.servers.postgres import (
    DEFAULT_URL,
    PostgresUnavailable,
    PrivateCluster,
    create_schema,
    drop_schema,
    find_bin_dir,
    is_reachable,
)
from tests.servers.smtp import SmtpServer
from tests.servers.tls import SelfSignedCert, make_self_signed_cert

POSTGRES_URL_ENV = "RAPPORT_TEST_POSTGRES_URL"
# the machine's PostgreSQL: trust auth for postgres (or root) on database `test`
MACHINE_POSTGRES_URLS = (DEFAULT_URL, DEFAULT_URL.replace("//postgres@", "//root@"))


def unavailable(reason: str) -> NoReturn:
    """Skip locally, fail loudly under CI (a skipped server there would hide broken tests)."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI=true: required)", pytrace=False)
    pytest.skip(reason)


# ---------------------------------------------------------------- IMAP (Dovecot)
def _start_dovecot(*, tls: bool) -> DovecotServer:
    server = DovecotServer(make_server_directory(), tls=tls)
    try:
        server.start()
    except (DovecotError, OSError) as exc:
        server.purge()
        unavailable(f"cannot start Dovecot with scripts/imap-server: {exc}")
    return server


@pytest.fixture(scope="session")
def dovecot() -> Iterator[DovecotServer]:
    """The session's Dovecot (plain IMAP). Use imap_account for a mailbox of your own;
    use make_dovecot to stop or restart a server."""
    server = _start_dovecot(tls=False)
    yield server
    server.purge()


@pytest.fixture(scope="session")
def dovecot_tls() -> Iterator[DovecotServer]:
    """A Dovecot with a self-signed certificate: STARTTLS on .port, IMAPS on .tls_port, trust .ca_file."""
    server = _start_dovecot(tls=True)
    yield server
    server.purge()


@pytest.fixture
def make_dovecot() -> Iterator[Callable[..., DovecotServer]]:
    """A factory for private, started Dovecot servers (make_dovecot(tls=False, users=[...]))
    that a test may stop, start and restart; all are purged afterwards."""
    servers: list[DovecotServer] = []

    def make(*, tls: bool = False, users: Iterable[str] = DEFAULT_USERS,
             password: str = DEFAULT_PASSWORD) -> DovecotServer:
        server = DovecotServer(make_server_directory(), tls=tls, users=users, password=password)
        servers.append(server)
        try:
            server.start()
        except DovecotError as exc:
            unavailable(f"cannot start Dovecot with scripts/imap-server: {exc}")
        return server

    yield make
    for server in servers:
        server.purge()


def _new_account(server: DovecotServer) -> ImapAccount:
    user = f"t{secrets.token_hex(5)}@example.test"
    server.add_user(user)
    return ImapAccount(server, user, server.password)


@pytest.fixture
def imap_account(dovecot: DovecotServer) -> ImapAccount:
    """A fresh, empty mailbox user on the session Dovecot: host, port, user, password."""
    return _new_account(dovecot)


@pytest.fixture
def imap_tls_account(dovecot_tls: DovecotServer) -> ImapAccount:
    """A fresh user on the TLS Dovecot (the CA file is account.server.ca_file)."""
    return _new_account(dovecot_tls)


# ---------------------------------------------------------------- PostgreSQL
@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A SQLAlchemy URL of a PostgreSQL database: $RAPPORT_TEST_POSTGRES_URL, else the machine's
    server on 127.0.0.1:5432, else a private cluster started for this session."""
    configured = os.environ.get(POSTGRES_URL_ENV)
    if configured:
        if not is_reachable(configured):
            pytest.fail(f"{POSTGRES_URL_ENV}={configured} is set but not reachable", pytrace=False)
        yield configured
        return
    machine = next((url for url in MACHINE_POSTGRES_URLS if is_reachable(url)), None)
    if machine is not None:
        yield machine
        return
    bin_dir = find_bin_dir()
    if bin_dir is None:
        unavailable(f"PostgreSQL is not installed and 127.0.0.1:5432 is not reachable; set {POSTGRES_URL_ENV}")
    cluster = PrivateCluster(bin_dir)
    try:
        cluster.start()
    except (PostgresUnavailable, OSError) as exc:
        cluster.stop()
        unavailable(f"cannot start a private PostgreSQL cluster: {exc}")
    yield cluster.url
    cluster.stop()


@pytest.fixture
def pg_engine_url(pg_url: str) -> Iterator[str]:
    """A URL whose search_path is a fresh, empty schema of this test (dropped afterwards)."""
    schema, url = create_schema(pg_url)
    yield url
    drop_schema(pg_url, schema)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database URL, once for SQLite (a file) and once for PostgreSQL (a fresh schema)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'rapport.db'}"
    return str(request.getfixturevalue("pg_engine_url"))


# ---------------------------------------------------------------- Slack
@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    """The fake Slack Web API; WebClient(token="xoxb-test", base_url=fake_slack.base_url)."""
    with FakeSlack() as slack:
        yield slack


@pytest.fixture
def fake_socket_mode(fake_slack: FakeSlack) -> Iterator[FakeSocketMode]:
    """A Socket Mode websocket server, wired into fake_slack's apps.connections.open."""
    with FakeSocketMode() as server:
        fake_slack.socket_mode_url = server.url
        yield server


# ---------------------------------------------------------------- SMTP
@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> SelfSignedCert:
    """A self-signed certificate for localhost/127.0.0.1 (cert_file doubles as the CA file)."""
    try:
        return make_self_signed_cert(tmp_path_factory.mktemp("tls"))
    except (RuntimeError, OSError) as exc:
        unavailable(f"cannot make a test certificate: {exc}")


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """An SMTP server on 127.0.0.1 that keeps what it receives (.messages, .wait_for())."""
    with SmtpServer() as server:
        yield server


@pytest.fixture
def smtp_tls_server(tls_cert: SelfSignedCert) -> Iterator[SmtpServer]:
    """Like smtp_server, but offering STARTTLS with tls_cert."""
    with SmtpServer(tls_cert) as server:
        yield server


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated, empty database: once on SQLite, once on PostgreSQL (the `db_url` parameters)."""
    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def model_dir(request: pytest.FixtureRequest) -> Path:
    """Where Rapport's default model is trained once and kept between runs (.pytest_cache).

    Trained here, before any test starts a service that loads it: training takes minutes on
    a fresh clone, longer than a test waits for a mail to be ingested."""
    from nlp import ensure_default_model

    cache = Path(request.config.cache.mkdir("rapport-models"))
    ensure_default_model(cache)
    return cache


@pytest.fixture(scope="session")
def our_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A team's own model (`rapport nlp train` on its own labels): German returns and warranty
    claims, none of Rapport's categories. Its directory is what `[nlp] model` names."""
    import nlp

    rows = [(f"Rücksendung von Bestellung {i}, bitte Etikett schicken", "returns_de") for i in range(8)]
    rows += [(f"The kettle broke after {i} weeks, is it under warranty?", "warranty") for i in range(8)]
    out = tmp_path_factory.mktemp("our-model") / "model"
    nlp.train(rows, dev=None, out_dir=out, epochs=1, model_version="our-model")
    return out
