"""Settings from the environment and a `.env` file.

Secrets and connection details live here; the team, routing and schedules live
in `rapport.toml` (`rapport.config`). Every problem is found in one pass
(`read_settings`): a wrong value names the variable and what was expected, a
misspelt `RAPPORT_*` or `SLACK_*` name is named with the nearest valid one, and
settings that only work together (an IMAP host needs a user and a password) are
checked together.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from dotenv import dotenv_values
from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from rapport.errors import ConfigError

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DATABASE_URL_FORMS = "sqlite:///path/to/rapport.db or postgresql://user:password@host/database"
ENV_FILE = Path(".env")
# Read by something other than the settings object: not typos.
OTHER_NAMES = frozenset({"RAPPORT_TEST_POSTGRES_URL"})
PREFIXES = ("RAPPORT_", "SLACK_")
# Other tools share the SLACK_ prefix (SLACK_CLIENT_ID, SLACK_WEBHOOK_URL): only a near miss of ours is a typo.
SLACK_TYPO_CUTOFF = 0.85
# What RAPPORT_HTTP_WORKERS=0, its default, means (Settings.http_worker_count).
HTTP_WORKERS_AUTO = "one per CPU, at most 4"


def _env(*names: str) -> Any:
    return AliasChoices(*names)


def parse_moment(value: str | datetime) -> datetime:
    """An ISO 8601 moment with its UTC offset (`2026-12-04T14:00+01:00`, `...Z`) as aware UTC.

    The one reader of RAPPORT_NOW and every command's `--at`."""
    from datetime import UTC

    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError("expected a moment such as 2026-12-04T14:00+01:00") from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("give the UTC offset too, e.g. 2026-12-04T14:00+01:00 or 2026-12-04T13:00Z")
    return value.astimezone(UTC)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=ENV_FILE,
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    database_url: str = Field("sqlite:///rapport.db", validation_alias=_env("RAPPORT_DATABASE_URL"))
    config_file: Path = Field(Path("rapport.toml"), validation_alias=_env("RAPPORT_CONFIG"))
    model_dir: Path = Field(
        Path.home() / ".cache" / "rapport" / "models", validation_alias=_env("RAPPORT_MODEL_DIR")
    )
    log_level: str = Field("INFO", validation_alias=_env("RAPPORT_LOG_LEVEL"))
    now: datetime | None = Field(None, validation_alias=_env("RAPPORT_NOW"))  # the clock; None: the real one

    imap_host: str | None = Field(None, validation_alias=_env("RAPPORT_IMAP_HOST"))
    imap_port: int | None = Field(None, ge=1, le=65535, validation_alias=_env("RAPPORT_IMAP_PORT"))
    imap_user: str | None = Field(None, validation_alias=_env("RAPPORT_IMAP_USER"))
    imap_password: SecretStr | None = Field(None, validation_alias=_env("RAPPORT_IMAP_PASSWORD"))
    imap_security: Literal["ssl", "starttls", "none"] = Field(
        "ssl", validation_alias=_env("RAPPORT_IMAP_SECURITY")
    )
    imap_folders: str = Field("INBOX", validation_alias=_env("RAPPORT_IMAP_FOLDERS"))
    imap_ca_file: Path | None = Field(None, validation_alias=_env("RAPPORT_IMAP_CA_FILE"))

    slack_bot_token: SecretStr | None = Field(None, validation_alias=_env("SLACK_BOT_TOKEN"))
    slack_app_token: SecretStr | None = Field(None, validation_alias=_env("SLACK_APP_TOKEN"))
    slack_signing_secret: SecretStr | None = Field(None, validation_alias=_env("SLACK_SIGNING_SECRET"))
    slack_api_url: str | None = Field(None, validation_alias=_env("SLACK_API_URL"))
    # 0: any free port (tests)
    http_port: int = Field(3000, ge=0, le=65535, validation_alias=_env("RAPPORT_HTTP_PORT"))
    public_url: str | None = Field(None, validation_alias=_env("RAPPORT_PUBLIC_URL"))  # where `serve` answers
    # `serve`'s HTTP worker processes (rapport/workers.py); 0: HTTP_WORKERS_AUTO
    http_workers: int = Field(0, ge=0, le=64, validation_alias=_env("RAPPORT_HTTP_WORKERS"))

    smtp_host: str | None = Field(None, validation_alias=_env("RAPPORT_SMTP_HOST"))
    smtp_port: int = Field(587, ge=1, le=65535, validation_alias=_env("RAPPORT_SMTP_PORT"))
    smtp_user: str | None = Field(None, validation_alias=_env("RAPPORT_SMTP_USER"))
    smtp_password: SecretStr | None = Field(None, validation_alias=_env("RAPPORT_SMTP_PASSWORD"))
    smtp_security: Literal["starttls", "ssl", "none"] = Field(
        "starttls", validation_alias=_env("RAPPORT_SMTP_SECURITY")
    )
    smtp_from: str = Field("rapport@localhost", validation_alias=_env("RAPPORT_SMTP_FROM"))
    smtp_ca_file: Path | None = Field(None, validation_alias=_env("RAPPORT_SMTP_CA_FILE"))

    # HMAC key for erasure hashes (store/privacy.py); set it before the first erasure, never change it
    privacy_key: SecretStr | None = Field(None, validation_alias=_env("RAPPORT_PRIVACY_KEY"))

    @property
    def http_worker_count(self) -> int:
        """RAPPORT_HTTP_WORKERS, else one per CPU this process may use, at most 4: each worker is a
        process of ~90 MB and, on PostgreSQL, a pool of up to 15 connections (the server's
        max_connections is 100 by default)."""
        return self.http_workers or max(1, min(4, len(os.sched_getaffinity(0))))

    @property
    def privacy_secret(self) -> str | None:
        return self.privacy_key.get_secret_value() if self.privacy_key else None

    # the key that signs survey links (they point at RAPPORT_PUBLIC_URL)
    csat_secret: SecretStr | None = Field(None, validation_alias=_env("RAPPORT_CSAT_SECRET"))

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        value = value.strip()
        try:
            url = make_url(value.replace("postgres://", "postgresql://", 1))
        except ArgumentError:
            raise ValueError(f"not a database URL; expected {DATABASE_URL_FORMS}") from None
        if url.get_backend_name() not in ("sqlite", "postgresql") or url.get_driver_name() not in (
            "pysqlite", "psycopg", "psycopg2"
        ):
            raise ValueError(f"Rapport works with SQLite and PostgreSQL only; expected {DATABASE_URL_FORMS}")
        return value

    @field_validator("now", mode="before")
    @classmethod
    def _now(cls, value: Any) -> Any:
        return None if value in (None, "") else parse_moment(value)

    @field_validator("imap_ca_file", "smtp_ca_file")
    @classmethod
    def _file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError("no such file")
        return value

    @field_validator("model_dir")
    @classmethod
    def _directory(cls, value: Path) -> Path:
        if value.exists() and not value.is_dir():
            raise ValueError("exists but is not a folder")
        return value

    @property
    def folders(self) -> list[str]:
        return [f.strip() for f in self.imap_folders.split(",") if f.strip()]

    @property
    def imap_configured(self) -> bool:
        return bool(self.imap_host and self.imap_user)


ENV_NAMES: dict[str, str] = {
    name: str(field.validation_alias.choices[0])  # type: ignore[union-attr]
    for name, field in Settings.model_fields.items()
}
SECRETS = frozenset(name for name, field in Settings.model_fields.items() if "SecretStr" in str(field.annotation))


def _masked(field: str, value: Any) -> Any:
    """A value fit to print: a database URL without its password."""
    if field == "database_url" and isinstance(value, str):
        try:
            return make_url(value).render_as_string(hide_password=True)
        except ArgumentError:
            return "(not a URL)"
    return value


def _together(settings: Settings) -> list[str]:
    """Settings that only work together: a mailbox needs its host, user and password; SMTP a user
    and a password, or neither."""
    problems = []
    imap = {"RAPPORT_IMAP_HOST": settings.imap_host, "RAPPORT_IMAP_USER": settings.imap_user,
            "RAPPORT_IMAP_PASSWORD": settings.imap_password}
    if any(imap.values()) and not all(imap.values()):
        given = ", ".join(name for name, value in imap.items() if value)
        for name, value in imap.items():
            if not value:
                problems.append(f"{name}: not set, but {given} {'is' if ',' not in given else 'are'}: "
                                "a mailbox needs its host, user and password")
    smtp = {"RAPPORT_SMTP_USER": settings.smtp_user, "RAPPORT_SMTP_PASSWORD": settings.smtp_password}
    if any(smtp.values()) and not all(smtp.values()):
        given, missing = (("RAPPORT_SMTP_USER", "RAPPORT_SMTP_PASSWORD") if settings.smtp_user
                          else ("RAPPORT_SMTP_PASSWORD", "RAPPORT_SMTP_USER"))
        problems.append(f"{missing}: not set, but {given} is: SMTP needs both, or neither")
    if any(smtp.values()) and not settings.smtp_host:
        problems.append("RAPPORT_SMTP_HOST: not set, but the SMTP user or password is")
    return problems


def env_file_of(overrides: Mapping[str, Any]) -> Path | None:
    """The `.env` file settings read (`_env_file` overrides the default `.env` in the working folder)."""
    path = overrides.get("_env_file", ENV_FILE)
    return Path(path) if path is not None else None


def unknown_names(
    names: Iterable[str], *, known: Iterable[str] = (), where: str = "the environment", present: Iterable[str] = ()
) -> list[str]:
    """`RAPPORT_*` and `SLACK_*` names that are no setting, each with the nearest valid one. A `SLACK_*`
    name counts only as a near miss of one of ours that is not set (`present`): other tools use the
    prefix too, and SLACK_API_TOKEN beside SLACK_APP_TOKEN is no typo."""
    valid = sorted({*ENV_NAMES.values(), *OTHER_NAMES, *known})
    given = set(present)
    problems = []
    for name in sorted(set(names)):
        if not name.startswith(PREFIXES) or name in valid:
            continue
        slack = name.startswith("SLACK_")
        prefix = "SLACK_" if slack else "RAPPORT_"
        # compare what follows the shared prefix: RAPPORT_FOO is not "nearly" RAPPORT_NOW
        rests = {v.removeprefix(prefix): v for v in valid if v.startswith(prefix)}
        rest = difflib.get_close_matches(name.removeprefix(prefix), list(rests), n=1,
                                         cutoff=SLACK_TYPO_CUTOFF if slack else 0.6)
        close = [rests[rest[0]]] if rest else []
        if slack and (not close or close[0] in given):
            continue
        hint = f"did you mean {close[0]}?" if close else "`rapport config check` lists the settings"
        problems.append(f"{name} ({where}): not a setting; {hint}")
    return problems


def read_settings(known_names: Iterable[str] = (), **overrides: Any) -> tuple[Settings | None, list[str]]:
    """The settings (None when a value is wrong) and every problem with them, at once: values,
    combinations, unknown names in the environment and in `.env`. `known_names` are more valid
    names (a mailbox's `password_env`)."""
    problems: list[str] = []
    settings: Settings | None = None
    try:
        settings = Settings(**overrides)
        problems += _together(settings)
    except ValidationError as exc:
        failed = set()
        fields = {env: field for field, env in ENV_NAMES.items()}
        for error in exc.errors():
            given = str(error["loc"][0]) if error["loc"] else "?"  # the variable, or the field of an override
            field = fields.get(given, given)
            failed.add(field)
            env_name = ENV_NAMES.get(field, field)
            message = str(error["msg"]).removeprefix("Value error, ")
            shown = "(hidden)" if field in SECRETS else repr(_masked(field, error.get("input")))
            problems.append(f"{env_name}: {message} (got {shown})")
        # the others, checked together with the failed ones at their defaults
        defaults = {f: Settings.model_fields[f].default for f in failed if f in Settings.model_fields}
        try:
            problems += _together(Settings(**{**overrides, **defaults}))
        except ValidationError:
            pass
    known = list(known_names)
    env_file = env_file_of(overrides)
    in_file = list(dotenv_values(env_file)) if env_file is not None and env_file.is_file() else []
    present = {*os.environ, *in_file}
    problems += unknown_names(os.environ, known=known, present=present)
    problems += unknown_names(in_file, known=known, where=str(env_file), present=present)
    return settings, problems


def load_settings(**overrides: Any) -> Settings:
    """Read the environment and `.env` (values only); a bad value raises ConfigError naming the variable."""
    try:
        return Settings(**overrides)
    except ValidationError:
        _, problems = read_settings(**overrides)
        raise ConfigError("the environment (or .env) has bad values:\n  " + "\n  ".join(problems)) from None
