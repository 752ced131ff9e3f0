"""Names the packages share without importing each other (store and nlp import nothing of ours)."""

from __future__ import annotations

import nlp
from store.validation import CATEGORIES as ROUTABLE


def test_the_classifier_and_the_routing_rules_know_the_same_categories() -> None:
    # a category the model predicts but reps cannot own (or the reverse) would never route
    assert tuple(nlp.CATEGORIES) == ROUTABLE
