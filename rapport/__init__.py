"""Rapport: the CRM assistant in your shared inbox and in Slack (CLI, settings, wiring)."""

__version__ = "0.1.0"
