"""Which categories a saved model gives, read from what it saved: no model is loaded, no package imported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import nlp


def test_an_installed_pipeline_s_categories_come_from_its_package_s_meta_without_importing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, labels in (("our_pipeline", {"textcat": ["returns_de", "warranty"], "ner": ["PRODUCT"]}),
                         ("tagger_only", {"tagger": ["NN"]})):
        package = tmp_path / name
        package.mkdir()
        (package / "__init__.py").write_text("raise ImportError('a pipeline package imports spaCy')\n")
        (package / "meta.json").write_text(json.dumps({"labels": labels}), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert nlp.saved_categories("our_pipeline") == ["returns_de", "warranty"]
    assert nlp.saved_categories("tagger_only") is None  # no textcat: load_classifier adds Rapport's
    with pytest.raises(nlp.ModelError, match="no installed spaCy pipeline or model directory named 'nowhere'"):
        nlp.saved_categories("nowhere")


def test_a_trained_model_s_saved_categories_are_the_loaded_classifier_s(our_model: Path, tmp_path: Path) -> None:
    assert nlp.saved_categories(our_model) == nlp.load_classifier(our_model, cache_dir=tmp_path).categories
