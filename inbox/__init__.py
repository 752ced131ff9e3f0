"""Rapport's inbox: IMAP ingestion, MIME parsing, threading, matching and assignment.

Entry points for other packages (they take plain parameters; `rapport.cli.inbox`
builds them from the settings):

- `inbox.imap.sync_mailbox(engine, spec, options=, classifier=)`: one pass over a mailbox.
- `inbox.imap.watch(engine, spec, folders, options=, classifier=, stop=)`: IDLE until `stop` is set.
- `inbox.local.sync_mailbox_directory(engine, root, mailbox, options=, classifier=)`: .eml / Maildir folders.
- `inbox.pipeline.process_batch(session, fetched, checkpoint=, options=, classifier=)`: the shared pipeline.
- `inbox.tags.dispatch_imap_outbox(engine, connect)`: IMAP keywords and moves from the outbox.
- `inbox.sent.sent_folders(specs)`: the mailboxes' Sent folders (is a Message-ID there, APPEND a copy),
  for the handler of replies sent from Slack (`bot.reply.reply_handler`).
- `inbox.assign.explain(session, conversation_id)` and `store.assignments.reassign(session, id, email, by=, now=)` (shared with Slack).
- `inbox.corrections.apply_correction(session, category, message=, conversation=, rep=, by=, now=, routes=)`:
  a category correction and the re-route it implies (`rapport nlp correct`, Slack's Recategorise).
"""
