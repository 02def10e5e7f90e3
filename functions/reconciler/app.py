"""Scheduled reconciler: settles sessions whose final status callback never arrived, from Twilio's
REST API, and queues their completed recordings through the recording route's claim
(docs/reconciliation.md)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from voice_webhooks.edge.handler import scheduled_handler
from voice_webhooks.reconcile.run import run_once
from voice_webhooks.reconcile.settings import ReconcileSettings


def reconcile(_event: dict[str, Any], context: LambdaContext, settings: ReconcileSettings) -> dict[str, Any]:
    report = run_once(settings, remaining_seconds=context.get_remaining_time_in_millis() / 1000)
    return {"due": report.due, **report.outcomes, "recovered": report.recovered}


lambda_handler = scheduled_handler(ReconcileSettings, reconcile)
