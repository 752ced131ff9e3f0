"""Rapport's command line: one module per command group, all thin over plain functions."""
