"""Slack's mrkdwn in the terminal (`rapport chat`, the demo): styles, names, links; text from mail stays text."""

from __future__ import annotations

from rich.console import Console

from bot.blocks import actions, button, context, fields, section
from bot.notify import ConsoleSender, Outgoing
from bot.terminal import terminal_blocks, terminal_text
from store.models import Rep


def _styles(text: object) -> dict[str, str]:
    from rich.text import Text

    assert isinstance(text, Text)
    return {text.plain[span.start:span.end]: str(span.style) for span in text.spans}


def test_regression_bold_mentions_and_links_render_for_the_terminal() -> None:
    """The first `chat` printed `*Kind*` and `<@U01KARIN>` as they are sent to Slack."""
    mrkdwn = ("*Kind:* customer · owner <@U01KARIN> · <https://x.example/o/1|order 1> · <mailto:a@x.example|a@x.example>"
              " · `account_owner` · _since Monday_ · <!here>")
    text = terminal_text(mrkdwn, {"U01KARIN": "Karin Lindqvist"})
    assert text.plain == ("Kind: customer · owner @Karin Lindqvist · order 1 (https://x.example/o/1) · a@x.example"
                          " · account_owner · since Monday · @here")
    styles = _styles(text)
    assert "bold" in styles["Kind:"] and "bold" in styles["@Karin Lindqvist"]
    assert "link https://x.example/o/1" in styles["order 1"] and "italic" in styles["since Monday"]
    # a field Slack shows as a label over its value: one line
    card = terminal_blocks([fields("*Kind*\ncustomer", "*Owner*\n<@U01KARIN>")], "", {"U01KARIN": "Karin"})
    assert card.plain == "Kind: customer\nOwner: @Karin"


def test_text_from_mail_stays_literal() -> None:
    """Escaped customer text (`&lt;@U1&gt;`, `*` in a subject, a snake_case word) is not markup."""
    text = terminal_text("&gt; Re: &lt;@U1&gt; 2*3*4 a_b_c &amp; &lt;https://evil.example|click&gt;", {"U1": "X"})
    assert text.plain == "│ Re: <@U1> 2*3*4 a_b_c & <https://evil.example|click>"
    assert not any("link" in str(span.style) for span in text.spans)


def test_console_sender_prints_names_not_user_ids() -> None:
    console = Console(record=True, width=80)
    rep = Rep(name="Anna Berg", email="anna@x.example", slack_user_id="U02ANNA")
    message = Outgoing(rep=rep, text="*New email* for <@U02ANNA>", key="assign-dm:1",
                       blocks=[section("*Why you:* <@U02ANNA> owns the company")])

    class NoSession:  # slack_names reads the reps; here one rep, no database
        def exec(self, _query: object) -> list[Rep]:
            return [rep]

    ConsoleSender(console, full=1).send(NoSession(), message, since=None)  # type: ignore[arg-type]
    ConsoleSender(console, full=0).send(NoSession(), message, since=None)  # type: ignore[arg-type]
    output = console.export_text()
    assert "Why you: @Anna Berg owns the company" in output
    assert "DM to Anna Berg: New email for @Anna Berg" in output
    assert "<@" not in output and "*" not in output
    assert terminal_blocks([], "plain &amp; simple").plain == "plain & simple"


def test_regression_a_narrow_terminal_wraps_between_items_not_inside_one() -> None:
    """The demo's DMs broke "Language: sv" and "[Reassign to…]" across lines at 80 columns."""
    blocks = [context("*Category:* order (100%)", "*Urgency:* normal (no sign of urgency)", "*Language:* sv",
                      "*Received:* 4d ago"),
              actions(button("Claim", "claim"), button("Mark answered", "done"), button("Show conversation", "show"),
                      button("Reply", "reply"), button("Recategorise…", "cat"), button("Reassign to…", "to"))]
    text = terminal_blocks(blocks, "", width=60).plain
    lines = text.split("\n")
    assert lines == ["  Category: order (100%)",
                     "  Urgency: normal (no sign of urgency)  ·  Language: sv",
                     "  Received: 4d ago",
                     "  [Claim] [Mark answered] [Show conversation] [Reply]",
                     "  [Recategorise…] [Reassign to…]"]
    assert all(len(line) <= 60 for line in lines)
    # without a width (a message's plain text), one line per block as before
    assert len(terminal_blocks(blocks, "").plain.split("\n")) == 2
