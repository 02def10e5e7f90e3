"""The recording archiver (RecordingArchiverFunction only)."""
