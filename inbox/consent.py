"""A person asking by mail to get no more marketing ("unsubscribe me"), in the ten languages.

`asks_to_unsubscribe` reads what the classifier reads (the subject and the start
of the new text, quoted replies and signatures removed: where the ask is), words
joined across line breaks. The pipeline then
withdraws the contact's marketing consent (`store.consent.withdraw_consent`) and
the owner hears of it (a `ConsentWithdrawn` DM through the outbox). Phrases,
not single words: "how do I cancel my subscription?" is a cancellation, not an
opt-out.
"""

from __future__ import annotations

import re

UNSUBSCRIBE_PATTERNS: dict[str, tuple[str, ...]] = {
    "en": (r"\bunsubscribe me\b", r"\bplease unsubscribe\b", r"\bremove me from (?:your|the) (?:mailing |e-?mail )?list",
           r"\bopt me out\b", r"\bstop sending me (?:your )?(?:newsletters?|marketing|offers|promotions?)"),
    "de": (r"\bmelden sie mich\b.{0,40}?\bab\b", r"\bvom newsletter ab(?:melden|bestellen)?\b",
           r"\bnewsletter abbestellen\b", r"\baus (?:ihrem|dem) (?:e-?mail-)?verteiler\b",
           r"\bkeine (?:werbung|newsletter|werbe-?e-?mails) mehr\b"),
    "fr": (r"\bd[ée]sabonnez[- ]moi\b", r"\bd[ée]sinscrivez[- ]moi\b", r"\bme d[ée]sinscrire\b",
           r"\bme d[ée]sabonner\b", r"\bretirez[- ]moi de (?:votre|vos) (?:liste|listes|newsletter)"),
    "es": (r"\bd[aée]n?me de baja\b", r"\bdadme de baja\b", r"\bdenme de baja\b",
           r"\bcancelar mi suscripci[oó]n (?:al|a su) (?:bolet[ií]n|newsletter)", r"\bno quiero recibir m[aá]s (?:correos|publicidad|ofertas|boletines)"),
    "sv": (r"\bavregistrera mig\b", r"\bavregistrering fr[aå]n\b", r"\bavsluta (?:min )?prenumeration",
           r"\bbort mig fr[aå]n (?:er|era|ert|din|dina) (?:lista|listor|nyhetsbrev|utskick)", r"\bavprenumerera\b"),
    "sk": (r"\bodhl[aá]ste ma\b", r"\bodhl[aá]si[tť] z odberu\b", r"\bodhl[aá]senie z odberu\b", r"\bvyra[dď]te ma\b"),
    "cs": (r"\bodhlaste m[eě]\b", r"\bodhl[aá]sit z odb[eě]ru\b", r"\bodhl[aá][sš]en[ií] z odb[eě]ru\b", r"\bvy[rř]a[dď]te m[eě]\b"),
    "hu": (r"\biratkoztasson le\b", r"\bleiratkoz[aá]s\b", r"\bszeretn[eé]k leiratkozni\b",
           r"\bt[oö]r[oö]ljenek? (?:a|az [oö]n[oö]k) (?:levelez[oő])?list[aá]", r"\bne k[uü]ldjenek t[oö]bb (?:h[ií]rlevel|rekl[aá]m)"),
    "sl": (r"\bodjavite me\b", r"\bodjava od prejemanja\b", r"\bodjava (?:z|s) seznama\b", r"\bizbri[sš]ite me (?:z|s) seznama\b"),
    "pl": (r"\bwypisz(?:cie)? mnie\b", r"\bpro[sś]z[eę] o wypisanie\b", r"\brezygnuj[eę] z (?:subskrypcji|newslettera)\b",
           r"\busu[nń](?:cie)? mnie z (?:listy|bazy)", r"\bnie chc[eę] otrzymywa[cć] (?:wi[eę]cej )?(?:newslettera|reklam|ofert)"),
}
# Matched on lower-cased text: re.IGNORECASE made the search three times slower.
_UNSUBSCRIBE = re.compile("|".join(p for group in UNSUBSCRIBE_PATTERNS.values() for p in group))


def asks_to_unsubscribe(text: str) -> bool:
    """Whether a person's mail (subject and new text) asks to get no more marketing mail."""
    return _UNSUBSCRIBE.search(" ".join(text.lower().split())) is not None


__all__ = ["UNSUBSCRIBE_PATTERNS", "asks_to_unsubscribe"]
