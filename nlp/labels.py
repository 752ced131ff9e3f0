"""A saved model's categories, read from its meta.json without loading the model or spaCy:
a Slack worker must know which categories exist, and classifies nothing."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path


class ModelError(RuntimeError):
    """A model cannot be loaded; the message says which and why, for a user."""


def is_model_dir(model: str | Path) -> bool:
    """Whether `model` names a saved pipeline's directory (else an installed pipeline's package)."""
    return isinstance(model, Path) or Path(model).expanduser().is_dir()


def missing_model(name: str) -> ModelError:
    return ModelError(f"no installed spaCy pipeline or model directory named {name!r}")


def saved_categories(model: str | Path) -> list[str] | None:
    """The categories a saved pipeline (a directory) or an installed one (a package name) gives:
    its textcat's labels, which spaCy keeps in meta.json, as `Classifier.categories` has them
    once loaded. None: the pipeline has no textcat (`load_classifier` adds Rapport's)."""
    meta = (Path(model).expanduser() if is_model_dir(model) else _package_dir(str(model))) / "meta.json"
    try:
        labels = json.loads(meta.read_text(encoding="utf-8")).get("labels") or {}
    except (OSError, ValueError, AttributeError) as exc:
        raise ModelError(f"{meta}: cannot read the model's labels: {exc}") from None
    textcat = labels.get("textcat") if isinstance(labels, dict) else None
    return [str(label) for label in textcat] if isinstance(textcat, list) else None


def _package_dir(name: str) -> Path:
    # found, not imported: a pipeline package's import loads spaCy
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise missing_model(name)
    return Path(next(iter(spec.submodule_search_locations)))
