"""`voice-webhooks-reconcile` (`make reconcile`): one reconciler run against the local mode.

Twilio's REST API is played by `FakeTwilioApi` on 127.0.0.1, serving the calls the emulator
recorded (`voice-webhooks-simulate --drop 0.3` writes them to .voicedev/played-calls.jsonl), and the
run reads and writes the local mode's moto (started by `make local`). The grace period is 0 by
default: the calls just played are due at once."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from voice_webhooks.reconcile.reconciler import RunReport
from voice_webhooks.reconcile.run import run_once
from voice_webhooks.reconcile.settings import load_settings

from voicedev.fake_twilio_api import FakeTwilioApi, played_calls_default, read_played_calls
from voicedev.local_aws import AUTH_TOKEN_SECRET_NAME, DUMMY_CREDENTIALS
from voicedev.local_settings import HOST, REGION, LocalSettings, load_local_settings
from voicedev.scoped_environment import scoped_environment

TABLE = "EventsTable"
QUEUE = "RecordingsQueue"


def reconcile_local(
    played: Path,
    *,
    aws_endpoint_url: str,
    auth_token: str,
    grace_minutes: int = 0,
    max_sessions: int = 200,
    concurrency: int = 4,
) -> tuple[RunReport, FakeTwilioApi]:
    """One run; returns its report and the fake API (what it was asked). The process environment
    and the cached AWS clients are pointed at the local mode for the run only."""
    from voicedev.handler_caches import reset_handler_caches

    # The handlers' way of reaching moto: boto3 reads these (the local mode's own process too).
    pointing = {
        "AWS_ENDPOINT_URL": aws_endpoint_url,
        "AWS_ACCESS_KEY_ID": DUMMY_CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": DUMMY_CREDENTIALS["aws_secret_access_key"],
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION") or REGION,
    }
    try:
        with scoped_environment(pointing):
            reset_handler_caches()
            import boto3

            sqs = boto3.client(
                "sqs", region_name=pointing["AWS_DEFAULT_REGION"], endpoint_url=aws_endpoint_url
            )
            queue_url = str(sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"])
            with FakeTwilioApi(auth_token=auth_token) as api:
                api.load_played(read_played_calls(played))
                settings = load_settings(
                    {
                        "EVENTS_TABLE_NAME": TABLE,
                        "RECORDINGS_QUEUE_URL": queue_url,
                        "TWILIO_AUTH_TOKEN_SECRET": AUTH_TOKEN_SECRET_NAME,
                        "TWILIO_API_BASE_URL": api.origin,
                        "TWILIO_API_ORIGINS": api.origin,
                        "RECONCILE_GRACE_MINUTES": str(grace_minutes),
                        "RECONCILE_MAX_SESSIONS": str(max_sessions),
                        "RECONCILE_CONCURRENCY": str(concurrency),
                    }
                )
                report = run_once(settings, remaining_seconds=120)
            return report, api
    finally:
        # The cached clients point at the local mode: forget them once the old environment is back.
        reset_handler_caches()


def describe(report: RunReport, api: FakeTwilioApi) -> str:
    outcomes = (
        ", ".join(f"{name} {count}" for name, count in sorted(report.outcomes.items())) or "nothing to do"
    )
    return (
        f"{report.due} sessions due: {outcomes}; {report.recovered} recordings recovered; "
        f"{report.api_failures} API failures; {api.count()} Twilio API requests "
        f"({report.throttled} throttled)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="voice-webhooks-reconcile",
        description="Run the reconciler once against the local mode, with a fake Twilio REST API "
        "serving the calls the emulator played.",
    )
    parser.add_argument("--played", type=Path, default=played_calls_default(), help="the emulator's record")
    parser.add_argument("--grace-minutes", type=int, default=0)
    parser.add_argument("--max-sessions", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args(argv)
    local: LocalSettings = load_local_settings()
    if not args.played.is_file():
        print(
            f"{args.played} does not exist: play calls first (make simulate SCENARIO=all ARGS='--drop 0.3')",
            file=sys.stderr,
        )
        return 2
    try:
        report, api = reconcile_local(
            args.played,
            aws_endpoint_url=f"http://{HOST}:{local.aws_port}",
            auth_token=local.auth_token,
            grace_minutes=args.grace_minutes,
            max_sessions=args.max_sessions,
            concurrency=args.concurrency,
        )
    except Exception as exc:
        print(f"reconcile failed: {type(exc).__name__}: {exc} (is `make local` running?)", file=sys.stderr)
        return 1
    print(describe(report, api))
    return 0


if __name__ == "__main__":
    sys.exit(main())
