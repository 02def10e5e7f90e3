"""A Twilio emulator: plays Twilio's part in whole calls against the local mode or a deployed stack
(signed requests, the URLs and methods the TwiML names, status callbacks reordered and duplicated
on demand), and reads back the session timeline. See docs/emulator.md.

Library use (the benchmark and load work build on this):

    from voicedev.emulator import EmulatorConfig, SCENARIOS, run_call, run_calls

    result = run_call(EmulatorConfig(base_url="http://127.0.0.1:3000"), SCENARIOS[0])
    results, summary = run_calls(config, SCENARIOS, calls=100, concurrency=10)
    print(summary.render())
"""

from voicedev.emulator.client import TwilioClient, signature
from voicedev.emulator.engine import CallEmulator, CallResult, EmulatorConfig, Exchange, run_call
from voicedev.emulator.load import Summary, run_calls, summarize
from voicedev.emulator.scenarios import SCENARIOS, Scenario, get
from voicedev.emulator.timeline import AwsLocation, SessionTimeline, TimelineReader, render

__all__ = [
    "SCENARIOS",
    "AwsLocation",
    "CallEmulator",
    "CallResult",
    "EmulatorConfig",
    "Exchange",
    "Scenario",
    "SessionTimeline",
    "Summary",
    "TimelineReader",
    "TwilioClient",
    "get",
    "render",
    "run_call",
    "run_calls",
    "signature",
    "summarize",
]
