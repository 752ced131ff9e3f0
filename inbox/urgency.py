"""How soon a mail wants an answer: ``urgent``, ``high``, ``normal`` or ``low``, with the reason.

Read from the mail's priority headers, its words in the ten languages Rapport's
customers write in (matched without accents, since people often type without
them), a deadline among its dates, and its category. The strongest signal wins;
``low`` only applies when nothing asks for speed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Protocol

from store.search import fold

URGENCIES = ("urgent", "high", "normal", "low")  # most pressing first
_RANK = {level: rank for rank, level in enumerate(URGENCIES)}


@dataclass(frozen=True)
class Urgency:
    level: str
    reason: str


@dataclass(frozen=True)
class DateMention:
    """A date found in the text: its ISO value (``2026-11-23``) and where it stands."""

    value: str
    start: int
    end: int


def _words(*alternatives: str) -> re.Pattern[str]:
    """One pattern over folded text; each alternative starts at a word boundary and may be a stem."""
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + ")")


# Work has stopped, or a third request, an escalation to management, a legal threat.
_STOPPED = _words(
    r"production (?:has |is )?(?:stopped|halted|down)", r"(?:line|lab|plant) is (?:down|at a standstill)",
    r"standstill", r"cannot (?:work|produce|continue)",
    r"produktion (?:steht|ist gestoppt)", r"stillstand", r"stehen still", r"steht still",
    r"production (?:est )?(?:arretee|bloquee|a l.arret)", r"a l.arret",
    r"produccion (?:esta )?(?:parada|paralizada)", r"paralizad",
    r"star stilla", r"star still", r"produktionen (?:har )?stannat",
    r"vyroba stoji", r"stoji vyroba", r"linka stoji", r"prestoj", r"odstavk",
    r"leallt", r"all a (?:termeles|gyartas|labor)", r"allo (?:a )?(?:gyartas|termeles)",
    r"proizvodnja stoji", r"proizvodnja je ustavljena", r"zastoj",
    r"produkcja stoi", r"wstrzyma\w* produkc", r"przestoj",
)
_ESCALATION = _words(
    r"third (?:time|reminder|request|attempt)", r"3rd (?:time|reminder|request)", r"legal (?:action|steps)",
    r"our lawyer", r"terminate (?:the|our) contract",
    r"dritte[nms]? (?:mal|erinnerung|mahnung|anfrage)", r"rechtliche schritte", r"anwalt", r"vertrag kundigen",
    r"troisieme (?:fois|relance|demande)", r"mise en demeure", r"resilier (?:le|notre) contrat",
    r"tercera (?:vez|reclamacion|solicitud)", r"acciones legales", r"rescindir el contrato",
    r"tredje (?:gangen|paminnelsen|gang)", r"rattsliga atgarder", r"sager upp avtalet",
    r"tretikrat", r"tretiu? (?:urgenci|pripomienk|ziadost)", r"pravne kroky", r"vypovedat zmluvu",
    r"potretie", r"potreti", r"treti (?:urgenc|pripominku|zadost)", r"pravni kroky", r"vypovedet smlouvu",
    r"harmadszor", r"harmadik (?:alkalommal|emlekezteto|megkereses)", r"jogi lepes", r"felmondjuk a szerzodes",
    r"tretjic", r"tretji (?:opomin|poziv)", r"pravne korake", r"odpovedali pogodbo",
    r"po raz trzeci", r"trzeci (?:raz|monit)", r"kroki prawne", r"wypowiedz\w* umow",
)
# Words that ask for speed.
_HASTE = _words(
    r"urgent", r"asap", r"as soon as possible", r"immediately", r"right away",
    r"dringend", r"eilig", r"umgehend", r"sofort", r"schnellstmoglich", r"so schnell wie moglich",
    r"au plus vite", r"des que possible", r"immediatement", r"en urgence",
    r"cuanto antes", r"lo antes posible", r"inmediatamente", r"con urgencia",
    r"bradskande", r"snarast", r"omgaende", r"akut",
    r"naliehav", r"surne", r"co najskor", r"okamzite", r"bezodkladne",
    r"nalehav", r"pilne", r"specha", r"co nejdrive", r"okamzite", r"neodkladne",
    r"surgos", r"azonnal", r"mielobb", r"minel hamarabb", r"haladektalanul",
    r"nujno", r"cim prej", r"takoj",
    r"pilnie", r"jak najszybciej", r"natychmiast", r"niezwlocznie",
)
# A second request: the customer is still waiting.
_REMINDER = _words(
    r"still (?:no|not|haven.t|have not|have no|had no|waiting)", r"no (?:answer|reply|response) (?:yet|so far)",
    r"(?:already|previously) (?:wrote|written|asked|contacted)", r"reminder", r"following up on my",
    r"immer noch (?:keine|nicht|kein)", r"noch (?:keine|immer keine) (?:antwort|ruckmeldung)",
    r"bereits (?:geschrieben|angefragt|gemeldet)", r"erinnerung", r"nochmals nach",
    r"toujours (?:pas|sans)", r"relance", r"deja (?:ecrit|demande|signale)",
    r"todavia (?:no|sin)", r"sigo (?:sin|esperando)", r"aun (?:no|sin)", r"ya (?:les )?(?:escribi|pregunte)",
    r"recordatorio",
    r"fortfarande (?:inget|ingen|inte)", r"paminnelse", r"redan (?:skrivit|fragat)",
    r"stale (?:nemame|ziadn|bez|neprisl)", r"doteraz (?:ziadn|bez|nepri)", r"pripominam", r"urgujem",
    r"stale (?:nemame|zadn|bez|neprisl|nedorazil)", r"dosud (?:zadn|bez|nepri)", r"pripominam", r"urguji",
    r"meg mindig (?:nem|nincs)", r"emlekeztet", r"ismet (?:irok|jelzem)", r"mar (?:irtam|jeleztem)",
    r"se vedno (?:ni|nismo|brez|nimamo)", r"opominjam", r"ponovno (?:pisem|sprasujem)",
    r"nadal (?:nie|brak)", r"wciaz (?:nie|brak)", r"przypominam", r"ponownie (?:pisze|zwracam)",
)
# A deadline of today or tomorrow.
_DEADLINE = _words(
    r"by (?:today|tomorrow|end of (?:the )?day|eod|tonight)", r"(?:today|tomorrow) at the latest",
    r"bis (?:heute|morgen)", r"spatestens (?:heute|morgen)", r"noch heute",
    r"d.ici (?:demain|ce soir)", r"avant demain", r"au plus tard demain", r"aujourd.hui meme",
    r"para manana", r"antes de manana", r"hoy mismo", r"manana a mas tardar",
    r"senast (?:i ?morgon|i ?dag)", r"till i ?morgon", r"redan i ?dag",
    r"do zajtra", r"najneskor zajtra", r"este dnes", r"do zitr\w*", r"nejpozdeji zitra", r"jeste dnes",
    r"holnapig", r"legkesobb holnap", r"meg ma",
    r"do jutri", r"najkasneje jutri", r"se danes",
    r"do jutra", r"najpozniej jutro", r"jeszcze dzis",
)
# Anger: with a complaint, it raises the urgency.
_ANGER = _words(
    r"unacceptable", r"outrageous", r"furious", r"extremely disappointed", r"fed up",
    r"inakzeptabel", r"unzumutbar", r"verargert", r"absolut enttauscht",
    r"inacceptable", r"scandaleux", r"furieux",
    r"inaceptable", r"indignante", r"vergonzoso",
    r"oacceptabel", r"upprord", r"skandal",
    r"neprijateln", r"neprijatel", r"nehorazn", r"skandaln",
    r"nepripustn", r"skandalni",
    r"elfogadhatatlan", r"felhaborit", r"botranyos",
    r"nesprejemljiv", r"ogorcen", r"skandalozn",
    r"nie do przyjecia", r"niedopuszczaln", r"skandaliczn", r"oburzen",
)
# Words that say there is no hurry (checked first: "nicht dringend" holds "dringend").
_NO_HURRY = _words(
    r"no (?:rush|hurry)", r"not urgent", r"whenever (?:you|it) ", r"no need to (?:reply|answer|respond)",
    r"keine eile", r"nicht dringend", r"eilt nicht", r"hat zeit",
    r"pas urgent", r"rien ne presse", r"pas press", r"sans urgence",
    r"sin prisa", r"no es urgente", r"no corre prisa", r"sin urgencia",
    r"ingen brad\w*", r"inte bradskande", r"inte bratt\w*",
    r"nie je (?:to )?(?:surne|naliehave)", r"nesuri", r"nema (?:to )?nahlenie",
    r"nespecha", r"neni (?:to )?(?:nalehave|pilne|urgentni)",
    r"nem surgos", r"raer", r"nem siet",
    r"ni nujno", r"se ne mudi", r"ni (?:treba|potrebno) odgovoriti",
    r"nie ma pospiechu", r"nie jest pilne", r"bez pospiechu", r"nie spieszy",
    # "nothing urgent" and "no need to answer"
    r"nothing urgent", r"nichts dringendes", r"nicht eilig", r"rien d.urgent", r"nada urgente",
    r"inget bradskande", r"nic (?:surne|urgentn|nalehav|pilne)", r"semmi surgos", r"nic nujnega",
    r"brez nujnosti", r"nic pilnego",
    r"keine antwort (?:notig|erforderlich)", r"pas besoin de repondre", r"no (?:hace falta|es necesario) responder",
    r"behover (?:inte|ej) svara", r"nemusite (?:odpovedat|odpovidat)", r"nem kell valaszol",
    r"(?:ni|ne) (?:treba|potrebno) odgovori", r"nie (?:trzeba|musicie|musza panstwo) odpowiada",
)
_LOW_CATEGORIES = frozenset({"feedback"})
# "From <date>" in the ten languages: the date starts something, it is not a deadline.
_FROM_BEFORE = re.compile(
    r"(?<!\w)(?:from|starting|as of|effective|ab|vom|a partir d\w*|des de|desde|fran(?: och med)?|"
    r"fr o m|od|od dne|z dniem|ode dne|s ucinnostou od|s platnostou od)\s*(?:the |dem |den |le |el )?$"
)
_FROM_AFTER = re.compile(r"\s*-?(?:tol|tol|atol|etol)\b")  # Hungarian "december 1-től"


def assess_urgency(
    headers: Mapping[str, str],
    text: str,
    *,
    category: str | None,
    received_at: datetime,
    dates: Iterable[DateMention] = (),
) -> Urgency:
    """The mail's urgency and the strongest reason for it.

    ``headers`` are the mail's (lower-case names), ``text`` what the classifier read
    (subject and new text), ``dates`` the dates found in it."""
    folded = fold(text)
    calm = _NO_HURRY.search(folded)
    if calm:  # blanked, not cut, so that a match's place is still its place in `text`
        folded = _NO_HURRY.sub(lambda m: " " * len(m.group(0)), folded)
    found: list[Urgency] = []
    if match := _STOPPED.search(folded):
        found.append(Urgency("urgent", f"work has stopped (“{_said(text, match)}”)"))
    if match := _ESCALATION.search(folded):
        found.append(Urgency("urgent", f"escalation (“{_said(text, match)}”)"))
    if (header := _priority_header(headers)) is not None:
        found.append(header)
    if category in _LOW_CATEGORIES:
        # A thank-you's "your urgent help yesterday" is about the past; only headers and escalation count.
        folded = ""
    if match := _HASTE.search(folded):
        found.append(Urgency("high", f"asks for speed (“{_said(text, match)}”)"))
    if match := _DEADLINE.search(folded):
        found.append(Urgency("high", f"deadline (“{_said(text, match)}”)"))
    if (deadline := _near_deadline(text, dates, received_at.date())) is not None:
        found.append(Urgency("high", f"deadline {deadline.isoformat()} within two working days"))
    if match := _REMINDER.search(folded):
        found.append(Urgency("high", f"still waiting (“{_said(text, match)}”)"))
    if category == "complaint" and (match := _ANGER.search(folded)):
        found.append(Urgency("high", f"angry complaint (“{_said(text, match)}”)"))
    if found:
        return min(found, key=lambda u: _RANK[u.level])
    if calm:
        return Urgency("low", f"no hurry (“{_said(text, calm).strip()}”)")
    if category in _LOW_CATEGORIES:
        return Urgency("low", f"{category}: nothing to fix")
    return Urgency("normal", "no sign of urgency")


def _said(text: str, match: re.Match[str]) -> str:
    """The words of `text` that `match` (on ``fold(text)``) found, as the customer wrote them:
    "stále nemáme", not "stale nemame"."""
    start, end = match.span()
    if text.isascii():  # folding only lower-cased it: the places are the same
        return text[start:end]
    origin = _origin(text)
    if len(origin) != len(match.string) or start == end:  # folding did not go char by char
        return match.group(0)
    return text[origin[start] : origin[end - 1] + 1]


@lru_cache(maxsize=1)  # a mail's several matches map back through one table
def _origin(text: str) -> tuple[int, ...]:
    """For each character of ``fold(text)``, the place in `text` it came from."""
    return tuple(index for index, char in enumerate(text) for _ in fold(char))


def more_urgent(a: str, b: str) -> str:
    return a if _RANK.get(a, 2) <= _RANK.get(b, 2) else b


def _priority_header(headers: Mapping[str, str]) -> Urgency | None:
    importance = headers.get("importance", "").strip().lower()
    priority = headers.get("priority", "").strip().lower()
    x_priority = headers.get("x-priority", "").strip()[:1]
    ms_priority = headers.get("x-msmail-priority", "").strip().lower()
    if importance == "high" or priority == "urgent" or x_priority in ("1", "2") or ms_priority == "high":
        return Urgency("high", "marked high priority by the sender")
    return None


def _near_deadline(text: str, dates: Iterable[DateMention], received: date) -> date | None:
    """The first date in the text that falls after the mail came and within two working days
    of it, and is not the start of something ("new address from 1 December" asks for no hurry)."""
    limit = _add_working_days(received, 2)
    for mention in dates:
        try:
            day = date.fromisoformat(mention.value)
        except ValueError:  # "--03-05": a day without a year
            continue
        if received < day <= limit and not _starts_then(text, mention):
            return day
    return None


def _starts_then(text: str, mention: DateMention) -> bool:
    before, after = fold(text[max(0, mention.start - 24) : mention.start]), fold(text[mention.end : mention.end + 6])
    return bool(_FROM_BEFORE.search(before) or _FROM_AFTER.match(after))


def _add_working_days(day: date, n: int) -> date:
    while n:
        day += timedelta(days=1)
        if day.weekday() < 5:
            n -= 1
    return day


def sla_hours(options: SlaOptions, category: str | None, urgency: str) -> float | None:
    """Hours until a reply is due, or None when no reply is owed (a category set to 0, e.g. a
    thank-you, unless the mail itself is pressing). Otherwise the tightest of the urgency's and
    the category's hours, falling back to the default."""
    by_category = options.sla_hours_by_category.get(category or "")
    by_urgency = options.sla_hours_by_urgency.get(urgency)
    if by_category == 0 and urgency not in ("urgent", "high"):
        return None
    candidates = [h for h in (by_category, by_urgency) if h]
    return min(candidates) if candidates else options.sla_hours


class SlaOptions(Protocol):
    @property
    def sla_hours(self) -> float: ...
    @property
    def sla_hours_by_category(self) -> Mapping[str, float]: ...
    @property
    def sla_hours_by_urgency(self) -> Mapping[str, float]: ...
