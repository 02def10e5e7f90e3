"""Answering calls and routing what follows a session (connect and action)."""
