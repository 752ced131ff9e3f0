"""Language of short mails, also one-liners."""

from __future__ import annotations

import pytest

import nlp
from nlp.language import SHORT_TEXT_CHARS

SHORT_MAILS = [
    ("sv", "Hej!\n\nJag har inte fått min beställning än. Kan ni kolla var paketet är?\n\nTack, Erik"),
    ("sk", "Dobrý deň,\n\nmoja objednávka ešte neprišla. Môžete mi prosím povedať, kde je?\n\nĎakujem"),
    ("hu", "Jó napot!\n\nMég nem kaptam meg a rendelésemet. Tudnának segíteni?\n\nKöszönöm, Anna"),
    ("sl", "Pozdravljeni,\n\nmoje naročilo še ni prispelo. Mi lahko prosim sporočite, kje je?\n\nHvala"),
    ("de", "Hallo,\n\nmeine Bestellung ist noch nicht angekommen. Können Sie bitte nachsehen?\n\nDanke"),
    ("cs", "Dobrý den,\n\nmoje objednávka ještě nedorazila. Můžete mi prosím říct, kde je?\n\nDěkuji"),
    ("pl", "Dzień dobry,\n\nmoje zamówienie jeszcze nie dotarło. Czy mogą Państwo sprawdzić?\n\nDziękuję"),
    ("fr", "Bonjour,\n\nma commande n'est pas encore arrivée. Pouvez-vous vérifier ?\n\nMerci"),
    ("es", "Hola,\n\nmi pedido todavía no ha llegado. ¿Pueden comprobarlo?\n\nGracias"),
    ("en", "Hi,\n\nmy order has not arrived yet. Could you check?\n\nThanks"),
]

ONE_LINERS = [
    ("sv", "Var är mitt paket?"),
    ("sk", "Ďakujem za rýchlu pomoc!"),
    ("hu", "Hol van a csomagom?"),
    ("sl", "Hvala za hitro pomoč!"),
    ("de", "Wo ist mein Paket?"),
    ("en", "Is my card frozen?"),
]


@pytest.mark.parametrize(("language", "text"), SHORT_MAILS, ids=[lang for lang, _ in SHORT_MAILS])
def test_short_mail_language(classifier: nlp.Classifier, language: str, text: str) -> None:
    assert classifier.classify([text])[0].language == language


@pytest.mark.parametrize(("language", "text"), ONE_LINERS, ids=[lang for lang, _ in ONE_LINERS])
def test_one_line_language(classifier: nlp.Classifier, language: str, text: str) -> None:
    assert classifier.classify([text])[0].language == language


@pytest.mark.parametrize(("language", "text"), SHORT_MAILS, ids=[lang for lang, _ in SHORT_MAILS])
def test_longer_mail_language(classifier: nlp.Classifier, language: str, text: str) -> None:
    # Over SHORT_TEXT_CHARS: lingua decides unless the function words lead clearly.
    longer = "\n\n".join([text] * 3)
    assert len(longer) >= SHORT_TEXT_CHARS

    assert classifier.classify([longer])[0].language == language


def test_batch_gives_the_same_languages_as_one_by_one(classifier: nlp.Classifier) -> None:
    texts = [text for _, text in SHORT_MAILS + ONE_LINERS]

    batched = [r.language for r in classifier.classify(texts)]

    assert batched == [classifier.classify([text])[0].language for text in texts]


def test_only_configured_languages_are_answered(model_cache) -> None:
    clf = nlp.load_classifier(None, cache_dir=model_cache, languages=["en", "de"])

    # Swedish is not configured: the answer is one of the configured languages.
    assert clf.classify([SHORT_MAILS[0][1]])[0].language in {"en", "de"}


def test_empty_text_has_no_language(classifier: nlp.Classifier) -> None:
    assert classifier.classify([""])[0].language is None


def test_unknown_language_code_is_a_clear_error(model_cache) -> None:
    with pytest.raises(nlp.ModelError, match="unknown language code 'xx'"):
        nlp.load_classifier(None, cache_dir=model_cache, languages=["en", "xx"])
