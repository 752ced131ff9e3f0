"""Mutation testing by hand-picked breaks: would the tests notice if this line changed?

Each mutant replaces one exact text, which must occur once in its file (so the list
fails loudly when the code moves on), in a throw-away copy of the tracked files,
and runs only the tests that guard it. A mutant is killed when those tests fail.
Run through scripts/mutation.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


INBOX = ("tests/inbox/test_pipeline.py", "tests/inbox/test_threading.py")
PERMISSIONS = ("tests/bot/test_permissions.py", "tests/bot/test_assignment_dm.py")
FIGURES = ("tests/digest/test_figures.py", "tests/digest/test_boundaries.py")
IMPORT = ("tests/store/test_import.py", "tests/cli/test_export.py", "tests/store/test_csv_cells.py")
SLACK = ("tests/bot/test_hostile_content.py", "tests/bot/test_http_commands.py", "tests/bot/test_assignment_dm.py")

MUTANTS = [
    # ------------------------------------------------------------------ inbox/
    Mutant("threading ignores References", "inbox/threads.py",
           "ids.extend(reversed(list(self.references)))", "pass", INBOX),
    Mutant("threading ignores In-Reply-To", "inbox/threads.py",
           "ids = [self.in_reply_to] if self.in_reply_to else []", "ids = []", INBOX),
    Mutant("a reply stored before its question is not found", "inbox/threads.py",
           "found = self.by_references(key) or self.reply_of.get(key.message_id)",
           "found = self.by_references(key)", INBOX),
    Mutant("subject threading ignores the sender", "inbox/threads.py",
           "for c in self.by_subject.get((key.normalized_subject, p.lower()), [])",
           "for c in [c for cs in self.by_subject.values() for c in cs]", INBOX),
    Mutant("a customer writing again does not reopen", "store/conversations.py",
           "if conversation.status == ConversationStatus.open or (last_staff",
           "if True or (last_staff", INBOX),
    Mutant("first response is the latest reply, not the first", "store/conversations.py",
           "if conversation.first_response_at is None or at < conversation.first_response_at:",
           "if True:", INBOX),
    Mutant("Auto-Submitted: no is not a human", "inbox/automatic.py",
           'if _token(headers.get("auto-submitted", "")) == "no":\n        return _HUMAN',
           'if False:\n        return _HUMAN', ("tests/inbox/test_automatic.py",)),
    Mutant("away reps still get work", "inbox/assign.py",
           "if rep.away_until is not None and rep.away_until > team.now:", "if False:",
           ("tests/inbox/test_assign.py",)),
    Mutant("capacity is not a limit", "inbox/assign.py",
           "if check_hours and load >= rep.capacity:", "if check_hours and load > 10**6:",
           ("tests/inbox/test_assign.py",)),
    Mutant("IMAP fetch marks mail \\Seen", "inbox/imap.py",
           'bodies = client.fetch(small, ["BODY.PEEK[]"])', 'bodies = client.fetch(small, ["BODY[]"])',
           ("tests/inbox/test_imap.py",)),
    # ------------------------------------------------------------------ store/
    Mutant("import without a savepoint per row", "store/importing.py",
           "with session.begin_nested():", "with session.no_autoflush:", IMPORT),
    Mutant("an open quote swallows rows again", "store/importing.py",
           "if last > first and swallowed(values, first, last):", "if False:", IMPORT),
    Mutant("duplicate rows in a file are not reported", "store/importing.py",
           "if key and key in seen:", "if False:", IMPORT),
    Mutant("amounts too large reach the database", "store/validation.py",
           "if abs(amount) >= MAX_AMOUNT:", "if False:", IMPORT),
    Mutant("CSV export writes formulas", "store/exporting.py",
           "return \"'\" + value", "return value", IMPORT),
    Mutant("CSV export without a BOM", "store/exporting.py",
           "if bom:\n        out.write", "if False:\n        out.write", IMPORT),
    Mutant("lapsed on the mean gap", "store/segments.py",
           "statistics.median((later - earlier).days", "statistics.mean((later - earlier).days", FIGURES),
    Mutant("lapsed on the day the threshold is reached", "store/segments.py",
           "return history if (today - history[-1]).days > threshold else None",
           "return history if (today - history[-1]).days >= threshold else None", FIGURES),
    Mutant("an SLA due at the period's end counts twice", "store/digest.py",
           "_conversation.sla_due_at < due_end,", "_conversation.sla_due_at <= due_end,", FIGURES),
    Mutant("an SLA due at the period's start is lost", "store/digest.py",
           "_conversation.sla_due_at >= self.start,", "_conversation.sla_due_at > self.start,", FIGURES),
    Mutant("a conversation opened at the period's end counts", "store/digest.py",
           "_conversation.opened_at < self.end,\n                self._human_conversations(),",
           "_conversation.opened_at <= self.end,\n                self._human_conversations(),", FIGURES),
    # ------------------------------------------------------------------ bot/
    Mutant("anyone can claim", "bot/interactions.py",
           "if not (is_manager(rep) or can_see(session, rep, conversation.owner_id)):", "if False:", PERMISSIONS),
    Mutant("anyone can mark answered", "bot/interactions.py",
           "if conversation.owner_id != rep.id and not is_manager(rep):", "if False:", PERMISSIONS),
    Mutant("a rep can reassign", "bot/interactions.py",
           "if not is_manager(rep):\n        return _refused(\"Only a manager can reassign",
           "if False:\n        return _refused(\"Only a manager can reassign", PERMISSIONS),
    Mutant("a rep sees other teams' records", "bot/identity.py",
           "return visible is None or owner_id is None or owner_id in visible", "return True",
           ("tests/bot/test_http_commands.py", "tests/bot/test_search.py", *PERMISSIONS)),
    Mutant("mrkdwn escaping misses <", "bot/text.py",
           '.replace("<", "&lt;")', "", SLACK),
    Mutant("fields cut at 3,000", "bot/blocks.py",
           "mrkdwn(t, MAX_FIELD_TEXT) for t in texts[:MAX_FIELDS]", "mrkdwn(t) for t in texts[:MAX_FIELDS]",
           SLACK),
    Mutant("sections cut mid-line without a count", "bot/blocks.py",
           'return {"type": "mrkdwn", "text": fit(text, limit)}',
           'return {"type": "mrkdwn", "text": text[:limit]}', SLACK),
    Mutant("escalation of a conversation that had a first response", "bot/scheduler.py",
           "col(Conversation.first_response_at).is_(None),\n", "",
           ("tests/bot/test_sla_escalation.py", "tests/bot/test_assignment_dm.py")),
    Mutant("escalation repeats", "bot/scheduler.py",
           "col(Conversation.escalated_at).is_(None),\n", "",
           ("tests/bot/test_sla_escalation.py", "tests/bot/test_assignment_dm.py")),
    Mutant("Slack event retries act twice", "bot/app.py",
           'event_id = body.get("event_id") if body.get("type") == "event_callback" else None',
           "event_id = None", ("tests/bot/test_events_modals.py",)),
    Mutant("messages over 50 blocks are not split", "bot/blocks.py",
           "return [blocks[i : i + limit] for i in range(0, len(blocks), limit)]", "return [blocks]",
           ("tests/bot", "tests/digest/test_delivery.py")),
    Mutant("a crafted id in a button or form passes", "bot/access.py",
           "return [target for target in targets if not may_act(session, rep, target)]", "return []",
           ("tests/bot/test_privacy_access.py",)),
    Mutant("managers act on other teams", "bot/identity.py",
           "if rep.role == Role.admin or (is_manager(rep) and not rep.team):", "if is_manager(rep):",
           ("tests/bot/test_privacy_access.py",)),
    # ------------------------------------------------------------------ privacy
    Mutant("a re-sync brings erased mail back", "inbox/pipeline.py",
           "        if parsed.message_id in erased:\n", "        if False:\n", ("tests/inbox/test_privacy.py",)),
    Mutant("a re-import brings an erased person back", "store/importing.py",
           'if erased:', 'if False:',
           ("tests/inbox/test_privacy.py",)),
    Mutant("erasure keeps the mail text", "store/privacy.py",
           'message.subject = message.text = message.new_text = ""', 'message.subject = ""',
           ("tests/inbox/test_privacy.py",)),
    Mutant("retention ignores the batch size", "store/privacy.py",
           ".order_by(col(Message.id)).limit(batch)).all())", ".order_by(col(Message.id))).all())",
           ("tests/store/test_retention.py",)),
]


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    return [name for name in out.decode().split("\0") if name]


def copy_tree(target: Path) -> None:
    for name in tracked_files():
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def run(mutant: Mutant, tree: Path) -> str:
    """'killed', 'survived' or why the mutant no longer applies."""
    path = tree / mutant.path
    original = path.read_text(encoding="utf-8")
    if original.count(mutant.old) != 1:
        return f"does not apply ({original.count(mutant.old)} matches in {mutant.path})"
    path.write_text(original.replace(mutant.old, mutant.new), encoding="utf-8")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
             *mutant.tests],
            cwd=tree, capture_output=True, text=True, env=_env(tree),
        )
    finally:
        path.write_text(original, encoding="utf-8")
    return "survived" if result.returncode == 0 else "killed"


def _env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}


def main() -> int:
    parser = argparse.ArgumentParser(description="Run the hand-picked mutants and report the kill rate.")
    parser.add_argument("words", nargs="*", help="only mutants whose name contains one of these words")
    args = parser.parse_args()
    chosen = [m for m in MUTANTS if not args.words or any(w.lower() in m.name.lower() for w in args.words)]
    killed = survived = 0
    stale: list[str] = []
    with tempfile.TemporaryDirectory(prefix="rapport-mutation-") as tmp:
        tree = Path(tmp)
        copy_tree(tree)
        for mutant in chosen:
            verdict = run(mutant, tree)
            print(f"{verdict:9.9} {mutant.path:22} {mutant.name}", flush=True)
            if verdict == "killed":
                killed += 1
            elif verdict == "survived":
                survived += 1
            else:
                stale.append(f"{mutant.name}: {verdict}")
    tried = killed + survived
    print(f"\n{killed} of {tried} mutants killed ({100 * killed / max(tried, 1):.0f} %)")
    for line in stale:
        print(f"stale, fix the list: {line}")
    return 0 if not stale and survived == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
