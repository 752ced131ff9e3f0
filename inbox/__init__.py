"""Rapport's inbox: IMAP ingestion, MIME parsing, threading, matching and assignment."""
