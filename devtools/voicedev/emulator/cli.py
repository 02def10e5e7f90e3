"""`voice-webhooks-simulate` (make simulate) and `voice-webhooks-timeline` (make timeline).

simulate: play Twilio's part in whole calls against the local mode (default) or a deployed stack,
one line per request, then the session's timeline as stored. timeline: the stored story of any
session id or CallSid. See docs/emulator.md."""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import secrets
import socket
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from botocore.exceptions import EndpointConnectionError

from voicedev.emulator import scenarios as catalogue
from voicedev.emulator.engine import CallResult, EmulatorConfig
from voicedev.emulator.load import run_calls
from voicedev.emulator.output import call_report, fit
from voicedev.emulator.params import TEST_CUSTOMER_NUMBER
from voicedev.emulator.timeline import (
    AwsLocation,
    TimelineError,
    TimelineReader,
    is_loopback,
    local_aws_endpoint,
    render,
)
from voicedev.fake_twilio_api import played_calls_default, record_played_calls
from voicedev.twilio_signing import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN

CALL_SID = r"^CA[0-9a-fA-F]{32}$"


def local_api_url() -> str:
    port = os.environ.get("LOCAL_API_PORT", "").strip() or "3000"
    return f"http://127.0.0.1:{port}"


def local_media_url() -> str:
    """The local mode's fake Twilio media host (LOCAL_ARCHIVER=1 make local), where its archiver
    fetches recordings from."""
    port = os.environ.get("LOCAL_MEDIA_PORT", "").strip() or "3002"
    return f"http://127.0.0.1:{port}/2010-04-01"


class UsageError(Exception):
    pass


def _secret_token(secret_id: str, region: str | None) -> str:
    """The primary token of the stack's secret (plain, or JSON with authToken), via boto3."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError
    from voice_webhooks.edge.auth_tokens import parse_secret

    client = boto3.session.Session(region_name=region).client("secretsmanager")
    try:
        value = client.get_secret_value(SecretId=secret_id)
    except (BotoCoreError, ClientError) as exc:
        raise UsageError(f"--secret-id {secret_id}: {exc}") from None
    raw = value.get("SecretString") or value.get("SecretBinary") or ""
    try:
        return parse_secret(raw).primary
    except ValueError as exc:
        raise UsageError(f"--secret-id {secret_id}: {exc}") from None


def auth_token(args: argparse.Namespace) -> tuple[str, str]:
    """The token and where it came from. The development token only ever for a loopback URL: a
    deployed stack would refuse it, and a silent 403 on every request helps nobody."""
    if args.secret_id:
        return _secret_token(args.secret_id, args.region), f"secret {args.secret_id}"
    token = os.environ.get("TWILIO_AUTH_TOKEN", "").strip()
    if token:
        return token, "TWILIO_AUTH_TOKEN"
    if is_loopback(args.base_url):
        return DEV_AUTH_TOKEN, "the development token"
    raise UsageError(
        f"{args.base_url} is not the local mode: set TWILIO_AUTH_TOKEN or --secret-id (the stack's "
        "AuthTokenSecretArn) so requests are signed with the token the stack checks"
    )


@dataclass(frozen=True)
class StackDefaults:
    """What a deployed stack says about itself: where Twilio calls it (the signed base URL), which
    secret holds the token it checks, and the first account it accepts."""

    base_url: str | None = None
    secret_id: str | None = None
    account_sid: str | None = None


def stack_defaults(stack_name: str, region: str | None) -> StackDefaults:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    cloudformation = boto3.session.Session(region_name=region).client("cloudformation")
    try:
        stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    except (BotoCoreError, ClientError) as exc:
        raise UsageError(f"--stack-name {stack_name}: {exc}") from None
    outputs = {item["OutputKey"]: item["OutputValue"] for item in stack.get("Outputs", [])}
    parameters = {
        item["ParameterKey"]: item.get("ParameterValue", "") for item in stack.get("Parameters", [])
    }
    # With PublicBaseUrl set the stack checks signatures against it (custom domain): call that.
    base_url = parameters.get("PublicBaseUrl", "").strip() or None
    connect_url = outputs.get("ConnectUrl")
    if base_url is None and connect_url and connect_url.endswith("/voice/connect"):
        base_url = connect_url.removesuffix("/voice/connect")
    # A CommaDelimitedList comes back as "AC...,AC..." (pick the SIDs out, whatever the separators).
    accounts = re.findall(r"AC[0-9a-fA-F]{32}", parameters.get("AllowedAccountSids", ""))
    return StackDefaults(
        base_url=base_url,
        secret_id=parameters.get("AuthTokenSecretArn") or None,
        account_sid=accounts[0] if accounts else None,
    )


def _handoff(value: str | None) -> dict[str, object] | None:
    if value is None:
        return None
    try:
        data = json.loads(value)
    except ValueError as exc:
        raise UsageError(f"--handoff-data must be a JSON object: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError("--handoff-data must be a JSON object")
    return data


def _scenarios(names: Sequence[str]) -> list[catalogue.Scenario]:
    if not names:
        return [catalogue.get("worker-answers")]
    if "all" in names:
        return list(catalogue.SCENARIOS)
    if "relay" in names:
        return list(catalogue.RELAY_SCENARIOS)
    try:
        return [catalogue.get(name) for name in names]
    except KeyError as exc:
        raise UsageError(str(exc.args[0])) from None


def list_scenarios() -> str:
    everything = (*catalogue.SCENARIOS, *catalogue.RELAY_SCENARIOS)
    width = max(len(scenario.name) for scenario in everything)
    lines = ["Scenarios (voice-webhooks-simulate NAME..., or all):"]
    for scenario in everything:
        if scenario is catalogue.RELAY_SCENARIOS[0]:
            lines += [
                "",
                "Relay agent scenarios (or: relay), over the WebSocket to the stack's own agent:",
            ]
        number = {
            catalogue.Line.CONVERSATION: "conversation line",
            catalogue.Line.RELAY: "relay line",
            catalogue.Line.AGENT: "agent line",
        }[scenario.line]
        lines.append(f"  {scenario.name:<{width}}  {scenario.title}")
        lines.append(f"  {'':<{width}}  calls the {number}; answer expected: {scenario.expect.value}")
    return "\n".join(lines)


def simulate_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voice-webhooks-simulate",
        description="Play Twilio's part in whole calls against the local mode or a deployed stack.",
        epilog="Examples:\n"
        "  voice-webhooks-simulate                      # worker-answers against make local\n"
        "  voice-webhooks-simulate all --shuffle --duplicates 0.5 --seed 7\n"
        "  voice-webhooks-simulate all --calls 200 --concurrency 20\n"
        "  TWILIO_AUTH_TOKEN=... voice-webhooks-simulate all --base-url https://abc.execute-api.../",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "scenario", nargs="*", help="scenario names (see --list), or all; default worker-answers"
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument(
        "--base-url",
        default=None,
        help="the API's base URL (default: the local mode, http://127.0.0.1:$LOCAL_API_PORT)",
    )
    parser.add_argument("--connect-path", default="/voice/connect", help="the number's voice URL path")
    parser.add_argument(
        "--connect-method", choices=("POST", "GET"), default="POST", help="the voice URL's method"
    )
    parser.add_argument(
        "--secret-id", help="read the auth token from this Secrets Manager secret (else $TWILIO_AUTH_TOKEN)"
    )
    parser.add_argument(
        "--account-sid",
        help="AccountSid sent (default: $TWILIO_ACCOUNT_SID, the stack's first AllowedAccountSids, "
        "else the development account)",
    )
    parser.add_argument(
        "--conversation-number", default=catalogue.CONVERSATION_LINE, help="To of conversation scenarios"
    )
    parser.add_argument(
        "--relay-number", default=catalogue.RELAY_LINE, help="To of relay scenarios (ai-*: agent elsewhere)"
    )
    parser.add_argument(
        "--agent-number",
        default=catalogue.AGENT_LINE,
        help="To of relay agent scenarios (relay-*: a relay flow without url, the stack's own agent)",
    )
    parser.add_argument(
        "--customer-number", default=TEST_CUSTOMER_NUMBER, help="the caller (default: Twilio's test number)"
    )
    parser.add_argument("--handoff-data", help="HandoffData JSON for ai-handoff (default: target support)")
    parser.add_argument(
        "--shuffle", action="store_true", help="deliver status/recording callbacks out of order"
    )
    parser.add_argument(
        "--duplicates",
        type=float,
        default=0.0,
        metavar="P",
        help="probability (0-1) that each status/recording callback is delivered twice",
    )
    parser.add_argument(
        "--drop",
        type=float,
        default=0.0,
        metavar="P",
        help="probability (0-1) that each status/recording callback is lost for good (Twilio gave up); "
        "then run `make reconcile` (docs/reconciliation.md)",
    )
    parser.add_argument(
        "--record-calls",
        metavar="FILE",
        default=None,
        help="append what Twilio knows of each call (final status, recordings) to FILE, as JSON lines, for "
        "the fake REST API of `voice-webhooks-reconcile` (default with --drop against the local mode: "
        f"{played_calls_default()})",
    )
    parser.add_argument("--seed", type=int, help="seed for --shuffle/--duplicates (printed when not given)")
    parser.add_argument(
        "--call-status",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="send the call's call-progress events to /voice/status without a session, as the "
        'number\'s "Call status changes" URL does (default: on)',
    )
    parser.add_argument(
        "--call-status-events",
        metavar="EVENTS",
        help="the call's StatusCallbackEvent list, e.g. 'initiated ringing answered completed' (default: "
        "Twilio's: completed for inbound calls, all four for outbound ones)",
    )
    parser.add_argument(
        "--media-url",
        help="base of the RecordingUrls sent (default: the local mode's fake media host, "
        "http://127.0.0.1:$LOCAL_MEDIA_PORT/2010-04-01, for the local mode; Twilio's API otherwise)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="fail when an answer differs from the example config's"
    )
    parser.add_argument("--calls", type=int, default=0, help="run N calls (cycling through the scenarios)")
    parser.add_argument("--concurrency", type=int, default=1, help="calls in flight at once (with --calls)")
    parser.add_argument(
        "--verbose", action="store_true", help="with --calls: print every call, not just failures"
    )
    parser.add_argument(
        "--timeout", type=float, default=15.0, help="seconds to wait for an answer (Twilio: 15)"
    )
    parser.add_argument(
        "--timeline",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="print each session's timeline (default: on for the local mode, off for a deployed stack)",
    )
    _aws_arguments(parser)
    return parser


CALL_EVENTS = ("initiated", "ringing", "answered", "completed")


def _call_events(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    events = tuple(value.replace(",", " ").split())
    unknown = [event for event in events if event not in CALL_EVENTS]
    if unknown:
        raise SystemExit(f"--call-status-events: {', '.join(unknown)} is not one of {', '.join(CALL_EVENTS)}")
    return events


def _aws_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("where the timeline reads (DynamoDB, SQS)")
    group.add_argument(
        "--aws-endpoint-url",
        default=None,
        help="AWS endpoint (default: the local mode's, http://127.0.0.1:$LOCAL_AWS_PORT; 'aws' for real AWS)",
    )
    group.add_argument("--region", default=None, help="AWS region (default: the environment's)")
    group.add_argument("--stack-name", help="find the table and queues in this stack's outputs")
    group.add_argument("--table", help="EventsTable's name (default: $EVENTS_TABLE_NAME, or discovered)")
    group.add_argument(
        "--queue-url", help="RecordingsQueue's URL (default: $RECORDINGS_QUEUE_URL, or discovered)"
    )
    group.add_argument(
        "--peek-queue",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="read the queues (default: on locally, from the local mode's state, receiving nothing; "
        "off for real AWS, where each peek counts as a receive)",
    )


def _location(args: argparse.Namespace, deployed: bool) -> AwsLocation:
    endpoint = args.aws_endpoint_url
    if endpoint is None:
        endpoint = None if deployed else local_aws_endpoint()
    elif endpoint.lower() == "aws":
        endpoint = None
    queue_urls = {"RecordingsQueue": args.queue_url} if args.queue_url else None
    return AwsLocation(
        endpoint_url=endpoint,
        region=args.region,
        table_name=args.table,
        queue_urls=queue_urls,
        stack_name=args.stack_name,
    )


def _peek(args: argparse.Namespace, location: AwsLocation) -> bool:
    if args.peek_queue is not None:
        return bool(args.peek_queue)
    return location.endpoint_url is not None and is_loopback(location.endpoint_url)


def _sessions_played(reader: TimelineReader, results: Sequence[CallResult]) -> list[str]:
    """The sessions the TwiML named, then any other session of the same calls: a call-progress
    event sent before the call had a session (an outbound call rings first) starts one of its own."""
    sessions: list[str] = []
    for result in results:
        sessions += result.session_ids
        if result.call_events:
            sessions += reader.sessions_for_call(result.call_sid)
    return list(dict.fromkeys(sessions))


def print_timelines(reader: TimelineReader, session_ids: Sequence[str], peek: bool) -> bool:
    """Print each session's timeline; False when one of them has nothing stored."""
    found = True
    for session_id in session_ids:
        timeline = reader.timeline(session_id, read_queues=peek)
        found = found and bool(timeline.session or timeline.events)
        print(render(timeline, queue_note=None if peek else "use --peek-queue to read them"))
        print()
    return found


def simulate_main(argv: Sequence[str] | None = None) -> int:
    parser = simulate_parser()
    args = parser.parse_args(argv)
    _line_buffered()
    if args.list:
        print(list_scenarios())
        return 0
    try:
        if args.stack_name:
            stack = stack_defaults(args.stack_name, args.region)
            args.base_url = args.base_url or stack.base_url
            if not args.secret_id and not os.environ.get("TWILIO_AUTH_TOKEN", "").strip():
                args.secret_id = stack.secret_id
            args.account_sid = args.account_sid or os.environ.get("TWILIO_ACCOUNT_SID") or stack.account_sid
        args.base_url = (args.base_url or local_api_url()).rstrip("/")
        args.account_sid = args.account_sid or os.environ.get("TWILIO_ACCOUNT_SID") or DEV_ACCOUNT_SID
        if urlsplit(args.base_url).scheme not in ("http", "https"):
            raise UsageError("--base-url must be an http(s) URL")
        if not 0 <= args.duplicates <= 1:
            raise UsageError("--duplicates is a probability between 0 and 1")
        if not 0 <= args.drop <= 1:
            raise UsageError("--drop is a probability between 0 and 1")
        if args.calls < 0 or args.concurrency < 1:
            raise UsageError("--calls must be >= 0 and --concurrency >= 1")
        selected = _scenarios(args.scenario)
        token, token_source = auth_token(args)
        handoff = _handoff(args.handoff_data)
    except UsageError as exc:
        parser.error(str(exc))
    deployed = not is_loopback(args.base_url)
    seed = args.seed if args.seed is not None else secrets.randbelow(10**6)
    config = EmulatorConfig(
        base_url=args.base_url,
        auth_token=token,
        account_sid=args.account_sid,
        connect_path=args.connect_path,
        connect_method=args.connect_method,
        conversation_number=args.conversation_number,
        relay_number=args.relay_number,
        agent_number=args.agent_number,
        customer_number=args.customer_number,
        shuffle=args.shuffle,
        duplicates=args.duplicates,
        drop=args.drop,
        seed=seed,
        handoff_data=handoff,
        timeout=args.timeout,
        strict=args.strict,
        media_api_base=args.media_url or (None if deployed else local_media_url()),
        call_status=args.call_status,
        call_status_events=_call_events(args.call_status_events),
    )
    delivery = ("shuffled" if args.shuffle else "in order") + (
        f", duplicates p={args.duplicates}" if args.duplicates else ""
    )
    if args.drop:
        delivery += f", dropped for good p={args.drop}"
    record_path = args.record_calls or (None if deployed or not args.drop else played_calls_default())
    print(fit(f"Emulating Twilio against {args.base_url} (callbacks {delivery}; seed {seed})"))
    print(f"  signed with {token_source}")
    if deployed:
        print(
            "Note: this writes test sessions to the stack (CallSid CA00000000..., caller "
            f"{TEST_CUSTOMER_NUMBER}); they expire with the table's TTL."
        )
    print()

    show_timeline = args.timeline if args.timeline is not None else not deployed
    calls = args.calls or len(selected)
    lock = threading.Lock()
    batch = bool(args.calls) and (args.calls > 1 or args.concurrency > 1)

    def report(result: CallResult) -> None:
        if batch and result.ok and not args.verbose:
            return
        with lock:
            print(call_report(result))
            print()

    results, summary = run_calls(
        config, selected, calls=calls, concurrency=args.concurrency, run_seed=seed, on_result=report
    )
    if record_path:
        record_played_calls(record_path, results, config.media_api_base)
        dropped = sum(len(result.dropped) for result in results)
        print(f"{dropped} callbacks dropped for good; what Twilio knows of the calls is in {record_path}")
    if show_timeline and not batch:
        location = _location(args, deployed)
        try:
            reader = TimelineReader(location)
            print_timelines(reader, _sessions_played(reader, results), _peek(args, location))
        except TimelineError as exc:
            print(f"timeline: {exc}", file=sys.stderr)
        except Exception as exc:  # the calls ran; a missing table or credentials must not hide that
            print(f"timeline not available: {type(exc).__name__}: {exc}", file=sys.stderr)
    if batch or len(results) > 1:
        print(summary.render())
    failed = [result for result in results if not result.ok]
    if failed:
        print(f"\n{len(failed)} of {len(results)} calls FAILED", file=sys.stderr)
        refused = any("ConnectionRefused" in problem for result in failed for problem in result.problems)
        if refused and not deployed:
            print(
                f"Nothing answers at {args.base_url}: start the local mode first (`make local` in another "
                "terminal), with the same LOCAL_API_PORT.",
                file=sys.stderr,
            )
    return 1 if failed else 0


def timeline_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voice-webhooks-timeline",
        description="Print the stored timeline of a session id, or of every session of a CallSid.",
    )
    parser.add_argument("id", help="a session id (CA...-hex) or a CallSid (CA + 32 hex)")
    _aws_arguments(parser)
    return parser


def timeline_main(argv: Sequence[str] | None = None) -> int:
    parser = timeline_parser()
    args = parser.parse_args(argv)
    _line_buffered()
    deployed = args.aws_endpoint_url is not None and args.aws_endpoint_url.lower() == "aws"
    if args.stack_name and args.aws_endpoint_url is None:
        deployed = True
    location = _location(args, deployed)
    if location.endpoint_url and is_loopback(location.endpoint_url) and not _answers(location.endpoint_url):
        print(
            f"Nothing answers at {location.endpoint_url}: start the local mode first: make local "
            "(in another terminal, with the same LOCAL_AWS_PORT)",
            file=sys.stderr,
        )
        return 2
    reader = TimelineReader(location)
    try:
        if re.match(CALL_SID, args.id):
            session_ids = reader.sessions_for_call(args.id)
            if not session_ids:
                print(f"no session for call {args.id} in {reader.table_name}")
                return 1
        else:
            session_ids = [args.id]
        found = print_timelines(reader, session_ids, _peek(args, location))
    except TimelineError as exc:
        print(f"timeline: {exc}", file=sys.stderr)
        return 2
    except EndpointConnectionError as exc:
        print(f"timeline: {exc}", file=sys.stderr)
        return 2
    return 0 if found else 1


def _answers(url: str) -> bool:
    """Something listens at the URL's host and port (a quick check, before boto3's retries)."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=2):
            return True
    except OSError:
        return False


def _line_buffered() -> None:
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)


if __name__ == "__main__":
    sys.exit(simulate_main())
