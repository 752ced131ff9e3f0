"""Errors that reach a person: their message is the whole story, no traceback."""


class RapportError(Exception):
    """An error with a message meant for the user."""


class ConfigError(RapportError):
    """Configuration is missing or wrong; the message names the key and the file."""
