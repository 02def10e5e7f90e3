"""The Amazon Bedrock agent: Converse streaming API (ConverseStream), one `text` token per delta.

History is the session's stored turns (every attempt, so a reconnect resumes the conversation):
caller prompts and key presses as `user`, agent replies as `assistant` with what the caller
actually heard when interrupted. Converse wants alternating roles starting with `user`, so
consecutive turns of one role are joined and a leading `assistant` turn is dropped."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from voice_webhooks.flows.agent import BedrockAgent
from voice_webhooks.relay.agent import Action, CallerTurn, SessionContext, TextToken, Turn, words
from voice_webhooks.relay.metrics import RelayMetric
from voice_webhooks.runtime import aws_clients
from voice_webhooks.runtime.observability import count, logger

# The first token must come well within a caller's patience; a stalled stream ends the reply.
_CONFIG = Config(connect_timeout=2, read_timeout=10, retries={"mode": "standard", "total_max_attempts": 2})
SORRY = "Sorry, I cannot answer right now. Please try again in a moment."


@cache
def bedrock_client() -> Any:
    return aws_clients.session().client("bedrock-runtime", config=_CONFIG)


def _user_text(turn: Turn | CallerTurn) -> str:
    return f"(the caller pressed {turn.text})" if turn.kind == "dtmf" else turn.text


def messages(
    history: tuple[Turn, ...] | list[Turn], turn: CallerTurn, max_turns: int
) -> list[dict[str, Any]]:
    spoken: list[tuple[str, str]] = []
    for past in list(history)[-max_turns:] if max_turns else []:
        if past.role == "caller" and past.kind in ("prompt", "dtmf") and past.text:
            spoken.append(("user", _user_text(past)))
        elif past.role == "agent" and past.kind == "reply" and past.spoken:
            spoken.append(("assistant", past.spoken))
    spoken.append(("user", _user_text(turn)))
    result: list[dict[str, Any]] = []
    for role, text in spoken:
        if not result and role == "assistant":
            continue
        if result and result[-1]["role"] == role:
            result[-1]["content"][0]["text"] += "\n" + text
        else:
            result.append({"role": role, "content": [{"text": text}]})
    return result


class BedrockResponder:
    def __init__(self, config: BedrockAgent) -> None:
        self.config = config

    def request(self, context: SessionContext, turn: CallerTurn) -> dict[str, Any]:
        inference: dict[str, Any] = {"maxTokens": self.config.max_tokens}
        if self.config.temperature is not None:
            inference["temperature"] = self.config.temperature
        return {
            "modelId": self.config.model_id,
            "system": [{"text": self.config.system_prompt}],
            "messages": messages(
                list(context.recent_history(self.config.max_history_turns)),
                turn,
                self.config.max_history_turns,
            ),
            "inferenceConfig": inference,
        }

    def respond(self, context: SessionContext, turn: CallerTurn) -> Iterator[Action]:
        try:
            stream = bedrock_client().converse_stream(**self.request(context, turn))["stream"]
        except (ClientError, BotoCoreError) as exc:
            count(RelayMetric.AGENT_FAILED)
            logger.error(
                "Bedrock ConverseStream failed",
                extra={"error_type": type(exc).__name__, "reason": str(exc)[:200]},
            )
            yield from words(SORRY)
            return
        sent = False
        try:
            for event in stream:
                delta = event.get("contentBlockDelta", {}).get("delta", {}).get("text")
                if delta:
                    sent = True
                    yield TextToken(delta)
                if "messageStop" in event:
                    break
        except (ClientError, BotoCoreError) as exc:
            # A stream that breaks mid-reply: what was said stays said; the reply ends here.
            count(RelayMetric.AGENT_FAILED)
            logger.error("Bedrock stream broke mid-reply", extra={"error_type": type(exc).__name__})
        finally:
            close = getattr(stream, "close", None)
            if callable(close):
                close()
        yield TextToken("" if sent else SORRY, last=True)
