"""The shipped word-piece vectors and BERT's word-piece split of a word."""

from __future__ import annotations

import numpy as np
import pytest
from spacy.language import Language
from spacy.training import Example as SpacyExample
from spacy.util import fix_random_seed
from thinc.api import Model

from nlp.architecture import fit_row_weights
from nlp.training import (
    TEXTCAT_MODEL,
    WORD_VECTORS,
    RowwiseAveragedSGD,
    TrainSettings,
    blank_textcat_pipeline,
)
from nlp.wordpieces import load_word_pieces

# Each word as bert-base-uncased's own tokenizer (Hugging Face's, which all-MiniLM-L6-v2
# uses) cuts it: checked against it once, when this split was written.
BERT_SPLITS = [
    ("refunded", ["ref", "##und", "##ed"]),
    ("didn't", ["didn", "'", "t"]),
    ("Überweisung", ["uber", "##wei", "##sun", "##g"]),
    ("naïve", ["naive"]),
    ("objednávky", ["ob", "##je", "##dna", "##v", "##ky"]),
    ("ORD-12345", ["or", "##d", "-", "123", "##45"]),
    ("reimbursement", ["rei", "##mb", "##urse", "##ment"]),
    ("zzzqx", ["z", "##zz", "##q", "##x"]),
    ("x" * 101, ["[UNK]"]),
    ("Łódź", ["łodz"]),
    ("e-mail", ["e", "-", "mail"]),
    # Control and format characters are dropped: a soft hyphen, a zero-width space, a BOM.
    ("re\u00adfund", ["ref", "##und"]),
    ("ref\u200bund", ["ref", "##und"]),
    ("\ufeffHello", ["hello"]),
    ("re\ufffdfund", ["ref", "##und"]),
    # CJK ideographs are words of their own; a space of another kind separates.
    ("東京", ["東", "京"]),
    ("你好", ["[UNK]", "[UNK]"]),
    ("a\u00a0b", ["a", "b"]),
    ("Straße", ["st", "##raße"]),
    ("Ａｍｏｕｎｔ", ["[UNK]"]),
]


@pytest.mark.parametrize(("word", "pieces"), BERT_SPLITS, ids=[word[:12] for word, _ in BERT_SPLITS])
def test_a_word_is_cut_as_berts_tokenizer_cuts_it(word: str, pieces: list[str]) -> None:
    vocabulary = load_word_pieces("minilm")
    names = {number: piece for piece, number in vocabulary.ids.items()}
    assert [names[number] for number in vocabulary.split(word)] == pieces


def word_vector(word: str) -> np.ndarray:
    vocabulary = load_word_pieces("minilm")
    vector = vocabulary.vectors[vocabulary.split(word)].sum(axis=0)
    return vector / np.linalg.norm(vector)


def test_shipped_vectors_put_words_of_one_meaning_together() -> None:
    """What the n-gram bag cannot know: words that share no letters but a meaning."""
    vocabulary = load_word_pieces("minilm")
    assert vocabulary.vectors.shape == (30522, 128)
    assert np.isfinite(vocabulary.vectors).all()
    for word, synonym, unrelated in [("refund", "reimbursement", "weather"), ("invoice", "bill", "holiday"),
                                     ("cancel", "terminate", "banana"), ("late", "delayed", "purple")]:
        assert word_vector(word) @ word_vector(synonym) > word_vector(word) @ word_vector(unrelated) + 0.1


def train_on_single_words(textcat_model: dict[str, object]) -> tuple[Language, Model]:
    fix_random_seed(0)
    nlp = blank_textcat_pipeline({**TEXTCAT_MODEL, "n_buckets": 4096, **textcat_model})
    train = [("refund", "refund"), ("invoice", "billing"), ("delivery", "shipping"), ("cancel", "cancellation")]
    labels = sorted(label for _, label in train)
    examples = [SpacyExample.from_dict(nlp.make_doc(text), {"cats": {name: float(name == label) for name in labels}})
                for text, label in train]
    nlp.initialize(lambda: examples)
    model = nlp.get_pipe("textcat").model
    fit_row_weights(model, [example.reference for example in examples])
    optimizer = RowwiseAveragedSGD(TrainSettings().learn_rate)
    for _ in range(30):
        nlp.update(examples, sgd=optimizer, drop=0.0)
    return nlp, model


def test_a_word_no_training_text_had_is_read_by_its_meaning() -> None:
    """With word vectors, a synonym that shares no n-gram with the training words lands in
    its class; the n-gram bag alone has nothing to go on."""
    unseen = [("reimbursement", "refund"), ("bill", "billing"), ("shipment", "shipping"),
              ("terminate", "cancellation"), ("courier", "shipping")]
    right = {}
    for name, shape in (("n-grams", {}), ("vectors", WORD_VECTORS)):
        nlp, model = train_on_single_words(shape)
        labels = nlp.get_pipe("textcat").labels
        scores = np.asarray(model.predict([nlp.make_doc(text) for text, _ in unseen]))
        right[name] = [labels[best] == label for best, (_, label) in zip(scores.argmax(axis=1), unseen, strict=True)]
    assert all(right["vectors"]), right
    assert sum(right["n-grams"]) <= 1, right
