"""`rapport.toml`: the team, routing rules, schedules and tuning a manager can read.

Every section is optional and has sensible defaults. Unknown keys are errors
(a typo must not be silently ignored); the message names the file, the key and
what was expected, and suggests the nearest valid key.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from dotenv import dotenv_values
from lingua import Language
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from rapport.errors import ConfigError
from rapport.settings import ENV_NAMES, Settings, env_file_of, read_settings
from store.db import make_engine
from store.hours import WEEKDAYS
from store.reps import reps_and_teams
from store.validation import (
    CATEGORIES,
    SKILL_SYNONYMS,
    Invalid,
    check_email,
    check_timezone,
    check_working_hours,
    nearest,
    normal_email,
    read_skills,
    unknown_skills,
)

CONFIG_ENV = ENV_NAMES["config_file"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MailboxConfig(_Section):
    """An extra mailbox beyond the one in the environment."""

    name: str
    host: str
    port: int | None = None
    user: str
    password_env: str = Field(description="name of the environment variable holding the password")
    security: Literal["ssl", "starttls", "none"] = "ssl"
    folders: list[str] = ["INBOX"]
    sent_folder: str | None = None  # default: [inbox] sent_folder, else the folder marked \\Sent
    ca_file: Path | None = None


class InboxConfig(_Section):
    folders: list[str] | None = None  # overrides RAPPORT_IMAP_FOLDERS
    sent_folder: str | None = None  # default: the folder with SPECIAL-USE \Sent
    backlog_age_days: float = 2.0  # older mail in a first sync: no per-message notifications
    batch_size: int = Field(200, ge=1, le=5000)
    keyword_prefix: str = "rapport"
    move_to_owner_folders: bool = False
    owner_folder_prefix: str = "Rapport"
    idle_timeout_minutes: float = Field(25.0, gt=0, le=29)
    poll_interval_seconds: float = Field(30.0, gt=0)
    use_idle: bool = True  # false: poll even where the server offers IDLE
    thread_window_days: float = Field(30.0, gt=0)  # replies by subject and participants join within it
    max_message_bytes: int = 50 * 1024 * 1024
    sender_rate_limit_per_hour: int = 20
    mailboxes: list[MailboxConfig] = []


def _category(value: str, info: ValidationInfo) -> str:
    names = _names(info)
    return _known(value, names.categories, "not a category", SKILL_SYNONYMS, complete=names.all_categories)


# A category the classifier gives: wherever rapport.toml names one (a route, an SLA, a survey), one check.
Category = Annotated[str, AfterValidator(_category)]


class RouteConfig(_Section):
    """Send a category or a language to a team or a rep (beyond each rep's own skills).

    Every name must exist, or the route never applies: a category the classifier gives, one of
    [nlp] languages, a team or an email of a rep (`_Names`, the validation context). The file
    alone knows neither the reps imported into the database nor a custom model's categories:
    there only a near miss of a known name is an error (a typo), and the rest is checked where
    they are known (`name_problems`: `config check` and the start of `serve` and `inbox`).
    """

    category: Category | None = None
    language: str | None = None
    team: str | None = None
    rep: str | None = None  # a rep's email

    @field_validator("language")
    @classmethod
    def _language(cls, value: str, info: ValidationInfo) -> str:
        languages = _names(info).languages
        return _known(value, languages, "not one of [nlp] languages", _language_names(languages))

    @field_validator("team")
    @classmethod
    def _team(cls, value: str, info: ValidationInfo) -> str:
        names = _names(info)
        return _known(value, names.teams, f"no rep {names.reps_from} has this team", complete=names.all_reps)

    @field_validator("rep")
    @classmethod
    def _rep(cls, value: str, info: ValidationInfo) -> str:
        names = _names(info)
        # addresses share their domain, so only a near miss of the whole is a typo
        return _known(normal_email(value), names.emails, f"no rep {names.reps_from} has this email",
                      cutoff=0.9, complete=names.all_reps)

    @model_validator(mode="after")
    def _has_target(self) -> RouteConfig:
        if not (self.category or self.language):
            raise ValueError("a route needs `category` or `language`")
        if not (self.team or self.rep):
            raise ValueError("a route needs `team` or `rep`")
        return self


class AssignmentConfig(_Section):
    sla_hours: float = Field(8.0, gt=0)
    # Tighter SLAs by urgency; by category (a custom model's too), 0 means no reply is owed (a thank-you).
    sla_hours_by_urgency: dict[Literal["urgent", "high", "normal", "low"], float] = {"urgent": 2.0, "high": 4.0}
    sla_hours_by_category: dict[Category, float] = {"feedback": 0.0}
    fallback_queue: str = "triage"
    routes: list[RouteConfig] = []

    @field_validator("sla_hours_by_urgency", "sla_hours_by_category")
    def _hours(cls, value: dict[str, float]) -> dict[str, float]:
        if any(hours < 0 for hours in value.values()):
            raise ValueError("hours must be 0 or more")
        return value


class EntityPatternConfig(_Section):
    label: str
    pattern: str

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


class NlpConfig(_Section):
    model: str | None = None  # a path or an installed spaCy pipeline; default: Rapport's own
    confidence_threshold: float = Field(0.5, ge=0, le=1)
    languages: list[str] = ["en", "de", "fr", "es", "sv", "sk", "cs", "hu", "sl", "pl"]
    entity_patterns: list[EntityPatternConfig] = []


class SegmentsConfig(_Section):
    top_n: int = Field(10, ge=1)
    top_months: int = Field(12, ge=1)
    lapsed_gap_factor: float = Field(2.0, gt=0)
    lapsed_min_days: int = Field(60, ge=1)
    lapsed_min_orders: int = Field(3, ge=2)
    post_purchase_days: int = Field(14, ge=0)
    post_purchase_kinds: list[Literal["prospect", "customer", "partner"]] = ["customer"]
    stalled_days: int = Field(21, ge=1)
    partner_quiet_days: int = Field(45, ge=1)


class DigestConfig(_Section):
    period: Literal["day", "week"] = "day"
    weekday: str = "Mon"  # for weekly digests
    channel: str | None = None  # also post to this Slack channel

    @field_validator("weekday")
    @classmethod
    def _weekday(cls, value: str) -> str:
        if value not in WEEKDAYS:
            raise ValueError(f"expected one of {', '.join(WEEKDAYS)}")
        return value


class ReplyConfig(_Section):
    """Email replies sent from Slack."""

    from_address: str | None = None  # default: the shared mailbox the customer wrote to
    reply_to: str | None = None  # a Reply-To header on every reply


class SurveyConfig(_Section):
    """Satisfaction surveys (CSAT) after an answered conversation stays quiet; off unless enabled."""

    enabled: bool = False
    quiet_days: float = Field(3.0, gt=0)  # days without a message after the answer
    quiet_days_by_category: dict[Category, float] = {}  # 0: no survey for that category
    quiet_days_by_kind: dict[Literal["prospect", "customer", "partner"], float] = {}  # 0: none for that kind
    needs_consent: bool = True  # false: contacts with no consent record are asked (never after an opt-out)
    link_days: float = Field(30.0, gt=0)  # how long the one-click links work
    reply_to: str | None = None  # where replies go; default: the mailbox in RAPPORT_IMAP_USER

    @field_validator("quiet_days_by_category", "quiet_days_by_kind")
    def _days(cls, value: dict[str, float]) -> dict[str, float]:
        if any(days < 0 for days in value.values()):
            raise ValueError("days must be 0 or more")
        return value


class SlackConfig(_Section):
    command: str = "/crm"
    team_id: str | None = None  # T…: digests link into this workspace (Slack: About this workspace)
    app_id: str | None = None  # A…: and open Rapport's App Home there (api.slack.com/apps)

    @field_validator("command")
    @classmethod
    def _slash(cls, value: str) -> str:
        if not re.fullmatch(r"/[a-z0-9_-]{1,31}", value):
            raise ValueError("must look like /crm (a slash, then lower-case letters, digits, - or _)")
        return value


class RepConfig(_Section):
    name: str
    email: str
    slack_user_id: str | None = None
    role: Literal["rep", "support", "manager", "admin"] = "rep"
    team: str | None = None
    skills: list[str] = []
    languages: list[str] = []
    timezone: str = "UTC"
    working_hours: str = "Mon-Fri 09:00-17:00"
    capacity: int = Field(30, ge=0)
    digest_via: list[Literal["slack", "email"]] = []
    digest_hour: int = Field(8, ge=0, le=23)
    signature: str | None = None  # under the rep's email replies from Slack

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        return _checked(check_email, value)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return _checked(check_timezone, value)

    @field_validator("working_hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        return _checked(check_working_hours, value)

    @field_validator("skills")
    @classmethod
    def _skills(cls, value: list[str], info: ValidationInfo) -> list[str]:
        names = _names(info)
        skills, unknown = read_skills(value, names.categories)  # the import's reading: invoice, payment -> billing
        if unknown and names.all_categories:
            raise ValueError(unknown_skills(unknown, names.categories))
        return skills + unknown  # a model not readable here may give them: checked once it is loaded


@dataclass(frozen=True)
class Known:
    """What rapport.toml may name that the file cannot know; None: not known where it is checked."""

    reps: Sequence[tuple[str, str | None]] | None = None  # the database's reps: (email, team)
    categories: Sequence[str] | None = None  # the loaded model's


@dataclass(frozen=True)
class _Names:
    """What a route, an SLA or a survey may name, read leniently from the file before it is validated:
    they are checked even when a rep or [nlp] has problems of its own (every problem in one run)."""

    emails: list[str]
    teams: list[str]
    languages: list[str]
    categories: list[str]
    all_reps: bool  # False: reps imported into the database may have other emails and teams
    all_categories: bool  # False: [nlp] model could not be read here, and may give other categories

    @classmethod
    def read(cls, data: Mapping[str, Any], known: Known = Known()) -> _Names:
        reps = [rep for rep in _items(data.get("reps")) if isinstance(rep, dict)]
        nlp: dict[str, Any] = data["nlp"] if isinstance(data.get("nlp"), dict) else {}
        languages = nlp.get("languages", NlpConfig.model_fields["languages"].default)
        emails = [normal_email(str(rep["email"])) for rep in reps if rep.get("email") is not None]
        teams = {str(rep["team"]) for rep in reps if rep.get("team") is not None}
        for email, team in known.reps or ():  # the file's reps are in the database too
            emails += [] if email in emails else [email]
            teams |= {team} if team else set()
        categories = known.categories
        if categories is None:  # a model not readable here: its categories are checked once it is loaded
            categories = readable_categories(str(nlp["model"]) if nlp.get("model") else None)
        return cls(emails=emails, teams=sorted(teams), languages=[str(code) for code in _items(languages)],
                   categories=list(categories or []), all_reps=known.reps is not None,
                   all_categories=categories is not None)

    @property
    def reps_from(self) -> str:
        return "under [[reps]] or in the database" if self.all_reps else "under [[reps]]"


def known_categories(model: str | None) -> tuple[str, ...]:
    """The categories there are: those of the model `[nlp] model` names, read from what it saved
    without loading it (nor spaCy), else Rapport's own (its default model, and a database's
    retrain of it, learn the shipped categories). Every check of a category asks this; a
    ConfigError when the model cannot be read."""
    if not model:
        return CATEGORIES
    from nlp import ModelError, saved_categories

    try:
        return tuple(saved_categories(model) or CATEGORIES)  # a pipeline without textcat gets Rapport's
    except ModelError as exc:
        raise ConfigError(f"[nlp] model: {exc}") from None


def readable_categories(model: str | None) -> tuple[str, ...] | None:
    """`known_categories`, or None when this machine cannot read the model (a pipeline installed
    on the server only): what may take any category until the model is loaded asks this."""
    try:
        return known_categories(model)
    except ConfigError:
        return None


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _names(info: ValidationInfo) -> _Names:
    # read_config passes the file's names; validated on its own, a section is in a file of nothing else
    return info.context if isinstance(info.context, _Names) else _Names.read({})


def _known(
    value: str, valid: Sequence[str], problem: str, aliases: Mapping[str, str] | None = None, cutoff: float = 0.6,
    *, complete: bool = True,
) -> str:
    """`value` when it is valid, else a ValueError: the problem and the nearest valid value, by
    spelling or by an alias that means it (`partners`: `partnership`, `slovenian`: `sl`). When
    `valid` is not `complete`, only such a near miss is an error: another value may be valid."""
    if value in valid:
        return value
    meant = {alias: name for alias, name in (aliases or {}).items() if name in valid}
    words = {**meant, **{name.lower(): name for name in valid}}
    close = nearest(value.strip().lower(), words, cutoff)
    if close:
        raise ValueError(f"{problem}; did you mean `{close}`?")
    if not complete:
        return value
    if not valid:
        raise ValueError(f"{problem}; there is none")
    listed = ", ".join(valid[:LISTED])  # a database may have hundreds of reps
    more = f", … ({len(valid)} in all)" if len(valid) > LISTED else ""
    raise ValueError(f"{problem}; expected one of {listed}{more}")


LISTED = 10  # valid values an error lists


def _language_names(codes: Sequence[str]) -> dict[str, str]:
    """The English names of language codes (`slovene`: `sl`), as the language detector knows them."""
    names = {language.iso_code_639_1.name.lower(): language.name.lower() for language in Language.all()}
    return {names[code]: code for code in codes if code in names}


def _checked(check: Any, value: Any) -> Any:
    try:
        return check(value)
    except Invalid as exc:  # pydantic reports ValueError with the key path
        raise ValueError(str(exc)) from None


class RetentionConfig(_Section):
    """Days to keep each kind of data; unset keeps it for ever (store.privacy.Retention)."""

    message_bodies: int | None = Field(None, ge=1)
    attachment_metadata: int | None = Field(None, ge=1)


class PrivacyConfig(_Section):
    retention_days: RetentionConfig = RetentionConfig()


class AppConfig(_Section):
    inbox: InboxConfig = InboxConfig()
    assignment: AssignmentConfig = AssignmentConfig()
    nlp: NlpConfig = NlpConfig()
    segments: SegmentsConfig = SegmentsConfig()
    digest: DigestConfig = DigestConfig()
    survey: SurveyConfig = SurveyConfig()
    slack: SlackConfig = SlackConfig()
    reply: ReplyConfig = ReplyConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    reps: list[RepConfig] = []
    source: Path | None = Field(default=None, exclude=True)


def _key_path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if item == "[key]":  # a dict's key is the problem: the path ends at it
            continue
        if isinstance(item, int):
            parts[-1] = f"{parts[-1]}[{item}]" if parts else f"[{item}]"
        else:
            parts.append(str(item))
    return ".".join(parts)


def _known_keys(loc: tuple[Any, ...]) -> list[str]:
    model: Any = AppConfig
    for item in loc[:-1]:
        if isinstance(item, int):
            continue
        field = model.model_fields.get(item)
        if field is None:
            return []
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        candidates = [annotation, *args]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return []
    return list(model.model_fields)


def _describe(error: Any, path: Path) -> str:
    loc = tuple(error["loc"])
    key = _key_path(loc)
    if error["type"] == "extra_forbidden":
        known = _known_keys(loc)
        close = nearest(str(loc[-1]), {key: key for key in known})
        hint = f"; did you mean `{close}`?" if close else f"; known keys: {', '.join(known)}"
        return f"{path}: unknown key `{key}`{hint}"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{path}: `{key}`: {message} (got {error.get('input')!r})"


def read_config(path: Path | None, known: Known = Known()) -> tuple[AppConfig | None, list[str]]:
    """`rapport.toml` and every problem in it, at once (None when there is one); a missing file
    means all defaults. The reps and categories it names are checked against the file's and what is `known`."""
    if path is None or not path.exists():
        return AppConfig(), []
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        return None, [f"{path}: not valid TOML: {exc}"]
    except (OSError, UnicodeDecodeError) as exc:
        return None, [f"{path}: cannot read: {exc}"]
    names = _Names.read(data, known)
    emails = names.emails
    duplicates = sorted({e for e in emails if emails.count(e) > 1})
    problems = [f"{path}: `reps`: the same email appears twice: {', '.join(duplicates)}"] if duplicates else []
    try:
        config = AppConfig.model_validate(data, context=names)
    except ValidationError as exc:
        return None, [*(_describe(e, path) for e in exc.errors()), *problems]
    config.source = path
    return (None if problems else config), problems


def name_problems(config: AppConfig, known: Known) -> list[str]:
    """A valid config checked again against what is `known` now (the database's reps, the loaded
    model's categories): every problem, with the file and the key. Only what the file sets is
    checked: a default (`feedback` owes no reply) is no mistake of the file's when the model has
    no such category."""
    names = _Names.read(config.model_dump(include={"reps", "nlp"}), known)
    path = config.source or Settings.model_fields["config_file"].default
    try:
        AppConfig.model_validate(config.model_dump(exclude_unset=True), context=names)
    except ValidationError as exc:
        return [_describe(error, path) for error in exc.errors()]
    return []


def refusal(problems: Sequence[str]) -> ConfigError:
    """The error a command stops with on configuration problems: every one of them."""
    return ConfigError("the configuration has problems (`rapport config check` shows them all):\n  "
                       + "\n  ".join(problems))


def load_config(path: Path | None) -> AppConfig:
    """Read `rapport.toml`; a missing file means all defaults. Problems raise one ConfigError naming them all."""
    config, problems = read_config(path)
    if config is None:
        raise ConfigError("\n".join(problems))
    return config


def _read_leniently(path: Path) -> dict[str, Any]:
    """The file's data for a look before it is validated (it may have other problems); {} when unreadable."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}


def _password_names(data: Mapping[str, Any]) -> list[str]:
    """The `password_env` names of [[inbox.mailboxes]]."""
    mailboxes = data.get("inbox", {}).get("mailboxes", []) if isinstance(data.get("inbox"), dict) else []
    return [str(m["password_env"]) for m in mailboxes if isinstance(m, dict) and "password_env" in m]


def _routes_to_people(data: Mapping[str, Any]) -> bool:
    """Whether a route names a team or a rep (only then is the database worth asking)."""
    assignment: dict[str, Any] = data["assignment"] if isinstance(data.get("assignment"), dict) else {}
    return any(isinstance(route, dict) and ("team" in route or "rep" in route)
               for route in _items(assignment.get("routes")))


@dataclass
class Checked:
    """Everything `config check` knows: the settings and config when readable, and every problem."""

    settings: Settings | None
    config: AppConfig | None
    problems: list[str]
    config_file: Path
    warnings: list[str]  # valid, but a feature that is switched on cannot work: nothing stops


def _warnings(settings: Settings, config: AppConfig, config_file: Path) -> list[str]:
    """Settings that are each valid but together leave a feature unable to do its work."""
    if settings.smtp_host:
        return []
    found = []
    if config.survey.enabled:
        found.append(f"{config_file}: `survey.enabled` is true, but RAPPORT_SMTP_HOST is not set: "
                     "no survey can be sent")
    by_email = [rep.email for rep in config.reps if "email" in rep.digest_via]
    if by_email:
        found.append(f"{config_file}: `digest_via` has \"email\" for {', '.join(by_email)}, but "
                     "RAPPORT_SMTP_HOST is not set: those digests go unsent")
    return found


def _config_file(settings: Settings | None, overrides: Mapping[str, Any]) -> tuple[Path, bool]:
    """The `rapport.toml` to read, and whether someone named it (RAPPORT_CONFIG in the environment
    or `.env`, or an override) rather than it being the default."""
    if settings is not None:
        return settings.config_file, "config_file" in settings.model_fields_set
    env_file = env_file_of(overrides)  # the settings have bad values: read the name alone
    in_file = dotenv_values(env_file) if env_file is not None and env_file.is_file() else {}
    named = overrides.get("config_file") or os.environ.get(CONFIG_ENV) or in_file.get(CONFIG_ENV)
    return Path(named or Settings.model_fields["config_file"].default), bool(named)


def check_configuration(*, with_database: bool = False, **overrides: Any) -> Checked:
    """The environment, `.env` and `rapport.toml`, checked together: one run names every problem.

    A missing `rapport.toml` means the defaults, unless someone named the file: then it is a problem.
    `with_database`: a route's team and rep are also checked against the reps of the database,
    when there is one (imported reps: the file alone cannot know them)."""
    settings, problems = read_settings(**overrides)
    config_file, named = _config_file(settings, overrides)
    data = _read_leniently(config_file) if config_file.exists() else {}
    extra = _password_names(data)
    if extra:  # a mailbox's password variable is a valid name, not a typo
        settings, problems = read_settings(extra, **overrides)
    known, database_warnings = (_database_reps(settings) if with_database and settings and _routes_to_people(data)
                                else (Known(), []))
    if named and not config_file.exists():
        config, config_problems = None, [f"{CONFIG_ENV}: no such file (got '{config_file}')"]
    else:
        config, config_problems = read_config(config_file, known)
    if config is not None:  # like RAPPORT_IMAP_HOST without RAPPORT_IMAP_PASSWORD
        config_problems += [
            f"{config_file}: `inbox.mailboxes[{i}].password_env`: {mailbox.password_env} is not set in the "
            "environment (the mailbox's password)"
            for i, mailbox in enumerate(config.inbox.mailboxes) if not os.environ.get(mailbox.password_env)
        ]
    warnings = _warnings(settings, config, config_file) if settings and config else []
    return Checked(settings, config, problems + config_problems, config_file, warnings + database_warnings)


def database_reps(url: str) -> list[tuple[str, str | None]] | None:
    """The (email, team) of every rep in the database at `url`; None when there is no database
    (asking creates none)."""
    engine = make_engine(url)
    try:
        return reps_and_teams(engine)
    finally:
        engine.dispose()


def _database_reps(settings: Settings) -> tuple[Known, list[str]]:
    """The database's reps, when there is a database to read, and a warning when it cannot be read."""
    try:
        return Known(reps=database_reps(settings.database_url)), []
    except SQLAlchemyError as exc:
        url = make_url(settings.database_url).render_as_string(hide_password=True)
        return Known(), [f"cannot read the reps of the database {url}: {exc.__class__.__name__}; "
                         "routes to teams and reps not under [[reps]] are unchecked"]


def load_configuration(**overrides: Any) -> tuple[Settings, AppConfig]:
    """Settings and config for a command; any problem in either raises one ConfigError naming all of them."""
    checked = check_configuration(**overrides)
    if checked.problems or checked.settings is None or checked.config is None:
        raise refusal(checked.problems)
    return checked.settings, checked.config
