"""The satisfaction survey mail (ten languages), its outbox handler, and the one-click link page.

`survey_mail_handler` sends a `SurveyMail` row over SMTP (`bot.email.send_message`,
the digest's sending code) with the Message-ID stored on the survey, so the
inbox threads a reply to it. `CsatPage` serves `GET /csat/<token>/<score>` on
`rapport serve`'s HTTP endpoint: a signed, expiring token (store.surveys), the
answer recorded once, a small thank-you page in the contact's language.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from bot.email import OpenSent, SmtpOptions, build_message, send_message, send_once
from store.consent import may_contact
from store.db import read_session, session_scope
from store.models import ConsentPurpose, Contact, Conversation, Survey
from store.outbox import Done, Handler, Job, Outcome, SurveyMail
from store.surveys import (
    SCORES,
    Answer,
    SurveyPolicy,
    TokenError,
    read_token,
    record_answer,
    sign_token,
    subject_token,
    survey_by_ref,
)
from store.types import utcnow

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

log = logging.getLogger(__name__)
CSAT_PREFIX = "/csat/"


@dataclass(frozen=True)
class SurveyTexts:
    subject: str
    greeting: str  # {name}
    question: str  # {subject}
    how: str
    click: str
    low: str  # the meaning of 1
    high: str  # the meaning of 5
    thanks: str  # {score}
    already: str
    invalid: str


TEXTS: dict[str, SurveyTexts] = {
    "en": SurveyTexts(
        "How satisfied were you with our help?", "Hello {name},",
        "we recently helped you with \u201c{subject}\u201d. How satisfied were you?",
        "Reply to this email with a number from 1 (not at all) to 5 (very satisfied), and add a comment if you like.",
        "Or click your answer:", "not at all", "very satisfied",
        "Thank you! We recorded your answer: {score} of 5.", "Thank you, your answer was already recorded.",
        "This survey link is not valid or has expired."),
    "de": SurveyTexts(
        "Wie zufrieden waren Sie mit unserer Hilfe?", "Guten Tag {name},",
        "wir haben Ihnen kürzlich bei \u201e{subject}\u201c geholfen. Wie zufrieden waren Sie?",
        "Antworten Sie einfach auf diese E-Mail mit einer Zahl von 1 (gar nicht) bis 5 (sehr zufrieden), "
        "gern auch mit einem Kommentar.",
        "Oder klicken Sie Ihre Antwort an:", "gar nicht", "sehr zufrieden",
        "Vielen Dank! Ihre Bewertung ist gespeichert: {score} von 5.",
        "Vielen Dank, Ihre Bewertung liegt uns bereits vor.", "Dieser Link ist ungültig oder abgelaufen."),
    "fr": SurveyTexts(
        "Êtes-vous satisfait de notre aide ?", "Bonjour {name},",
        "nous vous avons récemment aidé au sujet de « {subject} ». Dans quelle mesure êtes-vous satisfait ?",
        "Répondez à cet e-mail avec un chiffre de 1 (pas du tout) à 5 (très satisfait), "
        "et ajoutez un commentaire si vous le souhaitez.",
        "Ou cliquez sur votre réponse :", "pas du tout", "très satisfait",
        "Merci ! Votre réponse est enregistrée : {score} sur 5.", "Merci, votre réponse était déjà enregistrée.",
        "Ce lien n\u2019est pas valide ou a expiré."),
    "es": SurveyTexts(
        "¿Quedó satisfecho con nuestra ayuda?", "Hola, {name}:",
        "hace poco le ayudamos con «{subject}». ¿Qué tan satisfecho quedó?",
        "Responda a este correo con un número del 1 (nada) al 5 (muy satisfecho) y, si lo desea, añada un comentario.",
        "O haga clic en su respuesta:", "nada", "muy satisfecho",
        "¡Gracias! Hemos registrado su respuesta: {score} de 5.", "Gracias, su respuesta ya estaba registrada.",
        "Este enlace no es válido o ha caducado."),
    "sv": SurveyTexts(
        "Hur nöjd var du med vår hjälp?", "Hej {name},",
        "vi hjälpte dig nyligen med \u201d{subject}\u201d. Hur nöjd var du?",
        "Svara på det här mejlet med en siffra från 1 (inte alls) till 5 (mycket nöjd) och skriv gärna en kommentar.",
        "Eller klicka på ditt svar:", "inte alls", "mycket nöjd",
        "Tack! Vi har sparat ditt svar: {score} av 5.", "Tack, ditt svar var redan sparat.",
        "Länken är ogiltig eller har gått ut."),
    "sk": SurveyTexts(
        "Ako ste boli spokojní s našou pomocou?", "Dobrý deň, {name},",
        "nedávno sme vám pomáhali s \u201e{subject}\u201c. Ako ste boli spokojní?",
        "Odpovedzte na tento e-mail číslom od 1 (vôbec) do 5 (veľmi spokojný) a ak chcete, pridajte komentár.",
        "Alebo kliknite na svoju odpoveď:", "vôbec", "veľmi spokojný",
        "Ďakujeme! Vaše hodnotenie sme zaznamenali: {score} z 5.", "Ďakujeme, vaše hodnotenie už máme.",
        "Tento odkaz je neplatný alebo jeho platnosť vypršala."),
    "cs": SurveyTexts(
        "Jak jste byli spokojeni s naší pomocí?", "Dobrý den, {name},",
        "nedávno jsme vám pomáhali s \u201e{subject}\u201c. Jak jste byli spokojeni?",
        "Odpovězte na tento e-mail číslem od 1 (vůbec) do 5 (velmi spokojen) a případně připojte komentář.",
        "Nebo klikněte na svou odpověď:", "vůbec", "velmi spokojen",
        "Děkujeme! Vaše hodnocení jsme zaznamenali: {score} z 5.", "Děkujeme, vaše hodnocení už máme.",
        "Tento odkaz je neplatný nebo vypršel."),
    "hu": SurveyTexts(
        "Mennyire volt elégedett a segítségünkkel?", "Kedves {name}!",
        "Nemrég segítettünk Önnek ebben: \u201e{subject}\u201d. Mennyire volt elégedett?",
        "Válaszoljon erre az e-mailre egy számmal 1-től (egyáltalán nem) 5-ig (nagyon elégedett), "
        "és ha szeretné, írjon megjegyzést is.",
        "Vagy kattintson a válaszára:", "egyáltalán nem", "nagyon elégedett",
        "Köszönjük! Válaszát rögzítettük: {score} / 5.", "Köszönjük, válaszát már rögzítettük.",
        "Ez a hivatkozás érvénytelen vagy lejárt."),
    "sl": SurveyTexts(
        "Kako zadovoljni ste bili z našo pomočjo?", "Pozdravljeni, {name},",
        "pred kratkim smo vam pomagali pri zadevi »{subject}«. Kako zadovoljni ste bili?",
        "Odgovorite na to sporočilo s številko od 1 (sploh ne) do 5 (zelo zadovoljen) in po želji dodajte komentar.",
        "Ali kliknite svoj odgovor:", "sploh ne", "zelo zadovoljen",
        "Hvala! Vaš odgovor smo zabeležili: {score} od 5.", "Hvala, vaš odgovor smo že zabeležili.",
        "Ta povezava ni veljavna ali je potekla."),
    "pl": SurveyTexts(
        "Jak oceniają Państwo naszą pomoc?", "Dzień dobry, {name},",
        "niedawno pomagaliśmy Państwu w sprawie \u201e{subject}\u201d. Jak bardzo są Państwo zadowoleni?",
        "Prosimy odpowiedzieć na tę wiadomość liczbą od 1 (wcale) do 5 (bardzo zadowoleni) "
        "i, jeśli to możliwe, dodać komentarz.",
        "Lub proszę kliknąć odpowiedź:", "wcale", "bardzo zadowoleni",
        "Dziękujemy! Zapisaliśmy Państwa odpowiedź: {score} z 5.", "Dziękujemy, Państwa odpowiedź jest już zapisana.",
        "Ten link jest nieprawidłowy lub wygasł."),
}


def texts_for(language: str | None) -> SurveyTexts:
    """The survey's words in the contact's language; English for any other."""
    return TEXTS.get((language or "en").lower()[:2], TEXTS["en"])


@dataclass(frozen=True)
class SurveyOptions:
    """How surveys go out: when (`policy`), by which SMTP server, where replies go, and the links."""

    policy: SurveyPolicy = field(default_factory=SurveyPolicy)
    smtp: SmtpOptions | None = None
    reply_to: str | None = None  # the shared mailbox the inbox reads, so replies come back
    public_url: str | None = None  # where `rapport serve` is reachable; no links without it
    secret: str | None = None  # RAPPORT_CSAT_SECRET: signs the link tokens
    open_sent: OpenSent | None = None  # the shared mailbox's Sent folder: each survey goes out once

    @property
    def links(self) -> bool:
        return bool(self.public_url and self.secret)

    @property
    def sending(self) -> bool:
        return self.policy.enabled and self.smtp is not None


def survey_links(options: SurveyOptions, survey: Survey) -> list[tuple[int, str]]:
    """The one-click links (score, URL), or none when the endpoint is not public."""
    if not options.links:
        return []
    assert options.public_url and options.secret
    token = sign_token(options.secret, survey)
    base = options.public_url.rstrip("/")
    return [(score, f"{base}{CSAT_PREFIX}{token}/{score}") for score in SCORES]


def build_survey_mail(options: SurveyOptions, survey: Survey, contact: Contact | None,
                      conversation: Conversation | None) -> EmailMessage:
    """The survey mail: plain text and HTML, with the survey's Message-ID and its token in the subject."""
    words = texts_for(survey.language)
    name = (contact.name if contact else "") or ""
    name = "" if "@" in name else name
    about = (conversation.subject if conversation else "") or ""
    greeting = words.greeting.format(name=name).replace(" ,", ",").replace(",,", ",").replace(" !", "!")
    question = words.question.format(subject=about[:120])
    links = survey_links(options, survey)
    scale = f"1 = {words.low} · 5 = {words.high}"
    lines = [greeting, "", question, "", words.how]
    if links:
        lines += ["", words.click, *(f"  {score}: {url}" for score, url in links), scale]
    buttons = "".join(
        f'<a href="{html.escape(url)}" style="display:inline-block;padding:8px 14px;margin:2px;'
        f'border:1px solid #888;border-radius:4px;text-decoration:none">{score}</a>' for score, url in links)
    body = (f"<p>{html.escape(greeting)}</p><p>{html.escape(question)}</p><p>{html.escape(words.how)}</p>"
            + (f"<p>{html.escape(words.click)}</p><p>{buttons}</p><p><small>{html.escape(scale)}</small></p>"
               if links else ""))
    assert options.smtp is not None
    message = build_message(from_addr=options.smtp.from_addr, to=survey.email,
                            subject=f"{words.subject} [{subject_token(survey)}]", text="\n".join(lines) + "\n",
                            html=f"<!doctype html><html><body>{body}</body></html>", message_id=survey.message_id)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: auto-responders do not answer it
    if options.reply_to:
        message["Reply-To"] = options.reply_to
    return message


def survey_mail_handler(engine: Engine, options: SurveyOptions) -> Handler:
    """Sends `SurveyMail` rows; skips one whose contact withdrew consent since it was written.

    Each goes out once (`bot.email.send_once`): a copy is kept in the shared mailbox's
    Sent folder, where support staff see it too, and a retry after a crash finds it there."""

    def act(jobs: list[Job]) -> dict[int, Outcome]:
        [job] = jobs
        assert isinstance(job.payload, SurveyMail)
        with read_session(engine) as session:
            survey = session.get(Survey, job.payload.survey_id)
            if survey is None or survey.score is not None or not may_contact(
                    session, survey.contact_id, ConsentPurpose.survey, needs_consent=options.policy.needs_consent):
                return {job.id: Done({"skipped": True})}
            message = build_survey_mail(options, survey, session.get(Contact, survey.contact_id),
                                        session.get(Conversation, survey.conversation_id))
        assert options.smtp is not None
        if options.open_sent is None:  # no mailbox configured: at least once
            send_message(options.smtp, message)  # no transaction open
            return {job.id: Done({"sent": survey.email})}
        with options.open_sent(None) as sent:
            if not send_once(options.smtp, message, sent, survey.sent_at or utcnow()):
                return {job.id: Done({"already_sent": survey.email})}
        return {job.id: Done({"sent": survey.email, "copied_to_sent": sent is not None})}

    return Handler((SurveyMail.kind,), act)


# --------------------------------------------------------------------------- the link page


class CsatPage:
    """`GET /csat/<token>/<score>`: records the score once and thanks the contact in their language."""

    def __init__(self, engine: Engine, secret: str, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._engine = engine
        self._secret = secret
        self._clock = clock

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _page(start_response, 405, texts_for(None).invalid)
        match = re.fullmatch(r"/csat/([0-9a-f]{12}\.\d{1,12}\.[A-Za-z0-9_-]{1,64})/([1-5])",
                             str(environ.get("PATH_INFO") or ""))
        if match is None:
            return _page(start_response, 404, texts_for(None).invalid)
        now = self._clock()
        try:
            ref = read_token(self._secret, match.group(1), now=now)
        except TokenError:
            log.info("refused a survey link from %s", environ.get("REMOTE_ADDR", "?"))
            return _page(start_response, 404, texts_for(None).invalid)
        score = int(match.group(2))
        if environ.get("REQUEST_METHOD") == "HEAD":  # link checkers look; only a visit answers
            return _page(start_response, 200, "")
        with session_scope(self._engine) as session:
            survey = survey_by_ref(session, ref)
            if survey is None:
                return _page(start_response, 404, texts_for(None).invalid)
            words = texts_for(survey.language)
            answer = record_answer(session, survey, score, via="link", at=now)
        text = words.thanks.format(score=score) if answer is Answer.recorded else words.already
        return _page(start_response, 200, text)


def _page(start_response: StartResponse, status: int, text: str) -> list[bytes]:
    body = ("<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
            "content=\"width=device-width\"><title>Rapport</title></head><body style=\"font-family:sans-serif;"
            f"max-width:32em;margin:4em auto;text-align:center\"><p>{html.escape(text)}</p></body></html>").encode()
    reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed"}[status]
    start_response(f"{status} {reason}", [("Content-Type", "text/html; charset=utf-8"),
                                          ("Content-Length", str(len(body))), ("Cache-Control", "no-store"),
                                          ("Referrer-Policy", "no-referrer")])
    return [body]


__all__ = ["CSAT_PREFIX", "TEXTS", "CsatPage", "SurveyOptions", "build_survey_mail", "survey_links",
           "survey_mail_handler", "texts_for"]
