"""Real servers on loopback for Rapport's tests (no mocks). Fixtures are in tests/conftest.py:

IMAP (Dovecot via scripts/imap-server):
    dovecot            session DovecotServer (plain IMAP); .add_user(), .append(), .client(), .doveadm()
    dovecot_tls        session DovecotServer with a self-signed cert: STARTTLS on .port, IMAPS on .tls_port,
                       trust .ca_file / .ssl_context()
    imap_account       a fresh user/mailbox per test on `dovecot`: .host .port .user .password .client() .append()
    imap_tls_account   the same on `dovecot_tls` (.client(ssl_mode="starttls" | "imaps"))
    make_dovecot       factory for private servers a test may stop()/start()/restart() (mail is kept)
PostgreSQL:
    pg_url             session SQLAlchemy URL ($RAPPORT_TEST_POSTGRES_URL, 127.0.0.1:5432/test, or a private cluster)
    pg_engine_url      a URL whose search_path is a fresh empty schema of this test
    db_url             parametrised: sqlite (file in tmp_path) and postgres (pg_engine_url)
Slack:
    fake_slack         FakeSlack Web API; WebClient(token="xoxb-...", base_url=fake_slack.base_url);
                       .calls(method) .wait_for(method, count) .fail_next(method, ...) .add_user(email) .messages(ch)
    fake_socket_mode   FakeSocketMode wired to fake_slack's apps.connections.open; .push(type, payload) -> ack
    slack_requests     (module) signed HTTP requests: slash_command(), interaction(), event(), payload builders
SMTP:
    smtp_server        SmtpServer (aiosmtpd): .host .port .messages .wait_for(count)
    smtp_tls_server    the same offering STARTTLS with `tls_cert` (session SelfSignedCert; cert_file is the CA)
"""
