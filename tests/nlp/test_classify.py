"""Categories of realistic mails, needs_triage when unsure, the cached default model."""

from __future__ import annotations

from pathlib import Path

import pytest

import nlp

REALISTIC = [
    (
        "Where is my parcel?\n\nHi, I ordered a pair of boots last week and the tracking page has not "
        "changed for 5 days. When will it arrive?",
        "delivery",
    ),
    (
        "Cancel my order\n\nHello, please cancel the order I placed this morning, I bought the wrong size.",
        "cancellation",
    ),
    (
        "Refund\n\nI returned the jacket two weeks ago and still have not received my money back. "
        "When will the refund be processed?",
        "refund",
    ),
    (
        "Invoice missing\n\nCould you send me the invoice for my last purchase? I need it for my accounting.",
        "billing",
    ),
    ("Password\n\nI can't log in to my account, the password reset link doesn't work.", "account"),
    ("Complaint\n\nI want to file a complaint about the rude service I got from your staff.", "complaint"),
    (
        "Quote request\n\nHello, we are a team of 40 people evaluating CRM tools. Could you send us a quote "
        "for the business plan?",
        "sales",
    ),
    (
        "Reseller programme\n\nWe are an IT consultancy in Vienna and would like to become a reseller of "
        "your product. Do you have a partner program?",
        "partnership",
    ),
    ("Change order\n\nHi, can I still add a second item to the order I placed yesterday?", "order"),
    (
        "Great service\n\nJust wanted to leave a review: the support team was fantastic, thank you!",
        "feedback",
    ),
    ("Talk to a person\n\nHow can I speak to a human agent? The chatbot is not helping.", "general"),
]

GIBBERISH = ["asdkj qwe zzxq", "qwertzuiop asdfghjkl yxcvbnm", "blorf snizzle wump", "1234 5678"]


@pytest.mark.parametrize(("text", "category"), REALISTIC, ids=[c for _, c in REALISTIC])
def test_realistic_mail_gets_its_category(classifier: nlp.Classifier, text: str, category: str) -> None:
    result = classifier.classify([text])[0]

    assert result.category == category
    assert result.confidence >= 0.5
    assert result.model_version == classifier.model_version


def test_gibberish_needs_triage_not_a_confident_guess(classifier: nlp.Classifier) -> None:
    results = classifier.classify(GIBBERISH)

    assert [r.category for r in results] == [nlp.NEEDS_TRIAGE] * len(GIBBERISH)
    assert all(r.confidence < 0.5 for r in results)


def test_the_classifier_names_the_categories_it_gives(classifier: nlp.Classifier) -> None:
    # what a route's category is checked against once the model is loaded (a custom model has its own)
    assert sorted(classifier.categories) == sorted(nlp.CATEGORIES)


def test_threshold_decides_needs_triage(model_cache: Path) -> None:
    text = REALISTIC[0][0]
    strict = nlp.load_classifier(None, cache_dir=model_cache, threshold=1.0).classify([text])[0]
    lenient = nlp.load_classifier(None, cache_dir=model_cache, threshold=0.0).classify([text])[0]

    assert strict.category == nlp.NEEDS_TRIAGE
    assert lenient.category == "delivery"
    assert strict.confidence == lenient.confidence


def test_doc_attributes_are_set_by_the_pipeline(classifier: nlp.Classifier) -> None:
    doc = classifier.nlp("Refund\n\nI still have not received my money back for order #55123.")

    assert doc._.category == "refund"
    assert doc._.category_confidence >= 0.5
    assert doc._.language == "en"
    assert [(e.label_, e._.value) for e in doc.ents] == [("ORDER_NUMBER", "55123")]


def test_default_model_is_trained_once_and_cached(model_cache: Path) -> None:
    lines: list[str] = []

    again = nlp.load_classifier(None, cache_dir=model_cache, progress=lines.append)

    assert lines == []  # no training on the second load
    assert again.model_version.startswith("rapport-default-")


def test_saved_model_directory_loads_by_path(classifier: nlp.Classifier, model_cache: Path) -> None:
    path = nlp.active_model_path(model_cache)

    by_path = nlp.load_classifier(path, cache_dir=model_cache)

    assert by_path.model_version == classifier.model_version
    assert by_path.classify([REALISTIC[2][0]])[0].category == "refund"


def test_installed_pipeline_by_name_gets_rapport_components(model_cache: Path) -> None:
    # "blank:de" is a pipeline name spacy.load resolves without a download.
    clf = nlp.load_classifier("blank:de", cache_dir=model_cache)

    result = clf.classify(["Cancel my order\n\nPlease cancel my order, I ordered the wrong size."])[0]

    assert clf.nlp.lang == "de"
    assert result.category == "cancellation"
    assert result.model_version.startswith("blank:de+rapport-default-")


def test_unknown_model_name_is_a_clear_error(model_cache: Path) -> None:
    with pytest.raises(
        nlp.ModelError, match="no installed spaCy pipeline or model directory named 'xx_nope'"
    ):
        nlp.load_classifier("xx_nope", cache_dir=model_cache)


def test_classification_is_json_ready(classifier: nlp.Classifier) -> None:
    text = "Order #48213 not arrived, I paid €120."

    data = classifier.classify([text])[0].to_json()

    assert set(data) == {"category", "confidence", "language", "entities", "model_version", "top_category"}
    start = text.index("€120")
    amount = {"label": "AMOUNT", "text": "€120", "start": start, "end": start + 4, "value": "EUR 120.00"}
    assert amount in data["entities"]


def test_huge_and_empty_texts_are_classified_without_error(classifier: nlp.Classifier) -> None:
    huge = "Refund\n\nI still have not received my money back for order #55123. " + "blah " * 400_000

    results = classifier.classify([huge, ""])

    assert results[0].entities[0].value == "55123"
    assert results[1].category == nlp.NEEDS_TRIAGE
    assert results[1].language is None
