"""Settings from the environment and a `.env` file.

Secrets and connection details live here; the team, routing and schedules live
in `rapport.toml` (`rapport.config`). A wrong value names the variable and what
was expected (`ConfigError`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from rapport.errors import ConfigError


def _env(*names: str) -> Any:
    return AliasChoices(*names)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
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

    imap_host: str | None = Field(None, validation_alias=_env("RAPPORT_IMAP_HOST"))
    imap_port: int | None = Field(None, validation_alias=_env("RAPPORT_IMAP_PORT"))
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
    http_port: int = Field(3000, validation_alias=_env("RAPPORT_HTTP_PORT"))
    public_url: str | None = Field(None, validation_alias=_env("RAPPORT_PUBLIC_URL"))  # where `serve` answers

    smtp_host: str | None = Field(None, validation_alias=_env("RAPPORT_SMTP_HOST"))
    smtp_port: int = Field(587, validation_alias=_env("RAPPORT_SMTP_PORT"))
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
    def privacy_secret(self) -> str | None:
        return self.privacy_key.get_secret_value() if self.privacy_key else None

    # the key that signs survey links (they point at RAPPORT_PUBLIC_URL)
    csat_secret: SecretStr | None = Field(None, validation_alias=_env("RAPPORT_CSAT_SECRET"))

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


def load_settings(**overrides: Any) -> Settings:
    """Read the environment and `.env`; a bad value raises ConfigError naming the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            env_name = ENV_NAMES.get(field, field)
            problems.append(f"{env_name}: {error['msg']} (got {error.get('input')!r})")
        raise ConfigError("the environment (or .env) has bad values:\n  " + "\n  ".join(problems)) from None
