"""Assembling one run from settings: what the Lambda function and `voice-webhooks-reconcile` call."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from botocore.config import Config

from voice_webhooks.queues.recording_messages import RecordingPublisher
from voice_webhooks.reconcile.claim_store import recording_route_store
from voice_webhooks.reconcile.credentials import credentials_for, load_tokens
from voice_webhooks.reconcile.reconciler import Policy, Reconciler, RunReport
from voice_webhooks.reconcile.settings import ReconcileSettings
from voice_webhooks.reconcile.twilio_api import RateGate, TwilioRestClient
from voice_webhooks.runtime import aws_clients
from voice_webhooks.storage.events import EventStore
from voice_webhooks.storage.recordings import RecordingStore
from voice_webhooks.storage.sessions import SessionStore

# No request starts this close to the end of the invocation: the writes after the fetches (a few
# milliseconds each) and the metrics flush need the rest.
END_MARGIN_SECONDS = 15.0
# Not inside Twilio's 15 s like the webhooks: a scheduled run can afford patience per call.
_DYNAMODB_CONFIG = Config(
    connect_timeout=2, read_timeout=5, retries={"mode": "standard", "total_max_attempts": 3}
)


def dynamodb_client() -> Any:
    """The run's DynamoDB client, of boto3's default session (the one every other client uses)."""
    return aws_clients.session().client("dynamodb", config=_DYNAMODB_CONFIG)


def policy_from(settings: ReconcileSettings) -> Policy:
    return Policy(
        grace=timedelta(minutes=settings.grace_minutes),
        max_sessions=settings.max_sessions,
        concurrency=settings.concurrency,
        max_attempts=settings.max_attempts,
        backoff_base=timedelta(seconds=settings.backoff_base_seconds),
        backoff_cap=timedelta(seconds=settings.backoff_cap_seconds),
        ttl_days=settings.event_ttl_days,
    )


def run_once(settings: ReconcileSettings, *, remaining_seconds: float) -> RunReport:
    tokens = load_tokens(settings.auth_token_secret, max_age_seconds=settings.cache_max_age_seconds)
    gate = RateGate(
        max_requests=settings.max_requests,
        deadline=time.monotonic() + max(remaining_seconds - END_MARGIN_SECONDS, 1.0),
    )
    client = dynamodb_client()  # one client for the run: each costs tens of milliseconds to build
    reconciler = Reconciler(
        sessions=SessionStore(settings.events_table_name, client),
        events=EventStore(settings.events_table_name, client),
        recordings=RecordingStore(settings.events_table_name, client),
        api=TwilioRestClient(settings.api_base_url, settings.origins(), gate),
        credentials=credentials_for(tokens),
        claim_store=recording_route_store(settings.events_table_name, client),
        publisher=RecordingPublisher(settings.recordings_queue_url),
        policy=policy_from(settings),
    )
    return reconciler.run()
