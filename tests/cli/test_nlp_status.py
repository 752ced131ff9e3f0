"""A retrained model belongs to the database it learned from; `rapport nlp status` says which model is used."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import nlp
from inbox.corrections import apply_correction
from rapport.cli.common import runtime
from rapport.cli.main import app
from rapport.config import AppConfig
from rapport.retraining import model_status, retrain_database
from rapport.settings import load_settings
from rapport.wiring import Runtime
from store.db import session_scope
from store.models import Conversation, Message
from store.types import utcnow


@pytest.fixture
def cache(model_dir: Path, tmp_path: Path) -> Path:
    """A model cache holding only the shared default model (copied: retraining writes next to it)."""
    default = nlp.ensure_default_model(model_dir)
    cache = tmp_path / "models"
    shutil.copytree(default, cache / default.name)
    return cache


def database(tmp_path: Path, name: str, cache: Path) -> Runtime:
    settings = load_settings(database_url=f"sqlite:///{tmp_path / name}.db", model_dir=cache,
                             config_file=tmp_path / "absent.toml")
    rt = Runtime(settings=settings, config=AppConfig())
    rt.create_database()
    return rt


def add_correction(rt: Runtime, text: str, category: str, language: str) -> None:
    with session_scope(rt.engine) as session:
        conversation = Conversation(subject="Anfrage", category="feedback", language=language)
        session.add(conversation)
        session.flush()
        message = Message(conversation_id=conversation.id, message_id=f"<{text[:12]}@x>", subject="Anfrage",
                          new_text=text, category="feedback", language=language)
        session.add(message)
        session.flush()
        apply_correction(session, category, message=message, conversation=conversation, rep=None, by="test",
                         now=utcnow())


def test_retraining_one_database_leaves_another_databases_model_alone(tmp_path: Path, cache: Path) -> None:
    first, second = database(tmp_path, "first", cache), database(tmp_path, "second", cache)
    assert first.deployment != second.deployment
    before = model_status(second).model
    assert before.kind == "default" and before.trained
    add_correction(first, "Wir möchten eine Vorführung Ihrer Software für zwölf Personen.", "sales", "de")

    # One epoch and any score accepted: this test is about where the model goes, not how good it is.
    result = retrain_database(first, settings=nlp.TrainSettings(epochs=1), tolerance=1.0)

    assert result.replaced and result.model_path == cache / f"current-{first.deployment}"
    assert model_status(second).model == before
    assert nlp.active_model_path(cache, deployment=second.deployment) == before.path
    assert nlp.active_model_path(cache, deployment=first.deployment) == result.model_path
    status = model_status(first)
    assert (status.model.kind, status.model.version) == ("retrained", result.candidate_version)
    assert status.model.dev is not None and status.model.dev["accuracy"] == pytest.approx(result.candidate.accuracy)
    assert status.model.trained_at is not None
    assert (status.corrections, status.pending) == (1, [])

    add_correction(first, "Bitte schicken Sie mir die Rechnung noch einmal.", "billing", "de")
    assert model_status(first).pending == [("de", "billing", 1)]
    assert model_status(second).pending == []


def test_status_command_fits_80_columns_and_prints_json(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = database(tmp_path, "only", cache)
    add_correction(rt, "Wir möchten eine Vorführung Ihrer Software für zwölf Personen.", "sales", "de")
    monkeypatch.setenv("RAPPORT_DATABASE_URL", rt.settings.database_url)
    monkeypatch.setenv("RAPPORT_MODEL_DIR", str(cache))
    (tmp_path / "rapport.toml").write_text("", encoding="utf-8")
    monkeypatch.setenv("RAPPORT_CONFIG", str(tmp_path / "rapport.toml"))
    runtime.cache_clear()

    text = CliRunner().invoke(app, ["nlp", "status"], terminal_width=80)
    as_json = CliRunner().invoke(app, ["nlp", "status", "--json"])

    assert text.exit_code == 0, text.output
    assert "default (shared, shipped data)" in text.output
    assert "1 of 1 not yet in this model" in text.output
    assert all(len(line) <= 80 for line in text.output.splitlines()), text.output
    report = json.loads(as_json.stdout)
    assert report["model"]["kind"] == "default" and report["deployment"] == rt.deployment
    assert report["corrections"]["by_language_and_category"] == [{"language": "de", "category": "sales", "count": 1}]
