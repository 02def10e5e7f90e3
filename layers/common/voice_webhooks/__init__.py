"""Shared code for the Twilio voice webhook functions (deployed as the Lambda layer)."""
