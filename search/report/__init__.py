"""Reporting: pure functions that turn results into tables, text, JSON and figures."""
