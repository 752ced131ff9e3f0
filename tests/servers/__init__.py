"""Real servers on loopback for Rapport's tests: Dovecot, PostgreSQL, a fake Slack
Web API and Socket Mode server, and SMTP. The pytest fixtures live in tests/conftest.py."""
