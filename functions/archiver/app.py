"""RecordingsQueue consumer: archives each completed recording to RecordingsBucket.

Partial batch failures (ReportBatchItemFailures): a message that fails goes back to the queue
alone, and reaches the dead-letter queue after the redrive count; the others are deleted."""

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from voice_webhooks.archiver.archive import ArchiveResult, RecordingArchiver, archive_record
from voice_webhooks.archiver.settings import ArchiverSettings
from voice_webhooks.edge.handler import queue_handler
from voice_webhooks.runtime import snapstart

snapstart.register()  # SnapStart's hooks, where the runtime has them (docs/deploy.md#snapstart)

# A batch whose every message failed is still a partial answer (all ids listed), not a Lambda
# error: message failures are counted by our metrics; the Errors alarm is kept for crashes.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def archive_batch(event: dict[str, Any], context: LambdaContext, settings: ArchiverSettings) -> Any:
    # Built per invocation from cached settings: a bad origin list fails here, before any message.
    archiver = RecordingArchiver.from_settings(settings)

    def record_handler(record: SQSRecord) -> ArchiveResult:
        return archive_record(record, archiver, remaining_ms=context.get_remaining_time_in_millis())

    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )


lambda_handler = queue_handler(ArchiverSettings, archive_batch)
