"""The API's routes (template.yaml routes the same paths)."""

CONNECT = "/voice/connect"
ACTION = "/voice/action"
STATUS = "/voice/status"
RECORDING = "/voice/recording"
FALLBACK = "/voice/fallback"

ALL = (CONNECT, ACTION, STATUS, RECORDING, FALLBACK)
