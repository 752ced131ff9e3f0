"""The test servers themselves work: each test drives one with a real client."""

from __future__ import annotations

import smtplib
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from email.message import EmailMessage
from typing import Any

import pytest
import sqlalchemy as sa
from imapclient import IMAPClient
from imapclient.exceptions import LoginError
from slack_bolt import Ack, App, BoltRequest
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import RetryHandler
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from tests.conftest import unavailable
from tests.servers import slack_requests
from tests.servers.dovecot import DovecotServer, ImapAccount
from tests.servers.fake_slack import FakeSlack
from tests.servers.fake_socket_mode import FakeSocketMode
from tests.servers.postgres import (
    PrivateCluster,
    connect,
    create_schema,
    drop_schema,
    find_bin_dir,
    is_reachable,
)
from tests.servers.smtp import SmtpServer
from tests.servers.tls import SelfSignedCert

SIGNING_SECRET = "test-signing-secret"


def make_mail(subject: str, body: str = "Hello") -> bytes:
    message = EmailMessage()
    message["From"] = "Customer <customer@example.com>"
    message["To"] = "support@example.test"
    message["Subject"] = subject
    message["Message-ID"] = f"<{subject.replace(' ', '-')}@example.com>"
    message.set_content(body)
    return message.as_bytes()


# ---------------------------------------------------------------- IMAP
def test_imap_append_then_fetch(imap_account: ImapAccount) -> None:
    uid = imap_account.append("INBOX", make_mail("first order"), flags=[r"\Seen"])
    with imap_account.client() as client:
        client.select_folder("INBOX")
        fetched = client.fetch([uid], ["RFC822", "FLAGS"])
    assert b"Subject: first order" in fetched[uid][b"RFC822"]
    assert rb"\Seen" in fetched[uid][b"FLAGS"]


def test_imap_append_creates_a_missing_folder(imap_account: ImapAccount) -> None:
    imap_account.append("Sales/Leads", make_mail("new lead"))
    with imap_account.client() as client:
        assert client.folder_status("Sales/Leads", ["MESSAGES"])[b"MESSAGES"] == 1


def test_imap_accounts_do_not_share_mail(imap_account: ImapAccount, dovecot: DovecotServer) -> None:
    imap_account.append("INBOX", make_mail("private"))
    other = "other-" + imap_account.user
    dovecot.add_user(other)
    with dovecot.client(other) as client:
        assert client.select_folder("INBOX")[b"EXISTS"] == 0


def test_imap_rejects_a_wrong_password(imap_account: ImapAccount) -> None:
    with IMAPClient(imap_account.host, port=imap_account.port, ssl=False) as client, \
            pytest.raises(LoginError):
        client.login(imap_account.user, "wrong-" + imap_account.password)


def test_imap_idle_wakes_up_after_an_append(imap_account: ImapAccount) -> None:
    with imap_account.client() as client:
        client.select_folder("INBOX")
        client.idle()
        appender = threading.Thread(target=imap_account.append, args=("INBOX", make_mail("while idle")))
        appender.start()
        responses: list[tuple[object, ...]] = []
        deadline = time.monotonic() + 30  # a bound against hanging, not a speed assertion
        while not any(b"EXISTS" in response for response in responses) and time.monotonic() < deadline:
            responses += client.idle_check(timeout=5)
        client.idle_done()
        appender.join()
    assert (1, b"EXISTS") in responses


def test_imap_mail_survives_stop_start_and_restart(make_dovecot: Callable[..., DovecotServer]) -> None:
    server = make_dovecot(users=["keep@example.test"])
    uid = server.append("INBOX", make_mail("kept"))
    server.stop()
    assert not server.is_running()
    server.start()
    server.restart()
    with server.client() as client:
        client.select_folder("INBOX")
        assert b"Subject: kept" in client.fetch([uid], ["RFC822"])[uid][b"RFC822"]


def test_imap_starttls_and_imaps_with_the_ca_file(imap_tls_account: ImapAccount) -> None:
    imap_tls_account.append("INBOX", make_mail("over tls"))
    for mode in ("starttls", "imaps"):
        with imap_tls_account.client(ssl_mode=mode) as client:
            assert client.select_folder("INBOX")[b"EXISTS"] == 1


def test_imaps_refuses_an_untrusted_certificate(dovecot_tls: DovecotServer) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        IMAPClient(dovecot_tls.host, port=dovecot_tls.tls_port, ssl=True,
                   ssl_context=ssl.create_default_context())


# ---------------------------------------------------------------- PostgreSQL
def test_postgres_schemas_are_isolated(pg_url: str, pg_engine_url: str) -> None:
    mine = sa.create_engine(pg_engine_url)
    other_schema, other_url = create_schema(pg_url)
    other = sa.create_engine(other_url)
    try:
        with mine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE contact (email text primary key)"))
            conn.execute(sa.text("INSERT INTO contact VALUES ('a@example.com')"))
        assert sa.inspect(mine).get_table_names() == ["contact"]
        assert sa.inspect(other).get_table_names() == []
    finally:
        mine.dispose()
        other.dispose()
        drop_schema(pg_url, other_schema)


@pytest.mark.slow
def test_private_postgres_cluster_serves_and_goes_away() -> None:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        unavailable("PostgreSQL is not installed (scripts/test installs it when no server answers on 5432)")
    cluster = PrivateCluster(bin_dir)
    try:
        cluster.start()
        with connect(cluster.url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("test",)
    finally:
        cluster.stop()
    assert not is_reachable(cluster.url)
    assert not cluster.directory.exists()


def test_db_url_gives_an_empty_working_database(db_url: str) -> None:
    engine = sa.create_engine(db_url)
    try:
        assert sa.inspect(engine).get_table_names() == []
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE note (id integer primary key, body text)"))
            conn.execute(sa.text("INSERT INTO note (id, body) VALUES (1, 'hi')"))
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT body FROM note")).scalar_one() == "hi"
    finally:
        engine.dispose()


# ---------------------------------------------------------------- Slack Web API
def web_client(fake_slack: FakeSlack, retry_handlers: list[RetryHandler] | None = None) -> WebClient:
    return WebClient(token="xoxb-test-token", base_url=fake_slack.base_url, retry_handlers=retry_handlers)


def test_fake_slack_records_a_post_message_without_the_token(fake_slack: FakeSlack) -> None:
    response = web_client(fake_slack).chat_postMessage(channel="C0SALES", text="New lead: ACME")
    [call] = fake_slack.calls("chat.postMessage")
    assert call.params["text"] == "New lead: ACME"
    assert call.token_prefix == "xoxb"
    assert "xoxb-test-token" not in str(call.headers)
    assert fake_slack.messages("C0SALES")[0]["ts"] == response["ts"]


def test_fake_slack_directory_and_dm_channels(fake_slack: FakeSlack) -> None:
    alice = fake_slack.add_user("alice@example.test")
    client = web_client(fake_slack)
    assert client.users_lookupByEmail(email="Alice@example.test")["user"]["id"] == alice["id"]
    with pytest.raises(SlackApiError) as error:
        client.users_lookupByEmail(email="nobody@example.test")
    assert error.value.response["error"] == "users_not_found"
    channel = client.conversations_open(users=alice["id"])["channel"]["id"]
    assert channel.startswith("D")
    assert client.chat_postMessage(channel=alice["id"], text="hi")["channel"] == channel


def test_fake_slack_keeps_messages_for_update_history_and_permalinks(fake_slack: FakeSlack) -> None:
    client = web_client(fake_slack)
    posted = client.chat_postMessage(channel="C0SALES", text="draft", metadata={
        "event_type": "rapport_outbox", "event_payload": {"key": "assign-dm:1"}})
    client.chat_update(channel="C0SALES", ts=posted["ts"], text="final")
    [message] = client.conversations_history(channel="C0SALES", include_all_metadata=True)["messages"]
    assert (message["text"], message["metadata"]["event_payload"]["key"]) == ("final", "assign-dm:1")
    permalink = client.chat_getPermalink(channel="C0SALES", message_ts=posted["ts"])["permalink"]
    assert posted["ts"].replace(".", "") in permalink
    with pytest.raises(SlackApiError) as error:
        client.chat_update(channel="C0SALES", ts="1.000000", text="nothing there")
    assert error.value.response["error"] == "message_not_found"


def test_fake_slack_views_and_users_info(fake_slack: FakeSlack) -> None:
    bob = fake_slack.add_user("bob@example.test", "U0BOB", tz="America/New_York")
    client = web_client(fake_slack)
    view = {"type": "modal", "title": {"type": "plain_text", "text": "Assign"}, "blocks": []}
    opened = client.views_open(trigger_id="1337.42.abcdef", view=view)["view"]
    assert client.views_update(view_id=opened["id"], view=view)["view"]["id"] == opened["id"]
    assert client.views_publish(user_id="U0BOB", view={"type": "home", "blocks": []})["ok"]
    assert client.users_info(user="U0BOB")["user"]["tz"] == bob["tz"]
    assert [call.method for call in fake_slack.calls()] == [
        "views.open", "views.update", "views.publish", "users.info"]


def test_fake_slack_enforces_the_block_limit(fake_slack: FakeSlack) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": f"line {n}"}} for n in range(51)]
    with pytest.raises(SlackApiError) as error:
        web_client(fake_slack).chat_postMessage(channel="C0SALES", text="digest", blocks=blocks)
    assert error.value.response["error"] == "invalid_blocks"
    assert fake_slack.take_violations() == ["chat.postMessage: 51 blocks, at most 50"]


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _select(text: str, value: str) -> dict[str, Any]:
    return {"type": "actions", "elements": [{"type": "static_select", "action_id": "pick",
            "placeholder": {"type": "plain_text", "text": "Pick"},
            "options": [{"text": {"type": "plain_text", "text": text}, "value": value}]}]}


def _button(n: int) -> dict[str, Any]:
    return {"type": "button", "action_id": f"b{n}", "text": {"type": "plain_text", "text": "Go"}}


REFUSED_MESSAGES = {
    "section text 3,001": [_section("x" * 3001)],
    "field 2,001": [{"type": "section", "fields": [{"type": "mrkdwn", "text": "x" * 2001}]}],
    "11 fields": [{"type": "section", "fields": [{"type": "mrkdwn", "text": "x"}] * 11}],
    "header 151": [{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}],
    "option text 76": [_select("x" * 76, "v")],
    "option value 151": [_select("x", "v" * 151)],
    "26 actions elements": [{"type": "actions", "elements": [_button(n) for n in range(26)]}],
    "duplicate block ids": [{**_section("a"), "block_id": "b"}, {**_section("b"), "block_id": "b"}],
    "unknown block type": [{"type": "banner", "text": "x"}],
}


@pytest.mark.parametrize("blocks", REFUSED_MESSAGES.values(), ids=REFUSED_MESSAGES.keys())
def test_fake_slack_refuses_what_real_slack_refuses(fake_slack: FakeSlack, blocks: list[dict[str, Any]]) -> None:
    with pytest.raises(SlackApiError) as error:
        web_client(fake_slack).chat_postMessage(channel="C0SALES", text="x", blocks=blocks)
    assert error.value.response["error"] == "invalid_blocks"
    assert len(fake_slack.take_violations()) >= 1


def test_fake_slack_refuses_long_modal_titles_and_too_many_surface_blocks(fake_slack: FakeSlack) -> None:
    client = web_client(fake_slack)
    with pytest.raises(SlackApiError):
        client.views_open(trigger_id="1.2.3", view={"type": "modal", "title": {"type": "plain_text",
                                                    "text": "x" * 25}, "blocks": []})
    with pytest.raises(SlackApiError):
        client.views_publish(user_id="U0BOB", view={"type": "home", "blocks": [_section("x")] * 101})
    assert client.views_publish(user_id="U0BOB", view={"type": "home", "blocks": [_section("x")] * 100})["ok"]
    assert len(fake_slack.take_violations()) >= 2


def test_a_refused_payload_fails_the_test_that_sent_it() -> None:
    with pytest.raises(AssertionError, match="field of 2001 characters"), FakeSlack() as slack, \
            pytest.raises(SlackApiError):
        web_client(slack).chat_postMessage(channel="C1", text="x", blocks=REFUSED_MESSAGES["field 2,001"])


def test_raw_mentions_from_outside_are_found_and_rapports_own_pass(fake_slack: FakeSlack) -> None:
    fake_slack.allow_mentions("U0ALICE")
    web_client(fake_slack).chat_postMessage(
        channel="C1", text="Contact: <!channel>", blocks=[_section("<@U0ALICE> &lt;!here&gt; <http://evil|x>")])
    fake_slack.check_response({"text": "<#C0GENERAL>", "blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": "<!channel> never pings in plain text"}}]})
    assert fake_slack.mention_problems() == [
        "chat.postMessage: <!channel>", "chat.postMessage: <http://evil|x>", "response: <#C0GENERAL>"]


def test_fake_slack_rejects_calls_without_a_token(fake_slack: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as error:
        WebClient(base_url=fake_slack.base_url).auth_test()
    assert error.value.response["error"] == "not_authed"


def test_files_upload_v2_completes_end_to_end(fake_slack: FakeSlack) -> None:
    response = web_client(fake_slack).files_upload_v2(
        channel="C0SALES", filename="digest.png", content=b"\x89PNG fake", title="Weekly digest")
    file_id = response["file"]["id"]
    assert fake_slack.uploaded(file_id) == b"\x89PNG fake"
    assert response["file"]["title"] == "Weekly digest"
    assert [call.method for call in fake_slack.calls()] == [
        "files.getUploadURLExternal", "files.completeUploadExternal"]
    [shared] = fake_slack.messages("C0SALES")  # as in Slack: the share is a message in the channel
    assert [f["id"] for f in shared["files"]] == [file_id]


def test_rate_limit_is_retried_by_the_sdk(fake_slack: FakeSlack) -> None:
    fake_slack.fail_next("chat.postMessage", status=429, retry_after=0)
    client = web_client(fake_slack, retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)])
    assert client.chat_postMessage(channel="C0SALES", text="retry me")["ok"]
    assert [call.status for call in fake_slack.calls("chat.postMessage")] == [429, 200]


def test_error_payload_injection(fake_slack: FakeSlack) -> None:
    fake_slack.fail_next("chat.postMessage", error="channel_not_found")
    client = web_client(fake_slack)
    with pytest.raises(SlackApiError):
        client.chat_postMessage(channel="C0GONE", text="lost")
    assert client.chat_postMessage(channel="C0GONE", text="found")["ok"]


# ---------------------------------------------------------------- Socket Mode and signed requests
def make_bolt_app(fake_slack: FakeSlack, signing_secret: str | None = None) -> App:
    app = App(client=web_client(fake_slack), signing_secret=signing_secret)

    @app.command("/rapport")
    def answer(ack: Ack, command: dict[str, str], client: WebClient) -> None:
        ack(f"looking up {command['text']}")
        client.chat_postMessage(channel=command["channel_id"], text=f"owner of {command['text']}: alice")

    return app


def test_socket_mode_round_trip_with_slack_bolt(fake_slack: FakeSlack, fake_socket_mode: FakeSocketMode) -> None:
    handler = SocketModeHandler(make_bolt_app(fake_slack), app_token="xapp-test-token")
    handler.connect()
    try:
        fake_socket_mode.wait_for_connection()
        ack = fake_socket_mode.push("slash_commands", slack_requests.slash_command_payload("/rapport", "acme.com"))
        assert ack["payload"]["text"] == "looking up acme.com"
        [call] = fake_slack.wait_for("chat.postMessage")
        assert (call.params["channel"], call.params["text"]) == ("C0GENERAL", "owner of acme.com: alice")
        assert fake_slack.calls("apps.connections.open")[0].token_prefix == "xapp"
    finally:
        handler.close()


def dispatch(app: App, request: slack_requests.SignedRequest) -> int:
    headers: dict[str, str | Sequence[str]] = dict(request.headers)
    return app.dispatch(BoltRequest(body=request.body.decode(), headers=headers)).status


def test_signed_slash_command_is_accepted_and_forgeries_are_not(fake_slack: FakeSlack) -> None:
    app = make_bolt_app(fake_slack, signing_secret=SIGNING_SECRET)
    assert dispatch(app, slack_requests.slash_command("wrong-secret", "/rapport", "acme.com")) == 401
    replayed = slack_requests.slash_command(SIGNING_SECRET, "/rapport", "acme.com",
                                            timestamp=int(time.time()) - 600)
    assert dispatch(app, replayed) == 401
    assert dispatch(app, slack_requests.slash_command(SIGNING_SECRET, "/rapport", "acme.com")) == 200
    [call] = fake_slack.wait_for("chat.postMessage")  # the listener runs after the ack
    assert call.params["text"] == "owner of acme.com: alice"


def test_signed_event_and_interaction_verify(fake_slack: FakeSlack) -> None:
    app = App(client=web_client(fake_slack), signing_secret=SIGNING_SECRET)
    seen: list[str] = []
    app.event("app_mention")(lambda event: seen.append(event["text"]))

    @app.action("assign")
    def assign(ack: Ack, body: dict[str, object]) -> None:
        ack()
        seen.append("assign")

    mention = slack_requests.event_payload({"type": "app_mention", "text": "<@U0BOT> hi", "user": "U0ALICE",
                                            "channel": "C0GENERAL", "ts": "1700000000.000100"})
    assert dispatch(app, slack_requests.event(SIGNING_SECRET, mention)) == 200
    click = slack_requests.block_action_payload("assign", "conversation-1")
    assert dispatch(app, slack_requests.interaction(SIGNING_SECRET, click)) == 200
    deadline = time.monotonic() + 10  # events run in bolt's thread pool after the ack
    while len(seen) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(seen) == ["<@U0BOT> hi", "assign"]


# ---------------------------------------------------------------- SMTP
def digest_mail() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "rapport@example.test"
    message["To"] = "alice@example.test"
    message["Subject"] = "Your weekly digest"
    message.set_content("3 open conversations")
    return message


def test_smtp_receives_a_message_from_smtplib(smtp_server: SmtpServer) -> None:
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as client:
        client.send_message(digest_mail())
    [mail] = smtp_server.wait_for(1)
    assert mail.mail_from == "rapport@example.test"
    assert mail.rcpt_tos == ["alice@example.test"]
    assert b"Subject: Your weekly digest" in mail.data
    assert not mail.used_tls


def test_smtp_starttls_with_the_ca_file(smtp_tls_server: SmtpServer, tls_cert: SelfSignedCert) -> None:
    with smtplib.SMTP(smtp_tls_server.host, smtp_tls_server.port, timeout=10) as client:
        client.starttls(context=tls_cert.client_context())
        client.send_message(digest_mail())
    [mail] = smtp_tls_server.wait_for(1)
    assert mail.used_tls
