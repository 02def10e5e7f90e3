"""Scheduled reconciler: settles sessions whose final status callback never arrived, from Twilio's
REST API, and queues their completed recordings through the recording route's claim
(docs/reconciliation.md)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from voice_webhooks.reconcile.run import run_once
from voice_webhooks.reconcile.settings import get_settings
from voice_webhooks.runtime.observability import logger, metrics, tracer


# log_event=False: the schedule's event says nothing useful, and no event may name a call.
@logger.inject_lambda_context(clear_state=True, log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(_event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    report = run_once(get_settings(), remaining_seconds=context.get_remaining_time_in_millis() / 1000)
    return {"due": report.due, **report.outcomes, "recovered": report.recovered}
