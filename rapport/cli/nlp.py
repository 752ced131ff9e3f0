"""`rapport nlp`: train, evaluate and try the classifier."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from rapport.cli.common import console, err_console, print_json
from store.validation import CATEGORIES, Invalid, check_category

if TYPE_CHECKING:
    import nlp

# `nlp` (spaCy) is imported by the commands that use it: at module level it cost every `rapport`
# command half a second, and every HTTP worker of `serve` 55 MB.

app = typer.Typer(
    help="Train, evaluate and try the mail classifier (category, language, entities).", no_args_is_help=True
)

DATA = typer.Option(..., "--data", help="CSV file with a text and a label column.")
TEXT_COLUMN = typer.Option(..., "--text-column", help="Column holding the text.")
LABEL_COLUMN = typer.Option(..., "--label-column", help="Column holding the label.")
MODEL = typer.Option(
    None, "--model", help="Model directory (default: Rapport's default model; `rapport nlp status` shows "
    "the one a database uses)."
)
JSON = typer.Option(False, "--json", help="Print JSON on stdout.")


@contextmanager
def user_errors() -> Iterator[None]:
    """Bad input ends the command with one clear line on stderr, exit code 2."""
    import nlp

    try:
        yield
    except (nlp.DataError, nlp.ModelError, nlp.EntityPatternError, nlp.UnknownLanguageError) as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def progress(line: str) -> None:
    err_console.print(line, highlight=False)


def load(model: Path | None, threshold: float = 0.5) -> nlp.Classifier:
    import nlp

    return nlp.load_classifier(
        model, cache_dir=nlp.default_cache_dir(), threshold=threshold, progress=progress
    )


@app.command()
def train(
    data: Path = DATA,
    text_column: str = TEXT_COLUMN,
    label_column: str = LABEL_COLUMN,
    out: Path | None = typer.Option(
        None, "--out", help="Where to save the model (default: the model cache)."
    ),
    epochs: int | None = typer.Option(
        None, "--epochs", min=1, help="Passes over the training data (default: each candidate's)."
    ),
) -> None:
    """Train a category model on a CSV.

    An eighth of the rows (by a stable hash) is held out: each candidate model
    (linear; linear with word vectors and a hidden part) trains on the rest and
    is scored there, and the best calibrates its confidence; the saved model
    then trains with the best's settings on every row (one training per
    candidate, plus one)."""
    import nlp

    with user_errors():
        examples = nlp.read_examples(data, text_column, label_column)
        out_dir = out or nlp.default_cache_dir() / f"trained-{data.stem}"
        candidates = [replace(c, epochs=epochs or c.epochs) for c in nlp.CANDIDATES]
        result = nlp.train_held_out(
            examples, out_dir=out_dir, candidates=candidates, progress=progress
        )
    console.print(
        f"saved {result.model_version} to {result.out_dir} ({result.seconds:.1f} s)", highlight=False
    )


@app.command()
def evaluate(
    data: Path = DATA,
    text_column: str = TEXT_COLUMN,
    label_column: str = LABEL_COLUMN,
    model: Path | None = MODEL,
    as_json: bool = JSON,
) -> None:
    """Score a model on a labelled CSV: accuracy, macro-F1, per class, docs/s."""
    import nlp

    with user_errors():
        examples = nlp.read_examples(data, text_column, label_column)
        result = nlp.evaluate(load(model), examples)
    if as_json:
        print_json(result.to_json())
        return
    table = Table("class", "precision", "recall", "F1", "support")
    for label, scores in result.per_class.items():
        table.add_row(
            label,
            f"{scores['precision']:.3f}",
            f"{scores['recall']:.3f}",
            f"{scores['f1']:.3f}",
            str(int(scores["support"])),
        )
    console.print(table)
    console.print(
        f"accuracy {result.accuracy:.4f}  macro-F1 {result.macro_f1:.4f}  n {result.n}  "
        f"{result.docs_per_s:.0f} docs/s",
        highlight=False,
    )


@app.command()
def classify(
    text: str = typer.Argument(..., help='Mail text, e.g. "Subject\\n\\nbody".'),
    model: Path | None = MODEL,
    threshold: float | None = typer.Option(
        None, "--threshold", min=0.0, max=1.0,
        help="Below it: needs_triage (default: confidence_threshold in the nlp section of rapport.toml, "
             "as the inbox uses it, else 0.5).",
    ),
    as_json: bool = JSON,
) -> None:
    """Classify one text: category, confidence, language, entities."""
    from rapport.cli.common import runtime

    if threshold is None:
        threshold = runtime().config.nlp.confidence_threshold
    with user_errors():
        result = load(model, threshold).classify([text])[0]
    if as_json:
        print_json(result.to_json())
        return
    console.print(
        f"category {result.category} ({result.confidence:.2f})  language {result.language or '-'}  "
        f"model {result.model_version}",
        highlight=False,
    )
    if result.category != result.top_category:  # needs_triage: say what it hides
        console.print(
            f"  top category {result.top_category} ({result.confidence:.2f}) is below the threshold "
            f"{threshold:.2f}",
            highlight=False,
        )
    for entity in result.entities:
        console.print(f"  {entity.label:<15} {entity.text!r} -> {entity.value}", highlight=False)


@app.command()
def correct(
    message: str = typer.Argument(
        ..., help="The message: its number in `rapport export messages`, or its Message-ID."
    ),
    category: str = typer.Argument(
        ..., help=f"The right category: one the model gives (the `model` of rapport.toml's nlp section, else Rapport's own: {', '.join(CATEGORIES)})."
    ),
    by: str | None = typer.Option(None, "--by", help="The rep making the correction (email)."),
) -> None:
    """Fix a message's category; the conversation may get a new owner.

    The fix is kept as training data for `rapport nlp retrain`, and the
    conversation is re-routed when its owner came from category or language
    routing."""
    from inbox.corrections import apply_correction
    from rapport.cli.common import acting_person, cli_actor, runtime
    from rapport.config import known_categories
    from rapport.errors import RapportError
    from rapport.wiring import routes
    from store.audit import record_audit
    from store.corrections import NotCorrectable, find_message
    from store.db import session_scope
    from store.reps import rep_by_email

    rt = runtime()
    try:
        check_category(category, known_categories(rt.config.nlp.model))
    except Invalid as exc:
        raise RapportError(str(exc)) from None
    now = rt.now()
    with session_scope(rt.engine) as session:
        found = find_message(session, message)
        if found is None:
            raise RapportError(
                f"no message {message!r} (use an id from `rapport export messages` or a Message-ID)"
            )
        rep = rep_by_email(session, by) if by else None
        if by and rep is None:
            raise RapportError(f"no rep with email {by!r}")
        try:
            applied = apply_correction(session, category, message=found, conversation=None, rep=rep,
                                       by=acting_person(by), routes=routes(rt.config),
                                       keyword_prefix=rt.config.inbox.keyword_prefix, now=now)
        except NotCorrectable as exc:
            raise RapportError(str(exc)) from None
        correction = applied.correction
        old = correction.old_category or "none"
        # the same action as Slack's Recategorise; the detail holds ids and categories only
        record_audit(session, cli_actor(by), "conversation.recategorise",
                     target_kind="conversation" if found.conversation_id else "message",
                     target_id=found.conversation_id or found.id, at=now,
                     detail={"message_id": found.id, "correction_id": correction.id, "old_category": old,
                             "new_category": category,
                             "new_owner_id": applied.reassigned.owner_id if applied.reassigned else None})
    console.print(
        f"message {found.id}: {old} -> {category} (kept for the next `rapport nlp retrain`)", highlight=False
    )
    console.print(applied.routing, highlight=False)


@app.command()
def retrain(as_json: bool = JSON) -> None:
    """Retrain this database's model from its corrections; keep it unless worse.

    Trains on the shipped data plus this database's corrections; the new model
    replaces the current one unless its accuracy on the shipped dev mails is more
    than 0.01 below it (training noise), and is used for this database only."""
    from rapport.cli.common import runtime
    from rapport.retraining import retrain_database

    with user_errors():
        result = retrain_database(runtime(), progress=progress)
    if as_json:
        print_json(
            {
                "replaced": result.replaced,
                "current_accuracy": result.old.accuracy,
                "candidate_accuracy": result.candidate.accuracy,
                "current_version": result.old_version,
                "candidate_version": result.candidate_version,
                "model_path": str(result.model_path),
                "corrections": result.n_corrections,
            }
        )
    else:
        console.print(result.summary(), highlight=False)
        console.print(f"this database's model: {result.model_path}", highlight=False)
    if not result.replaced:
        raise typer.Exit(1)


@app.command()
def status(as_json: bool = JSON) -> None:
    """The model this database uses, its scores, and corrections not yet learned.

    Default or retrained, its dev scores, when it was trained, and the
    corrections it has not learned yet, per language and category."""
    from rapport.cli.common import runtime
    from rapport.retraining import model_status

    with user_errors():
        found = model_status(runtime())
    if as_json:
        print_json(found.to_json())
        return
    model = found.model
    kind = "retrained for this database" if model.kind == "retrained" else "default (shared, shipped data)"
    dev = model.dev
    rows = [
        ("database", found.deployment),
        ("model", kind),
        ("path", str(model.path)),
        ("version", model.version or "not trained yet (trained on first use)"),
        ("trained", _when(model.trained_at) if model.trained else "not yet"),
        ("dev scores", f"accuracy {dev['accuracy']:.4f}, macro-F1 {dev['macro_f1']:.4f} on {int(dev['n'])} "
                       "shipped dev mails" if dev else "not recorded"),
        ("corrections", f"{found.n_pending} of {found.corrections} not yet in this model"),
    ]
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")  # a long path folds inside its column
    for label, value in rows:
        grid.add_row(label, escape(value))
    console.print(grid, highlight=False)
    if found.pending:
        table = Table("language", "category", "corrections", title="Not yet in the model")
        for language, category, n in found.pending:
            table.add_row(language or "unknown", category, str(n))
        console.print(table)


def _when(iso: str | None) -> str:
    return iso.replace("T", " ").replace("+00:00", " UTC") if iso else "not recorded"


if __name__ == "__main__":
    app()
