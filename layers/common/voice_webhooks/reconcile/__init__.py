"""Reconciliation: sessions whose final call status never arrived (Twilio gave up its retries, or
our stack was down) are settled from Twilio's REST API, and their completed recordings queued
through the recording route's claim (docs/reconciliation.md)."""
