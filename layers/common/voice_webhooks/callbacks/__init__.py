"""Twilio's callbacks: their models, status events and recording states."""
