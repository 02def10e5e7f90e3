"""/voice/action routing, split by responsibility (issue 9): action_requests.py (classify,
fingerprint, parse, HandoffData), action_decisions.py (the pure `decide()`), action_answer.py (the
I/O around it). Kept so that older imports keep working; new code imports from those modules."""

from voice_webhooks.calls.action_answer import ActionStores, answer_action, resolve_flow
from voice_webhooks.calls.action_decisions import (
    ACTION_ATTRIBUTES,
    LOOP_GUARD,
    STEP_ORDER,
    Decision,
    Notice,
    decide,
    loop_guard_decision,
)
from voice_webhooks.calls.action_requests import (
    MAX_HANDOFF_BYTES,
    ActionRequest,
    Handoff,
    Step,
    classify,
    fingerprint,
    parse_handoff,
    read_action_request,
    unknown_values,
)

__all__ = [
    "ACTION_ATTRIBUTES",
    "LOOP_GUARD",
    "MAX_HANDOFF_BYTES",
    "STEP_ORDER",
    "ActionRequest",
    "ActionStores",
    "Decision",
    "Handoff",
    "Notice",
    "Step",
    "answer_action",
    "classify",
    "decide",
    "fingerprint",
    "loop_guard_decision",
    "parse_handoff",
    "read_action_request",
    "resolve_flow",
    "unknown_values",
]
