"""Queueing a recovered recording through the recording route's own claim.

`handle_recording_callback` (callbacks/recordings.py) is called as the route calls it, with the
store it expects. `recording_route_store` is the ONE place that builds that store: the storage
layer's recording stores (RecordingStores over the data model's `recording#<RecordingSid>` items)."""

from __future__ import annotations

from typing import Any

from voice_webhooks.callbacks.recordings import RecordingStores


def recording_route_store(table_name: str, client: Any | None = None) -> RecordingStores:
    """The `store` argument of handle_recording_callback. `client` is accepted for the caller's
    signature; the storage layer builds its own client."""
    del client
    return RecordingStores.for_table(table_name)
